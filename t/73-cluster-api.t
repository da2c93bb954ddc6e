# The Patroni REST API misbehaving on a real cluster:
#  - the preferred (first listed) endpoint refusing, then hanging: discovery
#    uses the other endpoints without delay;
#  - every API down after the leader changed and the cache expired: the
#    module still finds the new leader among the members it saw last.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use PatroniCluster;
use Time::HiRes qw(time sleep);
use Apache::Session::Browseable::Patroni;

my $c = PatroniCluster->start_or_skip;
my $C = 'Apache::Session::Browseable::Patroni';
my $leader  = $c->leader;
my ($rep)   = grep { $_ != $leader } $c->nodes;
my @others  = grep { $_ != $rep } $c->nodes;
my $urls    = join ', ', map { $c->api_url($_) } $rep, @others;    # a replica's API first

# Each case uses its own DataSource (its own leader cache), pointing at the
# replica: the first write is refused there, so it needs discovery.
my $case = 0;
sub args {
    my (%o) = @_;
    $case++;
    return { DataSource => $c->dsn($rep) . ";application_name=case$case", UserName => $c->user,
        Password => $c->password, PatroniUrl => $urls, PatroniTimeout => 3, %o };
}
sub timed_create {
    my ($a) = @_;
    my $t0 = time;
    tie( my %s, $C, undef, $a );
    $s{v} = "case$case";
    my $id = $s{_session_id};
    untie %s;
    return ( $id, time - $t0 );
}
sub on_leader { my ($id) = @_; $c->psql( 'leader', "SELECT a_session->>'v' FROM sessions WHERE id = '$id'" ) }

my ( $id, $dt ) = timed_create( args() );
is( on_leader($id), "case$case", 'all APIs up: the write reached the leader' );
my $base = $dt;

$c->stop_api($rep);
( $id, $dt ) = timed_create( args() );
is( on_leader($id), "case$case", 'preferred endpoint refusing: the write reached the leader' );
cmp_ok( $dt, '<', $base + 0.5, sprintf( 'without delay (%.0f ms, all up: %.0f ms)', $dt * 1000, $base * 1000 ) );
$c->start_api($rep);

$c->hang_api($rep);
( $id, $dt ) = timed_create( args() );
$c->resume_api($rep);
is( on_leader($id), "case$case", 'preferred endpoint hanging: the write reached the leader' );
cmp_ok( $dt, '<', $base + 0.5, sprintf( 'without waiting for PatroniTimeout (3 s): %.0f ms', $dt * 1000 ) );

# The rest needs the clock hook, which exists only in a test build (perl
# Makefile.PL ASBP_TEST_HOOKS=1): skipped without it, or a failure with
# ASBP_REQUIRE_HOOKS=1.
unless ( Apache::Session::Browseable::Patroni::_test_hooks() ) {
    my $why = 'every API down, cache expired: needs the test hooks, and this module '
      . 'was built without them (perl Makefile.PL ASBP_TEST_HOOKS=1)';
    fail("ASBP_REQUIRE_HOOKS=1: $why") if $ENV{ASBP_REQUIRE_HOOKS};
    SKIP: { skip $why, 3 }
    done_testing;
    exit;
}

# Learn the cluster, then lose every API after a switchover.  The
# DataSource is a dead port: only discovery (or the members) can help.
my $dead = do { require PgServer; PgServer::free_port() };
my $a = args( DataSource => "dbi:Pg:dbname=sessions;host=127.0.0.1;port=$dead;application_name=members",
    PatroniCacheTTL => 60, PatroniCircuitBreakerDelay => 30 );
tie( my %s, $C, undef, $a );
$s{v} = 'before';
my $sid = $s{_session_id};
untie %s;
is( on_leader($sid), 'before', 'session written through discovery' );
my $sw = $c->switchover;
my $new = $sw->{new};
diag "switchover node$sw->{old} -> node$new";
$c->stop_api($_) for $c->nodes;
Apache::Session::Browseable::Patroni::_clock_offset_ms(120_000);    # leader cache expired
my @w;
# errors only: the module's log lines (warnings too) stay on STDERR
local $SIG{__WARN__} = sub { $_[0] =~ /^\Q$C\E\[\d+\] / ? print STDERR $_[0] : push @w, @_ };
my $ok = eval {
    tie( my %t, $C, $sid, $a );
    $t{v} = 'after';
    untie %t;
    1;
};
is( $ok ? join( '', @w ) : $@, '', 'every API down, cache expired: the write succeeded' );
is( $c->psql( $new, "SELECT a_session->>'v' FROM sessions WHERE id = '$sid'" ), 'after',
    'on the new leader, found among the members last seen' );
Apache::Session::Browseable::Patroni::_clock_offset_ms(0);
$c->start_api($_) for $c->nodes;

done_testing;
