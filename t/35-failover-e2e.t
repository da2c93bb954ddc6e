# Failover through the module, end to end: real PostgreSQL servers, a fake
# Patroni API (t/lib/FakePatroni.pm) that names the leader.  The DataSource
# points at a dead port, so a tie can only succeed through discovery.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use PgServer;
use FakePatroni;
use TestCA ();
use Apache::Session::Browseable::Patroni;
use JSON::PP;
use POSIX ();
use Time::HiRes qw(time sleep);

my $A = PgServer->start_or_skip;
my $B = PgServer->new;
my $C = 'Apache::Session::Browseable::Patroni';
my $dead = PgServer::free_port();

# STDERR is where the module's messages go: capture them per step.
my $log = "/tmp/asbp-e2e-$$.log";
open my $save_err, '>&', \*STDERR or die;
sub capture_start { open STDERR, '>', $log or die }
sub capture_end {
    open STDERR, '>&', $save_err or die;
    local $/;
    open my $fh, '<', $log or return '';
    my $t = <$fh> // '';
    unlink $log;
    return $t;
}
END { unlink $log if $log }

sub cluster_json {
    my (%o) = @_;    # leader => $pg|undef, others => [$pg...], state => 'running'
    my @m;
    my $i = 0;
    if ( my $l = $o{leader} ) {
        push @m, { name => 'node' . ++$i, role => 'leader', state => $o{state} // 'running',
            host => '127.0.0.1', port => $l->port, api_url => 'http://127.0.0.1:1/patroni', timeline => 1 };
    }
    for my $r ( @{ $o{others} || [] } ) {
        push @m, { name => 'node' . ++$i, role => 'replica', state => 'running', host => '127.0.0.1',
            port => $r->port, api_url => 'http://127.0.0.1:1/patroni', timeline => 1, lag => 0 };
    }
    return encode_json( { members => \@m } );
}

sub args {
    my (%o) = @_;
    return { DataSource => "dbi:Pg:dbname=sessions;host=127.0.0.1;port=$dead", UserName => $A->user,
        Password => $A->password, FailoverTimeout => 3, %o };
}

sub create { my ( $a, $v ) = @_; tie( my %s, $C, undef, $a ); $s{v} = $v; my $id = $s{_session_id}; untie %s; $id }
sub read1  { my ( $a, $id ) = @_; tie( my %s, $C, $id, $a ); my $v = $s{v}; untie %s; $v }
sub where  { my ( $pg, $id ) = @_; $pg->psql("SELECT count(*) FROM sessions WHERE id = '$id'") }
sub clock  { Apache::Session::Browseable::Patroni::_clock_offset_ms( $_[0] * 1000 ) }
sub pooled_ports { map { ( split /:/, $_->[0] )[1] } Apache::Session::Browseable::Patroni::_pool_conns() }

# The clock and fault-injection hooks (_clock_offset_ms, _inject_commit_lost)
# exist only in a test build (perl Makefile.PL ASBP_TEST_HOOKS=1): without
# them the parts that need them are skipped, or fail with
# ASBP_REQUIRE_HOOKS=1.  Call inside a SKIP block.
sub hooks_or_skip {
    my ($what) = @_;
    return if Apache::Session::Browseable::Patroni::_test_hooks();
    my $why = "$what: needs the test hooks, and this module was built without "
      . "them (perl Makefile.PL ASBP_TEST_HOOKS=1)";
    fail("ASBP_REQUIRE_HOOKS=1: $why") if $ENV{ASBP_REQUIRE_HOOKS};
    skip $why, 1;
}

# B has the same user and password as A, so one option set reaches both.
$B->psql_super( "ALTER ROLE llng PASSWORD '" . $A->password . "'" );

