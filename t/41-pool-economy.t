# Connection economy (issue 13): PoolMaxIdle and PoolIdleTimeout; a
# backend the server ended (pg_terminate_backend, idle_session_timeout, a
# restart, a host that forgot the connection) is replaced on the next
# operation without an error, a warning, a Patroni discovery or a failover;
# max_connections exhausted (SQLSTATE 53300) is a clear error within the
# budget, without discovery.  A real PostgreSQL (t/lib/PgServer.pm) and a
# fake Patroni API (t/lib/FakePatroni.pm) that counts the requests: the
# DataSource works, so the API is asked only on a failover.
use strict;
use File::Temp ();
use warnings;
use Test::More;
use lib 't/lib';
use PgServer;
use FakePatroni;
use Apache::Session::Browseable::Patroni;
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX ();
use Socket qw(SOL_SOCKET SO_LINGER);
use Time::HiRes qw(time sleep);

my $pg = PgServer->start_or_skip;
my $C  = 'Apache::Session::Browseable::Patroni';

# STDERR is where the module's messages go: capture them per step.
my $log_tmp = File::Temp->new( TEMPLATE => 'asbp-economy-XXXXXXXX', TMPDIR => 1 );   # exclusive, unpredictable
my $log = $log_tmp->filename;
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

sub leader_json {
    my ($port) = @_;
    return encode_json( { members => [ { name => 'node1', role => 'leader', state => 'running',
        host => '127.0.0.1', port => $port, api_url => 'http://127.0.0.1:1/patroni', timeline => 1 } ] } );
}

sub create { my ( $a, $v ) = @_; tie( my %s, $C, undef, $a ); $s{v} = $v; my $id = $s{_session_id}; untie %s; $id }
sub read1  { my ( $a, $id ) = @_; tie( my %s, $C, $id, $a ); my $v = $s{v}; untie %s; $v }
sub clock  { Apache::Session::Browseable::Patroni::_clock_offset_ms( $_[0] * 1000 ) }

# The backends of application name $app: their pids, sorted.
sub backends {
    my ( $server, $app ) = @_;
    my @pids = sort { $a <=> $b } split /\n/,
      $server->psql_super("SELECT pid FROM pg_stat_activity WHERE application_name = '$app'");
    return @pids;
}

# The backends of $app are gone (the server ends them asynchronously).
sub wait_gone {
    my ( $server, $app, @pids ) = @_;
    my %old = map { $_ => 1 } @pids;
    for ( 1 .. 100 ) {
        return 1 unless grep { $old{$_} } backends( $server, $app );
        sleep 0.05;
    }
    return 0;
}

sub hooks_or_skip {
    my ($what) = @_;
    return if Apache::Session::Browseable::Patroni::_test_hooks();
    my $why = "$what: needs the test hooks (perl Makefile.PL ASBP_TEST_HOOKS=1)";
    fail("ASBP_REQUIRE_HOOKS=1: $why") if $ENV{ASBP_REQUIRE_HOOKS};
    skip $why, 1;
}

my $api = FakePatroni->new( body => leader_json( $pg->port ) );

sub args {
    my ( $app, %o ) = @_;
    return { DataSource => $pg->dsn . ";application_name=$app", UserName => $pg->user,
        Password => $pg->password, PatroniUrl => $api->url, FailoverTimeout => 3, %o };
}

# Runs $code (which ties); checks that it did not fail, warn, ask the API,
# fail over or open the breaker.
sub silently {
    my ( $name, $a, $code ) = @_;
    my $before = $C->status($a);
    my $asked  = $api->requests;
    capture_start();
    my $ok = eval { $code->(); 1 };
    my $err = $@;
    my $msgs = capture_end();
    my $after = $C->status($a);
    ok( $ok, "$name: the next tie succeeds" ) or diag $err;
    is( $msgs, '', "$name: nothing logged" );
    is( $api->requests, $asked, "$name: the Patroni API was not asked" );
    is( $after->{counters}{$_}, $before->{counters}{$_}, "$name: counter $_ unchanged" )
      for qw(discoveries failovers api_failures);
    ok( !$after->{breaker_open}, "$name: breaker closed" );
}

# ---- 1. A backend the server ended is replaced silently ---------------------

