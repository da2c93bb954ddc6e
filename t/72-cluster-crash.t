# The leader crashes (SIGKILL of Patroni, the postmaster and its children)
# while 4 forked workers run LL::NG-shaped work through the module, with
# synchronous_mode on: no acknowledged write is lost; callers see errors
# only while no leader exists; every single operation returns within 5 s.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use PatroniCluster;
use Workload;
use File::Temp qw(tempdir);
use Time::HiRes qw(time sleep);

my $c = PatroniCluster->start_or_skip( sync => 1 );
my $leader = $c->leader;
my %args = ( DataSource => $c->dsn($leader), UserName => $c->user, Password => $c->password,
    PatroniUrl => $c->patroni_url );


my $dir = tempdir( CLEANUP => !$ENV{ASBP_KEEP_LOGS} );
diag "worker logs in $dir" if $ENV{ASBP_KEEP_LOGS};
my $w = Workload->start( workers => 4, args => \%args, dir => "$dir/w" );
sleep 3;
my $k = $c->kill_leader;
my ( $new, $secs ) = $c->wait_new_leader( old => $k->{node}, since => $k->{at}, timeout => 40 );
my ( undef, $wsecs ) = $c->wait_writable( $new, 20 );
my $t_writable = time;
diag sprintf 'killed node%d; node%d leader after %.2f s, writable %.2f s later', $k->{node}, $new, $secs, $wsecs;
sleep 4;
my $r = $w->stop;

cmp_ok( $r->{count}, '>', 200, "the workers ran ($r->{count} operations)" );
my @lost = Workload::verify( $r, Workload::rows($c) );
is( scalar @lost, 0, 'no acknowledged write was lost' ) or diag join "\n", @lost[ 0 .. 9 ];
is( scalar @{ $r->{stale} }, 0, 'no read returned an older value than the last acknowledged one' )
  or diag join "\n", map { sprintf '%.3f %s %s', $_->{t1}, $_->{id}, $_->{status} } @{ $r->{stale} }[ 0 .. 4 ];
cmp_ok( $r->{max}, '<', 5, sprintf( 'every operation returned within 5 s (longest %.2f s)', $r->{max} ) );

# Errors only while no leader existed: from the kill until the new leader
# accepted writes (plus the time for a worker's retry to reach it).
my @early = grep { $_->{t1} < $k->{at} } @{ $r->{errors} };
my @late  = grep { $_->{t1} > $t_writable + 1.0 } @{ $r->{errors} };
is( scalar @early, 0, 'no error before the crash' ) or diag $early[0]{status};
is( scalar @late, 0, 'no error once the new leader accepted writes' )
  or diag join "\n", map { sprintf '%+.2f s after writable: %s', $_->{t1} - $t_writable, $_->{status} } @late[ 0 .. 4 ];
my ( $gap, $from, $to ) = Workload::write_gap( $r, $k->{at} - 1, $r->{ops}[-1]{t1} );
diag sprintf '%d operations, %d errors (all between the crash and the new leader), p50 %.1f ms, p99 %.1f ms',
  $r->{count}, scalar @{ $r->{errors} }, $r->{p50} * 1000, $r->{p99} * 1000;
diag sprintf 'writes through the module stopped for %.2f s (%.2f s after the kill to %.2f s after it)',
  $gap, $from - $k->{at}, $to - $k->{at};
cmp_ok( $to - $t_writable, '<', 1.5, 'writes resumed quickly once the new leader was writable' );

# The killed node rejoins as a replica.
$c->start_node( $k->{node} );
is( $c->role( $k->{node} ) =~ /replica|sync_standby/ ? 1 : 0, 1, 'the old leader rejoined as a replica' );

done_testing;