# 1. Discovery: the DataSource is dead, the API names A.
my $api = FakePatroni->new( body => cluster_json( leader => $A, others => [$B] ) );
my $args = args( PatroniUrl => $api->url );
capture_start();
my $t0 = time;
my $id = create( $args, 'one' );
my $dt = time - $t0;
my $msgs = capture_end();
is( where( $A, $id ), 1, 'discovery: the session went to the leader the API named' );
is( $api->requests, 1, 'the API was asked once' );
cmp_ok( $dt, '<', 2, 'quickly' );
unlike( $msgs, qr/s3cr3t-pw|\Q${\ $A->password }\E/, 'no password in any message' );
is( read1( $args, $id ), 'one', 'read back' );
create( $args, 'two' ) for 1 .. 3;
is( $api->requests, 1, 'healthy path: the API is not asked again' );

# 2. A hanging first endpoint does not delay discovery.
{
    my $hang = FakePatroni->new( mode => 'hang' );
    my $good = FakePatroni->new( body => cluster_json( leader => $A ) );
    my $a = args( PatroniUrl => join( ', ', $hang->url, $good->url ), PatroniTimeout => 3,
        DataSource => "dbi:Pg:dbname=sessions;host=127.0.0.1;port=$dead;application_name=hang" );
    my $t = time;
    my $i = create( $a, 'hang' );
    my $d = time - $t;
    is( where( $A, $i ), 1, 'hanging first endpoint: session stored on the leader' );
    cmp_ok( $d, '<', 0.5, sprintf( 'hanging first endpoint costs little (%.0f ms of a 3 s PatroniTimeout)', $d * 1000 ) );
    is( $good->requests, 1, 'the healthy endpoint answered' );
}

# 3. The leader changes: A becomes read-only (a demoted leader), the API names B.
{
    is( read1( $args, $id ), 'one', 'pooled connection to A in use' );
    my $on_a = grep { $_ == $A->port } pooled_ports();
    ok( $on_a, 'a connection to A is pooled' );
    $A->psql_super("ALTER SYSTEM SET default_transaction_read_only = on");
    $A->psql_super("SELECT pg_reload_conf()");
    sleep 0.3;
    $api->set_answer( cluster_json( leader => $B, others => [$A] ) );
    capture_start();
    my $i = create( $args, 'after-switch' );
    my $m = capture_end();
    is( where( $B, $i ), 1, 'write after the leader change went to the new leader' );
    is( where( $A, $i ), 0, 'and not to the old one' );
    is( scalar( grep { $_ == $A->port } pooled_ports() ), $on_a - 1,
        'the pooled connection to the demoted leader was dropped' );
    like( $m, qr/reconnected to 127\.0\.0\.1:${\ $B->port }/, 'the recovery is logged' );
    like( $m, qr/read-only|25006/, 'with the reason' );
    $A->psql_super("ALTER SYSTEM RESET default_transaction_read_only");
    $A->psql_super("SELECT pg_reload_conf()");
    $B->psql( "INSERT INTO sessions SELECT id, a_session FROM (VALUES ('$id', '{\"v\":\"one\"}'::jsonb)) v(id, a_session)" );
    is( read1( $args, $id ), 'one', 'reads now go to the new leader too' );
}

# 4. A cluster in transition (no leader yet) costs a delay, not an error.
{
    $api->set_answer( cluster_json( others => [ $A, $B ] ) );    # nobody is leader
    $B->stop;
    my $pid = fork // die;
    if ( !$pid ) {
        sleep 0.8;
        $B->start;
        $api->set_answer( cluster_json( leader => $B, others => [$A] ) );
        POSIX::_exit(0);
    }
    capture_start();
    my $t = time;
    my $i = eval { create( $args, 'transition' ) };
    my $err = $@;
    my $d = time - $t;
    my $m = capture_end();
    waitpid $pid, 0;
    $B->{running} = 1;    # started by the child
    is( $err, '', 'no error while the cluster had no leader for 0.8 s' );
    ok( $i && where( $B, $i ) == 1, 'the write landed on the new leader' );
    cmp_ok( $d, '>=', 0.7, sprintf( 'it waited for the new leader (%.2f s)', $d ) );
    cmp_ok( $d, '<', 3, 'within FailoverTimeout' );
    like( $m, qr/No leader found/, 'the transition is logged with the upstream wording' );
    unlike( $m, qr/Circuit breaker active/, 'a cluster in transition does not trip the breaker' );
}