{
    my $a  = args('econ-ended');
    my $id = create( $a, 'kept' );
    is( read1( $a, $id ), 'kept', 'a session stored and read back' );
    my @b = backends( $pg, 'econ-ended' );
    is( scalar @b, 1, 'one pooled connection' );

    $pg->psql_super("SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
          . "WHERE application_name = 'econ-ended'");
    silently( 'pg_terminate_backend', $a, sub { is( read1( $a, $id ), 'kept', 'read after terminate' ) } );
    my @n = backends( $pg, 'econ-ended' );
    ok( @n == 1 && $n[0] != $b[0], 'a new backend serves it' );

    # idle_session_timeout on the role: the server ends the idle pooled
    # connection by itself (it holds the setting from its start).
    $pg->psql_super("ALTER ROLE llng SET idle_session_timeout = '300ms'");
    $pg->psql_super("SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
          . "WHERE application_name = 'econ-ended'");
    read1( $a, $id );
    @b = backends( $pg, 'econ-ended' );
    ok( wait_gone( $pg, 'econ-ended', @b ), 'the server ended the idle connection (idle_session_timeout)' );
    silently( 'idle_session_timeout', $a, sub { is( read1( $a, $id ), 'kept', 'read after the timeout' ) } );
    $pg->psql_super("ALTER ROLE llng RESET idle_session_timeout");

    $pg->restart;
    silently( 'server restart', $a, sub { is( read1( $a, $id ), 'kept', 'read after a restart' ) } );
    silently( 'server restart', $a, sub { create( $a, 'after restart' ) } );
}

# ---- 2. A connection the host forgot: reset on its first use ----------------
#
# A relay between the module and PostgreSQL that, on request, answers the
# next bytes of the connections it relays with a TCP reset (as a rebooted
# host or a NAT that lost its state does): nothing arrives while the
# connection is idle, so the check at checkout sees nothing; the first
# statement finds the connection lost.

sub reset_relay {
    my ($target) = @_;
    my $lsn = IO::Socket::INET->new( LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 16,
        ReuseAddr => 1 ) or die "relay: $!";
    my $flag = File::Temp::tempdir( 'asbp-economy-relay-XXXXXXXX', TMPDIR => 1, CLEANUP => 1 )
      . '/reset';    # a private directory: nobody else can plant the flag
    my $parent = $$;
    my $pid = fork // die;
    if ( !$pid ) {
        my $sel = IO::Select->new($lsn);
        my %peer;    # fileno => [socket, its peer, is_client, generation]
        my $gen = 0;
        while ( getppid() == $parent ) {
            my @ready = $sel->can_read(0.05);
            # Read after the wait: a reset requested before the data was
            # sent is seen.
            $gen = ( -e $flag ? ( -s $flag ) : 0 );
            for my $s (@ready) {
                if ( $s == $lsn ) {
                    my $c = $lsn->accept or next;
                    my $u = IO::Socket::INET->new( PeerAddr => '127.0.0.1', PeerPort => $target ) or next;
                    $peer{ fileno $c } = [ $c, $u, 1, $gen ];
                    $peer{ fileno $u } = [ $u, $c, 0, $gen ];
                    $sel->add( $c, $u );
                    next;
                }
                my $p = $peer{ fileno $s } or next;
                my ( $me, $other, $client, $g ) = @$p;
                my $n = sysread( $me, my $buf, 65536 );
                if ( $n && !( $client && $g < $gen ) ) {
                    syswrite( $other, $buf );
                    next;
                }
                # EOF, or data of a client from before the reset: close both
                # (a reset towards the client in the second case).
                setsockopt( $me, SOL_SOCKET, SO_LINGER, pack( 'ii', 1, 0 ) ) if $n && $client;
                delete $peer{ fileno $_ } for $me, $other;
                $sel->remove( $me, $other );
                close $me;
                close $other;
            }
        }
        POSIX::_exit(0);
    }
    my $port = $lsn->sockport;
    close $lsn;
    return { pid => $pid, port => $port, flag => $flag,
        reset => sub { open my $f, '>>', $flag or die; print $f 'x'; close $f } };
}

