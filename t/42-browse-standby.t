# BrowseFromStandby (issue 13): the read-only class methods (searchOn,
# searchOnExpr, get_key_from_all_sessions) read from the synchronous
# standby the Patroni API names; deleteIfLowerThan and ties stay on the
# leader; when no standby can serve, the leader does, without an error.
#
# Two real PostgreSQL servers (not replicating): A plays the leader, B the
# synchronous standby.  Both hold the same ids, each row tagged with its
# server, so every result tells which one answered.  A fake Patroni API
# names A as leader and B as sync_standby.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use IO::Socket::INET;
use JSON::PP;
use Time::HiRes ();
use PgServer;
use FakePatroni;
use BrowseData;
use Apache::Session::Browseable::Patroni;

my $A = PgServer->start_or_skip;
my $B = PgServer->new;
$B->psql_super( "ALTER ROLE llng PASSWORD '" . $A->password . "'" );
my $C = 'Apache::Session::Browseable::Patroni';

sub fill {
    for my $pg ( [ $A, 'A' ], [ $B, 'B' ] ) {
        my ( $srv, $tag ) = @$pg;
        $srv->psql( "TRUNCATE sessions; INSERT INTO sessions SELECT lpad(to_hex(i), 64, '0'), "
              . "jsonb_build_object('_session_kind', 'SSO', 'uid', 'user' || i, "
              . "'_whatToTrace', 'user' || i, 'server', '$tag', '_utime', i) "
              . "FROM generate_series(1, 50) i" );
    }
}

sub member {
    my ( $role, $host, $port, $state ) = @_;
    return { name => "n$port", role => $role, state => $state // 'running', host => $host,
        port => $port, api_url => "http://127.0.0.1:1/patroni" };
}

# The API's answer: A the leader, then the other members given.
sub answer { encode_json( { members => [ member( 'leader', '127.0.0.1', $A->port ), @_ ] } ) }
my $sync = member( 'sync_standby', '127.0.0.1', $B->port );

# Each scenario has its own DataSource (the cluster state is kept per
# DataSource): application_name differs.
my $n = 0;
sub opts {
    my ( $api, %o ) = @_;
    $n++;
    return { DataSource => "dbi:Pg:dbname=sessions;host=127.0.0.1;port=" . $A->port
          . ";application_name=t42-$n", UserName => 'llng', Password => $A->password,
        PatroniUrl => $api->url, %o };
}

# Which servers answered the three read-only methods (one letter each,
# in the order searchOn, searchOnExpr, get_key_from_all_sessions with a
# field list, and with a code reference), and the log they wrote.
sub servers_of {
    my (%r) = @_;
    my %seen = map { $_->{server} => 1 } values %r;
    return join '', sort keys %seen;
}

sub reads {
    my ($args) = @_;
    my ( $log, @who ) = BrowseData::capture_stderr {
        my @w;
        push @w, servers_of( %{ $C->searchOn( {%$args}, uid => 'user7', 'server' ) } );
        push @w, servers_of( %{ $C->searchOnExpr( {%$args}, uid => 'user1*', 'server' ) } );
        push @w, servers_of( %{ $C->get_key_from_all_sessions( {%$args}, ['server'] ) } );
        my %s;
        $C->get_key_from_all_sessions( {%$args}, sub { $s{ $_[0]{server} }++; undef } );
        push @w, join '', sort keys %s;
        @w;
    };
    return ( join( ',', @who ), $log );
}

fill();
my $api = FakePatroni->new( body => answer($sync) );

# ---- without the option: everything on the leader ---------------------------
{
    my ( $who, $log ) = reads( opts($api) );
    is( $who, 'A,A,A,A', 'default: the four reads come from the leader' );
    is( $api->requests, 0, 'default: the API is not asked for reads' );
    my ( $who0, $log0 ) = reads( opts( $api, BrowseFromStandby => 0 ) );
    is( $who0, 'A,A,A,A', 'BrowseFromStandby => 0: the leader' );
}

