# Leaks over time in the tie path: 10,000 tie cycles in one process (a mix
# of create, read, update, delete, and the "Object does not exist" error),
# with LL::NG-sized sessions (41 keys, about 1.3 kB of JSON), against a
# throwaway PostgreSQL.  The resident set size is measured after a
# warm-up (pool, prepared statements, Perl's arenas and malloc's free
# lists reach their working size) and at the end.
#
# Bound: 1 MB over the 9,000 measured cycles.  Measured on a healthy
# build: +0 kB in most runs (glibc malloc reuses what was freed; when the
# heap grows, it grows by 128 kB steps, so the bound is 8 such steps).
# What it catches: any growth that lasts, reachable or not (a pool, a
# cache or a list that keeps growing, a lost PGresult of several kB), and
# a lost allocation of >= ~120 bytes per cycle on average: e.g. 400 bytes
# lost by every read (2,700 measured) or 1.2 kB by every delete (900).
# Smaller per-call losses are for the tools: tools/valgrind (definitely
# lost blocks) and tools/sanitize (LeakSanitizer on the C programs).
# Checked: 500 bytes kept per read (Perl strings pushed on a list) grew
# the RSS by 1.5 MB, which a 2 MB bound would have missed.
#
# Under AddressSanitizer or valgrind (tools/sanitize, tools/valgrind) RSS
# means nothing: the loop runs shorter, for the tool's own checks.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use PgServer;
use LeakCheck;
use Apache::Session::Browseable::Patroni;
use Time::HiRes qw(time);

my $pg     = PgServer->start_or_skip;
my $C      = 'Apache::Session::Browseable::Patroni';
my $args   = { $pg->options, Commit => 1 };
my $CYCLES = LeakCheck::cycles(10_000);
my $WARMUP = int( $CYCLES / 10 );
my $BOUND_KB = 1024;

# An LL::NG SSO session: 41 keys, strings, numbers, a nested hash.
my $n = 0;
sub session_data {
    my $i = ++$n;
    my %d = (
        _session_kind => 'SSO', _utime => 1_700_000_000 + $i, _whatToTrace => "user$i",
        uid => "user$i", mail => "user$i\@example.com", cn => "User Number $i",
        ipAddr => "10.0.@{[ $i % 250 ]}.@{[ $i % 199 ]}", _lastAuthnUTime => 1_700_000_000 + $i,
        authenticationLevel => 2, _auth => 'LDAP', _userDB => 'LDAP', _passwordDB => 'LDAP',
        _startTime => '20240101120000', _updateTime => '20240101120000', _url => 'https://portal.example.com/',
        _user => "user$i", _language => 'en', groups => 'staff; users; vpn',
        hGroups => { staff => { name => 'staff' }, users => { name => 'users' } },
        _loginHistory => { successLogin => [ { _utime => 1_700_000_000, ipAddr => '10.0.0.1' } ] },
        'UA' => 'Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/115.0',
    );
    $d{"attr$_"} = "value $_ of session $i (été)" for 1 .. 20;
    return \%d;
}

my ( %count, @errors, @live );

sub op_create {
    tie my %s, $C, undef, $args;
    my $d = session_data();
    @s{ keys %$d } = values %$d;
    push @live, $s{_session_id};
    untie %s;
}
sub op_read {
    my $id = $live[ $n % @live ];
    my %s;
    tie %s, $C, $id, $args;
    my $x = $s{uid} . $s{_utime} . scalar keys %s;
    untie %s;
}
sub op_update {
    my $id = $live[ $n % @live ];
    my %s;
    tie %s, $C, $id, $args;
    $s{_updateTime} = time;
    $s{attr7} = "updated " . ++$n;
    delete $s{attr8};
    untie %s;
}
sub op_delete {
    my $id = shift @live;
    my %s;
    tie %s, $C, $id, $args;
    tied(%s)->delete;
    untie %s;
}
sub op_missing {
    my $id = sprintf '%064x', 0;
    my $ok = eval { tie( my %s, $C, $id, $args ); 1 };
    die "a missing id was found\n" if $ok;
    die $@ unless $@ =~ /Object does not exist/;
}

# 10 steps: 3 creates, 3 reads, 2 updates, 1 delete, 1 missing id; at most
# ~60 live sessions at once.
my @mix = ( \&op_create, \&op_read, \&op_create, \&op_update, \&op_read, \&op_create,
    \&op_update, \&op_read, \&op_delete, \&op_missing );
my @names = qw(create read create update read create update read delete missing);

sub cycle {
    my ($i) = @_;
    my $k = $i % @mix;
    $k = 0 if !@live && $k != 9;
    my $ok = eval { $mix[$k]->(); 1 };
    $count{ $names[$k] }++;
    push @errors, "$names[$k]: $@" unless $ok;
    op_delete() while @live > 60;
}

my ( $rss0, $rss1, $dt ) = LeakCheck::run( \&cycle, $WARMUP, $CYCLES );

is( scalar @errors, 0, "$CYCLES cycles without an error" ) or diag( join '', @errors[ 0 .. ( $#errors < 4 ? $#errors : 4 ) ] );
diag( sprintf '%d cycles in %.1f s (%s)', $CYCLES, $dt,
    join ', ', map { "$_ $count{$_}" } sort keys %count );
is( $pg->psql('SELECT count(*) FROM sessions'), scalar @live, 'the table holds the live sessions' );

LeakCheck::check_growth( $rss0, $rss1, $WARMUP, $CYCLES, $BOUND_KB );
done_testing;