{
    my $relay = reset_relay( $pg->port );
    my $a = args( 'econ-reset',
        DataSource => "dbi:Pg:dbname=sessions;host=127.0.0.1;port=$relay->{port};application_name=econ-reset" );
    my $id = create( $a, 'relayed' );
    is( read1( $a, $id ), 'relayed', 'through the relay' );
    my @b = backends( $pg, 'econ-reset' );
    is( scalar @b, 1, 'one pooled connection' );
    $relay->{reset}->();
    silently( 'connection reset on first use', $a,
        sub { is( read1( $a, $id ), 'relayed', 'read after the reset' ) } );
    ok( wait_gone( $pg, 'econ-reset', @b ), 'the connection was reset and replaced' );
    @b = backends( $pg, 'econ-reset' );
    $relay->{reset}->();
    silently( 'connection reset on first use (write)', $a, sub { create( $a, 'relayed 2' ) } );
    ok( wait_gone( $pg, 'econ-reset', @b ), 'the connection was reset and replaced' );
    kill 'TERM', $relay->{pid};
    waitpid $relay->{pid}, 0;
    unlink $relay->{flag};
}

# ---- 3. PoolMaxIdle -----------------------------------------------------------

{
    my $a = args( 'econ-max0', PoolMaxIdle => 0 );
    my $id = create( $a, 'zero' );
    is( read1( $a, $id ), 'zero', 'PoolMaxIdle 0 works' );
    my $left = 1;
    for ( 1 .. 100 ) { last unless $left = () = backends( $pg, 'econ-max0' ); sleep 0.05 }
    is( $left, 0, 'PoolMaxIdle 0: no connection left open after untie' );

    my $two = args( 'econ-max', PoolMaxIdle => 2 );
    my @ids = map { create( $two, $_ ) } 1 .. 3;
    my @b;
    {
        # A tie of a stored session holds its connection (the row lock).
        tie( my %x, $C, $ids[0], $two );
        tie( my %y, $C, $ids[1], $two );
        tie( my %z, $C, $ids[2], $two );
        @b = backends( $pg, 'econ-max' );
        untie %x;
        untie %y;
        untie %z;
    }
    is( scalar @b, 3, 'three nested ties: three connections' );
    ok( wait_gone( $pg, 'econ-max', $b[0] ) || wait_gone( $pg, 'econ-max', $b[1] )
          || wait_gone( $pg, 'econ-max', $b[2] ), 'one closed when they were given back' );
    is( scalar backends( $pg, 'econ-max' ), 2, 'PoolMaxIdle 2: two kept' );

    # Another option set on the same pool key (DataSource, user, password)
    # applies its own limit to the connection it gives back.
    my $one = args( 'econ-max', PoolMaxIdle => 1, TableName => 'sessions' );
    read1( $one, create( $one, 'one' ) );
    @b = backends( $pg, 'econ-max' );
    ok( @b == 1 || wait_gone( $pg, 'econ-max', $b[0] ) || wait_gone( $pg, 'econ-max', $b[1] ),
        'an option set with PoolMaxIdle 1 on the same key leaves one' );
    is( scalar backends( $pg, 'econ-max' ), 1, '... one connection' );

    eval { read1( args( 'x', PoolMaxIdle => -1 ), $id ) };
    like( $@, qr/invalid PoolMaxIdle '-1': expected a whole number from 0 to 1000/, 'a bad PoolMaxIdle is refused' );
}

# ---- 4. PoolIdleTimeout, by the module's clock ------------------------------

SKIP: {
    hooks_or_skip('PoolIdleTimeout');
    clock(0);
    my $a  = args( 'econ-idle', PoolIdleTimeout => 60 );
    my $id = create( $a, 'idle' );
    my @b  = backends( $pg, 'econ-idle' );
    is( scalar @b, 1, 'a pooled connection' );
    clock(59);
    read1( $a, $id );
    is_deeply( [ backends( $pg, 'econ-idle' ) ], \@b, 'idle for 59 s of 60: reused' );
    clock(59 + 61);
    silently( 'PoolIdleTimeout expired', $a, sub { is( read1( $a, $id ), 'idle', 'read' ) } );
    ok( wait_gone( $pg, 'econ-idle', @b ), 'idle for 61 s of 60: closed, a new one opened' );
    is( scalar backends( $pg, 'econ-idle' ), 1, '... one connection' );

    # Any pool operation closes the connections idle too long, of any key.
    @b = backends( $pg, 'econ-idle' );
    clock(59 + 61 + 61);
    read1( args( 'econ-other', PoolIdleTimeout => 60 ), $id );
    ok( wait_gone( $pg, 'econ-idle', @b ), 'a tie on another key closed the expired one' );

    my $forever = args( 'econ-forever', PoolIdleTimeout => 0 );
    create( $forever, 'f' );
    @b = backends( $pg, 'econ-forever' );
    clock( 10 * 86400 );
    read1( $forever, $id );
    is_deeply( [ backends( $pg, 'econ-forever' ) ], \@b, 'PoolIdleTimeout 0: kept for ever' );

    my $dflt = args('econ-default');
    clock(0);
    create( $dflt, 'd' );
    @b = backends( $pg, 'econ-default' );
    clock(299);
    read1( $dflt, $id );
    is_deeply( [ backends( $pg, 'econ-default' ) ], \@b, 'default: reused after 299 s' );
    clock( 299 + 301 );
    read1( $dflt, $id );
    ok( wait_gone( $pg, 'econ-default', @b ), 'default: closed after 300 s idle' );
    clock(0);
}

