# QueryTimeout bounds each wait for the server during a stream, counted
# again whenever data arrives; the purge's DELETE runs with
# statement_timeout = QueryTimeout; a failure before the first row is
# retried invisibly.  The "table" is a view whose rows come
# slowly (pg_sleep in its WHERE clause): TableName may name a view.  The
# server sends rows in blocks of about 8 kB, so each row of the view
# carries 9 kB of padding: every row then reaches the client on its own.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use PgServer;
use BrowseData qw();
use Time::HiRes qw(time);
use POSIX ();
use Apache::Session::Browseable::Patroni;

my $pg = PgServer->start_or_skip;
my $C  = 'Apache::Session::Browseable::Patroni';
BrowseData::load( $pg, [ 0 .. 7 ] );
$pg->psql(q{CREATE VIEW slow AS SELECT id, a_session || jsonb_build_object('pad', repeat('x', 9000)) AS a_session
    FROM sessions WHERE pg_sleep(0.4) IS NOT NULL});

{
    # 8 rows, one every 0.4 s: 3.2 s in all, never 1.5 s without data
    my $args = { $pg->options, TableName => 'slow', QueryTimeout => 1.5 };
    my $t0   = time;
    my $got  = $C->get_key_from_all_sessions( $args, [ '_utime', 'pad' ] );
    my $dt   = time - $t0;
    is( scalar keys %$got, 8, 'a slow stream that keeps moving is not cut' );
    cmp_ok( $dt, '>', 1.5, sprintf( '... although it took %.1f s, more than QueryTimeout', $dt ) );
}
{
    my $args = { $pg->options, TableName => 'slow', QueryTimeout => 0.2 };
    my $t0   = time;
    my $ok   = eval { $C->get_key_from_all_sessions( $args, [ '_utime', 'pad' ] ); 1 };
    my $dt   = time - $t0;
    ok( !$ok, 'a server silent for longer than QueryTimeout: error' );
    like( $@, qr/no data from \S+ for 200 ms \(QueryTimeout\)/, '... saying so' );
    cmp_ok( $dt, '<', 3, sprintf( '... given up after %.1f s (not retried elsewhere)', $dt ) );

    $t0 = time;
    my ( $err, @r ) = BrowseData::capture_stderr( sub { $C->deleteIfLowerThan( $args, { or => { _utime => 1800000000 } } ) } );
    is_deeply( \@r, [0], 'deleteIfLowerThan slower than QueryTimeout: 0' );
    like( $err, qr/deleteIfLowerThan failed: .*statement timeout.*SQLSTATE 57014/, '... stopped by the server\'s statement_timeout' );
    is( $pg->psql('SELECT count(*) FROM sessions'), 8, '... nothing deleted' );
}
# A failure before the first row arrives is retried at once, invisibly:
# the server process is terminated as soon as the query is seen running,
# while its first row is held back.  The hold is lifted (committed) before
# the kill, so the retry gets its rows at once, however long it took to
# find the query on a slow machine.
{
    $pg->psql(q{CREATE TABLE hold (active boolean); INSERT INTO hold VALUES (true)});
    $pg->psql(q{CREATE VIEW slow_start AS SELECT id, a_session FROM sessions
        WHERE pg_sleep(CASE WHEN id = (SELECT min(id) FROM sessions) AND (SELECT active FROM hold) THEN 30 ELSE 0 END) IS NOT NULL});
    my $args = { $pg->options, TableName => 'slow_start' };
    my $pid  = fork // die "fork: $!";
    if ( !$pid ) {
        my $running = q{FROM pg_stat_activity WHERE query LIKE 'SELECT id, a_session ->> ''_utime''%' AND pid <> pg_backend_pid()};
        for ( 1 .. 400 ) {
            if ( $pg->psql_super("SELECT count(*) $running") ) {
                $pg->psql_super(q{UPDATE hold SET active = false});
                $pg->psql_super("SELECT count(pg_terminate_backend(pid)) $running");
                last;
            }
            select undef, undef, undef, 0.05;
        }
        POSIX::_exit(0);
    }
    my ( $err, $got ) = BrowseData::capture_stderr( sub { $C->get_key_from_all_sessions( $args, ['_utime'] ) } );
    waitpid $pid, 0;
    is_deeply( $got, BrowseData::fields_of( [ 0 .. 7 ], '_utime' ), 'server process killed before the first row: complete result' );
    like( $err, qr/info: .*reconnected to \S+, operation succeeded after \d+ ms \(first error: .*terminating connection/,
        '... after a transparent retry on a new connection (logged)' );
    unlike( $err, qr/restarting a read/, '... not a restart of a stream' );
}
is( scalar keys %{ $C->get_key_from_all_sessions( { $pg->options }, ['_utime'] ) }, 8, 'the module works afterwards' );

done_testing;