# 5. API unavailable: cached leader, then circuit breaker (no request reaches
# the API during the delay), then cache expiry.  Each step restarts B while
# a session is tied, so that the untie meets a lost connection and fails over.
sub update_across_restart {
    my ( $a, $i, $v ) = @_;
    tie( my %s, $C, $i, $a );
    $s{v} = $v;
    $B->restart;
    untie %s;
}
SKIP: {
    hooks_or_skip('cached leader, circuit breaker and cache expiry');
    my $api2 = FakePatroni->new( body => cluster_json( leader => $B, others => [$A] ) );
    my $a = args( PatroniUrl => $api2->url, PatroniCircuitBreakerDelay => 30, PatroniCacheTTL => 60,
        DataSource => "dbi:Pg:dbname=sessions;host=127.0.0.1;port=$dead;application_name=breaker" );
    clock(0);
    my $i = create( $a, 'cached' );
    is( $api2->requests, 1, 'leader learnt from the API' );
    $api2->set_answer( '', 503 );
    capture_start();
    update_across_restart( $a, $i, 'v1' );
    my $m = capture_end();
    is( read1( $a, $i ), 'v1', 'API answering 503: the write went through the cached leader' );
    like( $m, qr/Patroni API unavailable.*using cached leader 127\.0\.0\.1:${\ $B->port }/,
        'logged: API unavailable, using cached leader' );
    my $n = $api2->requests;
    is( $n, 2, 'the API was asked once more' );
    capture_start();
    update_across_restart( $a, $i, 'v2' );
    $m = capture_end();
    is( read1( $a, $i ), 'v2', 'within the breaker delay: cached leader again' );
    like( $m, qr/Circuit breaker active/, 'logged: circuit breaker active' );
    is( $api2->requests, $n, 'no request reached the API during the breaker delay' );
    clock(31);    # breaker delay over, cache (60 s) still valid
    capture_start();
    update_across_restart( $a, $i, 'v3' );
    capture_end();
    is( read1( $a, $i ), 'v3', 'after the breaker delay: works' );
    is( $api2->requests, $n + 1, 'the API is asked again after the breaker delay' );
    clock(200);   # cache expired, API still down: the members last seen are tried
    $A->psql_super("ALTER SYSTEM SET default_transaction_read_only = on");
    $A->psql_super("SELECT pg_reload_conf()");
    capture_start();
    update_across_restart( $a, $i, 'v4' );
    $m = capture_end();
    is( read1( $a, $i ), 'v4', 'cache expired and API down: the leader found among the members last seen' );
    like( $m, qr/members last seen/, 'logged: trying the members last seen' );
    $A->psql_super("ALTER SYSTEM RESET default_transaction_read_only");
    $A->psql_super("SELECT pg_reload_conf()");
    clock(0);
}

# 6. Two DataSources keep independent state.
{
    my $down = FakePatroni->new( body => '', status => 500 );
    my $up   = FakePatroni->new( body => cluster_json( leader => $B ) );
    my $d2 = PgServer::free_port();
    my $a1 = args( PatroniUrl => $down->url, FailoverTimeout => 0.5 );
    $a1->{DataSource} = "dbi:Pg:dbname=sessions;host=127.0.0.1;port=$d2";
    my $a2 = args( PatroniUrl => $up->url );
    $a2->{DataSource} = "dbi:Pg:dbname=sessions;host=127.0.0.1;port=$d2;connect_timeout=5";
    capture_start();
    eval { create( $a1, 'x' ) };
    my $e1 = $@;
    my $i2 = eval { create( $a2, 'y' ) };
    my $m = capture_end();
    like( $e1, qr/FailoverTimeout/, 'first DataSource: API down, no leader: clear error' );
    ok( $i2 && where( $B, $i2 ), 'second DataSource unaffected by the first one\'s breaker' );
    is( $up->requests, 1, 'its API was asked' );
}