# ---- 5. max_connections exhausted ------------------------------------------

{
    # Three slots for the application (the fourth is the superuser's, for
    # psql_super); the test holds them all, as other clients would.
    my $full = PgServer->new( settings => { max_connections => 4, superuser_reserved_connections => 1 } );
    my $fapi = FakePatroni->new( body => leader_json( $full->port ) );
    my $a = { $full->options, PatroniUrl => $fapi->url, FailoverTimeout => 2, PoolMaxIdle => 0 };
    my $id = create( $a, 'full' );
    my $llng = sub { $full->psql_super("SELECT count(*) FROM pg_stat_activity WHERE usename = 'llng'") };
    for ( 1 .. 100 ) { last unless $llng->(); sleep 0.05 }
    # A holder is a psql sleeping on its connection.  The polls of
    # pg_stat_activity (as the superuser) take a slot too while they run:
    # a holder refused meanwhile exits and is started again.
    my $hold = sub {
        my $pid = fork // die;
        return $pid if $pid;
        $ENV{PGPASSWORD} = $full->password;
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        { exec "$full->{bin}/psql", '-X', '-q', '-h', '127.0.0.1', '-p', $full->port, '-U',
            $full->user, '-d', $full->dbname, '-c', 'SELECT pg_sleep(120)' }
        POSIX::_exit(127);
    };
    my @held = map { $hold->() } 1 .. 3;
    my $n = 0;
    for ( 1 .. 40 ) {
        sleep 0.25;
        for (@held) { $_ = $hold->() if waitpid( $_, POSIX::WNOHANG() ) == $_ }
        sleep 0.25;
        last if ( $n = $llng->() ) >= 3;
    }
    is( $n, 3, 'the server is full (three connections held)' );
    my $before = $C->status($a);
    capture_start();
    my $t0 = time;
    my $v = eval { read1( $a, $id ) };
    my $err = $@;
    my $dt = time - $t0;
    capture_end();
    my $after = $C->status($a);
    ok( !defined $v, 'the tie fails' );
    like( $err, qr/no connection slot left \(too many connections/, 'the error says what happened' );
    like( $err, qr/127\.0\.0\.1.*port.*${\ $full->port }/, '... names the server' );
    like( $err, qr/raise it, lower PoolMaxIdle .* or put PgBouncer in front/, '... and the fixes' );
    like( $err, qr/SQLSTATE 53300/, '... with the SQLSTATE' );
    unlike( $err, qr/\Q${\ $full->password }\E/, '... and no password' );
    cmp_ok( $dt, '<', 2, sprintf( 'within FailoverTimeout (%.2f s)', $dt ) );
    is( $fapi->requests, 0, 'the Patroni API was not asked (not a wrong node)' );
    is( $after->{counters}{$_}, $before->{counters}{$_}, "counter $_ unchanged" )
      for qw(discoveries failovers api_failures);
    ok( !$after->{breaker_open}, 'breaker closed' );
    kill 'TERM', @held;
    waitpid $_, 0 for @held;
    $full->psql_super("SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE usename = 'llng'");
    for ( 1 .. 100 ) {
        last unless $llng->();
        sleep 0.05;
    }
    is( read1( $a, $id ), 'full', 'works again once slots are free' );
    $full->stop;
}

done_testing;
