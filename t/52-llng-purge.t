# LemonLDAP::NG's purge job: the real purgeCentralCache (from Debian's
# liblemonldap-ng-portal-perl, unpacked by tools/install-deps) on a minimal
# configuration naming our class.  It calls deleteIfLowerThan in list
# context with { not => { _session_kind => 'Persistent' }, or => { _utime =>
# now - timeout, _lastSeen => now - timeoutActivity } }: exactly the expired
# sessions go, persistent ones stay.  Then the fallback path it takes with
# backends lacking deleteIfLowerThan: get_key_from_all_sessions with a code
# reference collecting expired ids.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use PgServer;
use LLNGConf;
use Apache::Session::Browseable::Patroni;

my $SCRIPT = '/var/lib/asbp/llng-portal/usr/share/lemonldap-ng/bin/purgeCentralCache';
unless ( -f $SCRIPT ) {
    my $why = "needs $SCRIPT (sh tools/install-deps unpacks it)";
    if ( PgServer::required() ) { plan tests => 1; fail("required here: $why"); exit 1 }
    plan skip_all => $why;
}
my $pg = PgServer->start_or_skip;
my $C  = 'Apache::Session::Browseable::Patroni';
my ( $timeout, $activity ) = ( 3600, 600 );
my %env = LLNGConf::write( $pg, timeout => $timeout, timeoutActivity => $activity );
local @ENV{ keys %env } = values %env;

my $now = time;
my %cases = (
    old_sso         => { _session_kind => 'SSO', _utime => $now - 7200 },
    fresh_sso       => { _session_kind => 'SSO', _utime => $now - 60, _lastSeen => $now - 30 },
    inactive_sso    => { _session_kind => 'SSO', _utime => $now - 60, _lastSeen => $now - 1200 },
    fresh_no_seen   => { _session_kind => 'SSO', _utime => $now - 60 },
    old_persistent  => { _session_kind => 'Persistent', _utime => $now - 100000 },
    old_no_kind     => { _utime => $now - 7200 },
    old_saml        => { _session_kind => 'SAML', _utime => $now - 7200 },
);
my %expired = map { $_ => 1 } qw(old_sso inactive_sso old_no_kind old_saml);

sub fill {
    my %id;
    $pg->psql('DELETE FROM sessions');
    for my $name ( sort keys %cases ) {
        tie my %s, $C, undef, { $pg->options };
        %s = ( %s, %{ $cases{$name} }, name => $name );
        $id{$name} = $s{_session_id};
        untie %s;
    }
    return %id;
}
sub remaining { [ sort split /\n/, $pg->psql("SELECT a_session->>'name' FROM sessions") ] }
my @kept = sort grep { !$expired{$_} } keys %cases;

# The real purge job.
fill();
my $out = `$^X $SCRIPT -d 2>&1`;
is( $? >> 8, 0, 'purgeCentralCache: exit 0' ) or diag $out;
like( $out, qr/^4 sessions have been purged$/m, 'it reports the 4 expired sessions our deleteIfLowerThan deleted' );
is_deeply( remaining(), \@kept, 'exactly the expired sessions went; persistent and fresh ones stay' );

# The call itself, as the job makes it.
fill();
my ( $ok, $rows ) = $C->deleteIfLowerThan( { $pg->options, backend => $C },
    { not => { _session_kind => 'Persistent' }, or => { _utime => $now - $timeout, _lastSeen => $now - $activity } } );
is_deeply( [ $ok, $rows ], [ 1, 4 ], 'deleteIfLowerThan in list context: (1, 4)' );
is_deeply( remaining(), \@kept, 'the same sessions went' );
my $scalar = $C->deleteIfLowerThan( { $pg->options }, { or => { _utime => 1 } } );
is( $scalar, 1, 'scalar context: 1' );
is( scalar( () = $C->deleteIfLowerThan( { $pg->options }, {} ) ), 1, 'an empty rule: 0 (one value)' );

# The fallback path: every session through a code reference, the expired
# ones collected (the job then removes them one by one).
my %id = fill();
require Lemonldap::NG::Common::Apache::Session;
my @t;
my $res = Lemonldap::NG::Common::Apache::Session->get_key_from_all_sessions(
    { $pg->options, backend => $C },
    sub {
        my ( $entry, $id ) = @_;
        push( @t, $id ), return undef unless $entry;
        return undef unless $entry->{_utime};
        return undef if ( $entry->{_session_kind} // '' ) eq 'Persistent';
        if ( $now - $entry->{_utime} > $timeout ) { push @t, $id }
        elsif ( $entry->{_lastSeen} and $now - $entry->{_lastSeen} > $activity ) { push @t, $id }
        undef;
    }
);
is_deeply( $res, {}, 'coderef returning undef: nothing kept in the result' );
is_deeply( [ sort @t ], [ sort map { $id{$_} } keys %expired ], 'the fallback path finds the same expired sessions' );

done_testing;
