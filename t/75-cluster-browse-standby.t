# BrowseFromStandby on a real 3-node Patroni cluster in synchronous mode
# (issue 13): the read-only class methods are served by the synchronous
# standby (seen in pg_stat_activity on each node while a read runs, by the
# option set's application_name), their results equal the leader's, and
# deleteIfLowerThan and ties still go to the leader.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use PatroniCluster;
use File::Temp ();
use Time::HiRes qw(time sleep);
use Apache::Session::Browseable::Patroni;

my $c = PatroniCluster->start_or_skip( sync => 1 );
$c->wait_healthy( timeout => 60 );
my $C = 'Apache::Session::Browseable::Patroni';
my ( $leader, undef, $lport ) = $c->leader;
my $sync = $c->sync_standby;
ok( $sync && $sync != $leader, "the cluster has a synchronous standby (node$sync; leader node$leader)" )
  or BAIL_OUT('no synchronous standby');
my ($other) = grep { $_ != $leader && $_ != $sync } $c->nodes;

my $N = 400;
$c->psql( $leader, "INSERT INTO sessions SELECT lpad(to_hex(i), 64, '0'), jsonb_build_object("
      . "'_session_kind', CASE WHEN i % 10 = 0 THEN 'Persistent' ELSE 'SSO' END, "
      . "'uid', 'user' || (i % 50), '_whatToTrace', 'user' || (i % 50), '_utime', i, "
      . "'ipAddr', '10.0.' || (i % 7) || '.1') FROM generate_series(1, $N) i" );
# A synchronous commit is flushed on the standby; its replay may trail a bit.
my $t0 = time;
sleep 0.05 until $c->psql( $sync, 'SELECT count(*) FROM sessions' ) == $N or time - $t0 > 20;
is( $c->psql( $sync, 'SELECT count(*) FROM sessions' ), $N, 'the standby has replayed the rows' );

sub args {
    my ( $app, %o ) = @_;
    return { DataSource => $c->dsn($leader) . ";application_name=$app", UserName => $c->user,
        Password => $c->password, PatroniUrl => $c->patroni_url, %o };
}
my $on  = args( 't75-standby', BrowseFromStandby => 1 );
my $off = args('t75-leader');

# Connections of an application_name on each node: "node=count ...".
sub where {
    my ( $app, $extra ) = @_;
    $extra //= '';
    return join ' ', map {
        my $n = $c->psql( $_, "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$app'$extra",
            user => 'super' );
        "node$_=$n"
    } $c->nodes;
}

# The module's log lines (STDERR) go to a file, read at the end (Test::More
# keeps its own copy of STDERR).
my $logf = File::Temp->new;
open my $saved_err, '>&', \*STDERR or die "dup STDERR: $!";
open STDERR, '>', $logf->filename or die "STDERR: $!";

# ---- the same results from the standby and from the leader ------------------
for my $call (
    [ 'searchOn', sub { $C->searchOn( {%{ $_[0] }}, uid => 'user7', '_utime', 'ipAddr' ) } ],
    [ 'searchOn (_session_kind)', sub { $C->searchOn( {%{ $_[0] }}, _session_kind => 'Persistent' ) } ],
    [ 'searchOnExpr', sub { $C->searchOnExpr( {%{ $_[0] }}, uid => 'user1*', 'uid', '_utime' ) } ],
    [ 'get_key_from_all_sessions (fields)',
        sub { $C->get_key_from_all_sessions( {%{ $_[0] }}, [ '_session_kind', 'uid' ] ) } ],
    [ 'get_key_from_all_sessions (whole)', sub { $C->get_key_from_all_sessions( {%{ $_[0] }} ) } ],
  )
{
    my ( $name, $code ) = @$call;
    my $s = $code->($on);
    my $l = $code->($off);
    ok( scalar keys %$l, "$name: the leader returns rows (" . scalar( keys %$l ) . ')' );
    is_deeply( $s, $l, "$name: the standby's result equals the leader's" );
}
my $r = $C->get_key_from_all_sessions( {%$on}, sub { $_[0]{_utime} } );
is( scalar keys %$r, $N, 'get_key_from_all_sessions (code reference): every session' );

is( where('t75-standby'), join( ' ', map { "node$_=" . ( $_ == $sync ? 1 : 0 ) } $c->nodes ),
    'the reads\' pooled connection is on the synchronous standby only' );
cmp_ok( ( where('t75-leader') =~ /node$leader=(\d+)/ )[0], '>=', 1,
    'without the option: on the leader' );

# ---- while a long read runs, it runs on the standby -------------------------
{
    my $long = args( 't75-long', BrowseFromStandby => 1 );
    my $q = " AND query LIKE 'SELECT id, a_session FROM %'";
    my $seen;
    my $n = 0;
    $C->get_key_from_all_sessions( {%$long}, sub {
        $seen //= where( 't75-long', $q ) if ++$n == 10;
        undef;
    } );
    is( $seen, join( ' ', map { "node$_=" . ( $_ == $sync ? 1 : 0 ) } $c->nodes ),
        "during get_key_from_all_sessions with a code reference: its statement is on node$sync" );
}

# ---- writes stay on the leader ----------------------------------------------
{
    my @d = $C->deleteIfLowerThan( {%$on}, { or => { _utime => 11 } } );
    is_deeply( \@d, [ 1, 10 ], 'deleteIfLowerThan with the option: 10 rows' );
    like( where('t75-standby'), qr/node$leader=1/, '... it ran on the leader' );
    is( $c->psql( $leader, 'SELECT count(*) FROM sessions' ), $N - 10, '... the rows went from the leader' );

    tie my %s, $C, undef, {%$on};
    $s{uid} = 'standby-test';
    my $id = $s{_session_id};
    untie %s;
    is( $c->psql( $leader, "SELECT a_session->>'uid' FROM sessions WHERE id = '$id'" ), 'standby-test',
        'a tie with the option writes to the leader' );
    # The standby sees it once replayed; the search on it then finds it.
    $t0 = time;
    my $found;
    until ( $found or time - $t0 > 10 ) {
        $found = scalar keys %{ $C->searchOn( {%$on}, uid => 'standby-test' ) };
        sleep 0.05 unless $found;
    }
    ok( $found, sprintf( 'searchOn on the standby finds the new session (replayed after %.2f s)', time - $t0 ) );
}

open STDERR, '>&', $saved_err or die "restore STDERR: $!";
my $log = do { local ( @ARGV, $/ ) = ( $logf->filename ); <> } // '';
is( join( "\n", grep { /BrowseFromStandby/ } split /\n/, $log ), '', 'no fallback to the leader was needed' );
like( where('t75-standby'), qr/node$other=0/, "the asynchronous replica (node$other) was never used" );

done_testing;