# 7. TLS through the module options.
SKIP: {
    TestCA::skip_unless_available( 6, https => 1 );
    my $pki = FakePatroni::pki();
    my $tls = FakePatroni->new( body => cluster_json( leader => $B ),
        tls => { cert => $pki->{server_crt}, key => $pki->{server_key} } );
    my $ds = "dbi:Pg:dbname=sessions;host=127.0.0.1;port=$dead;application_name=tls";
    my $ok = eval { create( args( PatroniUrl => $tls->url, PatroniSSLCAFile => $pki->{ca_crt}, DataSource => $ds ), 't' ) };
    ok( $ok, 'HTTPS API with PatroniSSLCAFile' ) or diag $@;
    my $ds2 = "$ds;sslmode=disable";
    capture_start();
    my $bad = eval { create( args( PatroniUrl => $tls->url, DataSource => $ds2, FailoverTimeout => 0.5 ), 't' ) };
    my $m = capture_end();
    ok( !$bad, 'HTTPS API with an unknown CA: refused' );
    like( $m, qr/Patroni API unavailable/, 'and reported as an unavailable API' );
    my $ds3 = "$ds;sslmode=prefer";
    capture_start();
    my $off = eval { create( args( PatroniUrl => $tls->url, DataSource => $ds3, PatroniVerifySSL => 0 ), 't' ) };
    $m = capture_end();
    ok( $off, 'PatroniVerifySSL => 0: accepted' );
    like( $m, qr/PatroniVerifySSL is off/, 'with a warning' );
    my $mtls = FakePatroni->new( body => cluster_json( leader => $B ),
        tls => { cert => $pki->{server_crt}, key => $pki->{server_key}, client_ca => $pki->{client_ca_crt} } );
    my $ds4 = "$ds;sslmode=allow";
    my $c = eval { create( args( PatroniUrl => $mtls->url, PatroniSSLCAFile => $pki->{ca_crt},
        PatroniSSLCertFile => $pki->{client_crt}, PatroniSSLKeyFile => $pki->{client_key}, DataSource => $ds4 ), 't' ) };
    ok( $c, 'client certificate and key from the options: accepted' ) or diag $@;
}

# 8. A COMMIT whose outcome is unknown is redone without a duplicate key.
SKIP: {
    hooks_or_skip('COMMIT outcome unknown');
    my $a = args( PatroniUrl => $api->url );
    $api->set_answer( cluster_json( leader => $B ) );
    Apache::Session::Browseable::Patroni::_inject_commit_lost(1);
    my @w;    # errors only: the module's info lines (the recovery) are warnings too
    local $SIG{__WARN__} = sub { push @w, grep { !/^\Q$C\E\[\d+\] info: / } @_ };
    capture_start();
    my $i = create( $a, 'unknown-outcome' );
    capture_end();
    is( join( '', @w ), '', 'no error when the COMMIT outcome was unknown (it had committed)' );
    is( where( $B, $i ), 1, 'exactly one row' );
    is( read1( $a, $i ), 'unknown-outcome', 'with the last value' );
    # the same with an update in the transaction
    tie( my %s, $C, $i, $a );
    $s{v} = 'updated';
    Apache::Session::Browseable::Patroni::_inject_commit_lost(1);
    capture_start();
    untie %s;
    capture_end();
    is( join( '', @w ), '', 'update with unknown COMMIT outcome: no error' );
    is( read1( $a, $i ), 'updated', 'update kept' );
    # the connection dies before COMMIT: the transaction is redone
    tie( my %t, $C, undef, $a );
    $t{v} = 'redone';
    my $i2 = $t{_session_id};
    $B->psql_super("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'llng' AND pid <> pg_backend_pid()");
    capture_start();
    untie %t;
    capture_end();
    is( join( '', @w ), '', 'connection killed mid-transaction: no error' );
    is( read1( $a, $i2 ), 'redone', 'the transaction was redone on a new connection' );
}

done_testing;
