# Leaks over time in the tie path: 10,000 tie cycles in one process (a mix
# of create, read, update, delete, and the "Object does not exist" error;
# every read checks what it got, a warning counts as a failed operation,
# and at the end the table holds exactly the live sessions as last written),
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
use File::Temp ();
use warnings;
use Test::More;
use lib 't/lib';
use PgServer;
use LeakCheck;
use Apache::Session::Browseable::Patroni;
use Time::HiRes qw(time);
use Encode ();

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

my ( %count, @errors, @live, %expect );

# What each live session must hold: checked by every read and, for all of
# them, at the end against the table.
sub expect_of {
    my ($d) = @_;
    return { uid => $d->{uid}, attr7 => $d->{attr7}, attr8 => 1, keys => 1 + keys %$d };
}

sub op_create {
    tie my %s, $C, undef, $args;
    my $d = session_data();
    @s{ keys %$d } = values %$d;
    my $id = $s{_session_id};
    untie %s;
    push @live, $id;
    $expect{$id} = expect_of($d);
}
sub op_read {
    my $id = $live[ $n % @live ];
    my %s;
    tie %s, $C, $id, $args;
    my $e = $expect{$id};
    my $got = join ', ', map { $_ // 'undef' } $s{uid}, $s{attr7}, exists $s{attr8} ? 1 : 0, scalar keys %s;
    untie %s;
    my $want = join ', ', @$e{qw(uid attr7 attr8 keys)};
    die "read $id: got ($got), expected ($want)\n" unless $got eq $want;
}
sub op_update {
    my $id = $live[ $n % @live ];
    my %s;
    tie %s, $C, $id, $args;
    my $v = "updated " . ++$n;
    $s{_updateTime} = time;
    $s{attr7} = $v;
    my $had8 = exists $s{attr8};
    delete $s{attr8};
    untie %s;
    my $e = $expect{$id};
    ( $e->{attr7}, $e->{attr8} ) = ( $v, 0 );
    $e->{keys}-- if $had8;
}
sub op_delete {
    my $id = shift @live;
    delete $expect{$id};
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

# A warning (a failed save at untie is only an "(in cleanup)" warning) is a
# failed operation: it is counted against the operation that gave it.
my $warned;
$SIG{__WARN__} = sub { $warned .= $_[0] };

sub cycle {
    my ($i) = @_;
    my $k = $i % @mix;
    $k = 0 if !@live && $k != 9;
    $warned = '';
    my $ok = eval { $mix[$k]->(); 1 };
    $count{ $names[$k] }++;
    push @errors, "$names[$k]: $@" unless $ok;
    push @errors, "$names[$k]: warning: $warned" if length $warned;
    op_delete() while @live > 60;
}

# The module logs on STDERR: in a healthy run it has nothing to say.
open my $save_err, '>&', \*STDERR or die "dup STDERR: $!";
my $errlog_tmp = File::Temp->new( TEMPLATE => 'asbp-leak-tie-XXXXXXXX', TMPDIR => 1 );   # exclusive, unpredictable
my $errlog = $errlog_tmp->filename;
open STDERR, '>', $errlog or die "$errlog: $!";
END { unlink $errlog if $errlog }

my ( $rss0, $rss1, $dt ) = LeakCheck::run( \&cycle, $WARMUP, $CYCLES );

open STDERR, '>&', $save_err or die "restore STDERR: $!";
my $logged = do { local $/; open my $fh, '<', $errlog or die "$errlog: $!"; <$fh> } // '';

is( scalar @errors, 0, "$CYCLES cycles without an error or a warning, every read as written" )
  or diag( join '', @errors[ 0 .. ( $#errors < 4 ? $#errors : 4 ) ] );
is( $logged, '', 'the module logged nothing' ) or diag( substr( $logged, 0, 800 ) );
diag( sprintf '%d cycles in %.1f s (%s)', $CYCLES, $dt,
    join ', ', map { "$_ $count{$_}" } sort keys %count );
# The table holds exactly the live sessions (deletes deleted, creates
# created), each with its last update.
{
    my %got = map { my ( $id, @v ) = split /\|/, $_, -1; ( $id => join ', ', @v ) }
      split /\n/, Encode::decode( 'UTF-8', $pg->psql(q{SELECT id || '|' || (a_session->>'uid') || '|' || (a_session->>'attr7') || '|'
        || (CASE WHEN a_session ? 'attr8' THEN 1 ELSE 0 END) || '|' || (SELECT count(*) FROM jsonb_object_keys(a_session))
        FROM sessions}) );
    my %want = map { ( $_ => join ', ', @{ $expect{$_} }{qw(uid attr7 attr8 keys)} ) } @live;
    is( scalar keys %got, scalar @live, 'the table holds as many sessions as are live' );
    is_deeply( \%got, \%want, 'the table holds exactly the live sessions, each as last written' );
}

LeakCheck::check_growth( $rss0, $rss1, $WARMUP, $CYCLES, $BOUND_KB );
done_testing;