# ---- with the option: the standby serves the reads --------------------------
{
    my $args = opts( $api, BrowseFromStandby => 1 );
    my ( $who, $log ) = reads($args);
    is( $who, 'B,B,B,B', 'BrowseFromStandby: the four reads come from the sync standby' );
    is( $log, '', 'nothing logged' ) or diag $log;
    is( $api->requests, 1, 'the API was asked once (the standby is kept for PatroniCacheTTL)' );
    my $r = $C->searchOnExpr( {%$args}, uid => 'user2*', 'uid' );
    is( scalar keys %$r, 11, 'searchOnExpr on the standby: the whole result' );

    # deleteIfLowerThan goes to the leader.
    my @res = $C->deleteIfLowerThan( {%$args}, { or => { _utime => 6 } } );
    is_deeply( \@res, [ 1, 5 ], 'deleteIfLowerThan: 5 rows' );
    is( $A->psql('SELECT count(*) FROM sessions'), 45, '... deleted on the leader' );
    is( $B->psql('SELECT count(*) FROM sessions'), 50, '... not on the standby' );

    # Ties go to the leader: read, write.
    my $id = sprintf '%064x', 7;
    tie my %s, $C, $id, {%$args};
    is( $s{server}, 'A', 'a tie reads from the leader' );
    $s{seen} = 1;
    untie %s;
    is( $A->psql("SELECT a_session->>'seen' FROM sessions WHERE id = '$id'"), 1,
        'a tie writes to the leader' );
    tie %s, $C, undef, {%$args};
    my $new = $s{_session_id};
    $s{server} = 'new';
    untie %s;
    is( $A->psql("SELECT count(*) FROM sessions WHERE id = '$new'"), 1, 'a new session: on the leader' );
    is( $B->psql("SELECT count(*) FROM sessions WHERE id = '$new'"), 0, '... not on the standby' );
    my ( $who2, $log2 ) = reads($args);
    is( $who2, 'B,B,B,B', 'the reads still come from the standby after the writes' );
    cmp_ok( $B->psql_super("SELECT count(*) FROM pg_stat_activity WHERE application_name = 't42-$n'"),
        '>=', 1, 'the standby holds the reads\' pooled connection (pg_stat_activity)' );
}
fill();

# ---- the standby is down: the leader serves, no error -----------------------
{
    my $args = opts( $api, BrowseFromStandby => 1 );
    my ($who) = reads($args);
    is( $who, 'B,B,B,B', 'standby up: it serves' );
    $B->stop('immediate');
    my ( $who2, $log ) = reads($args);
    is( $who2, 'A,A,A,A', 'standby down: the leader serves the four reads, no error' );
    my @lines = $log =~ /^.*BrowseFromStandby.*$/mg;
    is( scalar @lines, 1, 'one info line says so' ) or diag $log;
    like( $lines[0] // '', qr/ info: .*reading table sessions from the leader, not the synchronous standby/,
        '... at info level, naming the table' );

    # A fresh process-level state: a new option set whose standby was
    # never reached (a refused connection, not a pooled one).
    my $args2 = opts( $api, BrowseFromStandby => 1 );
    my ( $who3, $log3 ) = reads($args2);
    is( $who3, 'A,A,A,A', 'standby down, never reached: the leader serves' );
    like( $log3, qr/BrowseFromStandby: .*cannot connect to .*127\.0\.0\.1/,
        '... the info line says the standby cannot be reached' );
    is( scalar( () = $log3 =~ /BrowseFromStandby/g ), 1, '... once: the standby is then forgotten' );
    $B->start;
}

# ---- a frozen standby (accepts, never answers): one wait, then forgotten ----
{
    my $frozen = IO::Socket::INET->new( LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 16,
        Proto => 'tcp' ) or die "listen: $!";
    my $api2 = FakePatroni->new(
        body => answer( member( 'sync_standby', '127.0.0.1', $frozen->sockport ) ) );
    my $args = opts( $api2, BrowseFromStandby => 1, ConnectTimeout => 1 );
    my $t0 = Time::HiRes::time();
    my ( $who, $log ) = reads($args);
    my $dt = Time::HiRes::time() - $t0;
    is( $who, 'A,A,A,A', 'frozen standby: the leader serves, no error' );
    like( $log, qr/BrowseFromStandby: .*synchronous standby/, '... said at info level' );
    cmp_ok( $dt, '<', 1.8, sprintf( '... one ConnectTimeout waited for four reads (%.2f s): '
          . 'the standby is forgotten after it failed', $dt ) );
    cmp_ok( $dt, '>=', 0.9, '... (and that one wait was ConnectTimeout)' );
}

# ---- the API names no synchronous standby -----------------------------------
{
    my $api2 = FakePatroni->new( body => answer( member( 'replica', '127.0.0.1', $B->port ) ) );
    my $args = opts( $api2, BrowseFromStandby => 1 );
    my ( $who, $log ) = reads($args);
    is( $who, 'A,A,A,A', 'no sync standby in the answer (asynchronous replica only): the leader' );
    my @lines = $log =~ /^.*BrowseFromStandby.*$/mg;
    is( scalar @lines, 1, 'four reads, one info line (the repeats are suppressed)' ) or diag $log;
    like( $lines[0] // '', qr/names no synchronous standby/, '... saying why' );
    is( $api2->requests, 1, 'the API is asked once: "none" is kept for PatroniCacheTTL' );

    # A standby that is starting is not used either.
    my $api3 = FakePatroni->new(
        body => answer( member( 'sync_standby', '127.0.0.1', $B->port, 'starting' ) ) );
    ($who) = reads( opts( $api3, BrowseFromStandby => 1 ) );
    is( $who, 'A,A,A,A', 'a sync standby that is not running: the leader' );
}

# ---- the standby's host is not allowed --------------------------------------
{
    my $api2 = FakePatroni->new( body => answer( member( 'sync_standby', 'localhost', $B->port ) ) );
    my $before = $B->psql_super("SELECT count(*) FROM pg_stat_activity WHERE usename = 'llng'");
    my ( $who, $log ) = reads( opts( $api2, BrowseFromStandby => 1 ) );
    is( $who, 'A,A,A,A', 'a standby whose host is not allowed: the leader' );
    like( $log, qr/synchronous standby localhost:\d+ is a host that is not allowed.*PatroniAllowedHosts/,
        '... the info line names the host and the option' );
    is( $B->psql_super("SELECT count(*) FROM pg_stat_activity WHERE usename = 'llng'"), $before,
        '... and it was never connected to' );
    my ($who2) = reads( opts( $api2, BrowseFromStandby => 1, PatroniAllowedHosts => 'localhost' ) );
    is( $who2, 'B,B,B,B', 'allowed by PatroniAllowedHosts: the standby serves' );
}

# ---- an answer applied by a write's failover teaches the standby too --------
{
    my $api2 = FakePatroni->new( body => answer($sync) );
    my $dead = PgServer::free_port();
    my $args = opts( $api2, BrowseFromStandby => 1 );
    $args->{DataSource} =~ s/port=\d+/port=$dead/;
    tie my %s, $C, sprintf( '%064x', 9 ), {%$args};
    is( $s{server}, 'A', 'a tie through discovery (DataSource on a dead port): the leader' );
    untie %s;
    my $asked = $api2->requests;
    my ($who) = reads($args);
    is( $who, 'B,B,B,B', 'then the reads come from the standby that answer named' );
    is( $api2->requests, $asked, '... without asking the API again' );
}

# ---- the API does not answer: the leader, within the budget -----------------
{
    my $dead = FakePatroni->new( mode => 'hang' );
    my $args = opts( $dead, BrowseFromStandby => 1, PatroniTimeout => 1, FailoverTimeout => 4 );
    my $t0 = Time::HiRes::time();
    my ( $who, $log ) = reads($args);
    my $dt = Time::HiRes::time() - $t0;
    is( $who, 'A,A,A,A', 'API hanging: the leader serves' );
    like( $log, qr/no synchronous standby known/, '... saying no standby is known' );
    cmp_ok( $dt, '<', 3, sprintf( '... within the budget (%.2f s for four reads: the breaker '
          . 'spares the later ones)', $dt ) );
}

done_testing;
