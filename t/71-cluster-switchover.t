# A planned switchover on a real 3-node Patroni cluster while 4 forked
# workers run LL::NG-shaped work through the module: no caller sees an
# error, and every acknowledged write is present afterwards with its last
# acknowledged value.  Then: a process holding a pooled connection to the
# old leader (now a replica) writes and reads on the new leader.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use PatroniCluster;
use Workload;
use File::Temp qw(tempdir);
use Time::HiRes qw(time sleep);
use Apache::Session::Browseable::Patroni;
use POSIX ();

my $c = PatroniCluster->start_or_skip;
my $C = 'Apache::Session::Browseable::Patroni';
my ( $leader, undef, $lport ) = $c->leader;
my %args = ( DataSource => $c->dsn($leader), UserName => $c->user, Password => $c->password,
    PatroniUrl => $c->patroni_url );


# The parent holds a pooled connection to the leader across the switchover.
tie( my %p, $C, undef, {%args} );
$p{v} = 'parent-before';
my $pid_session = $p{_session_id};
untie %p;
my @pool = Apache::Session::Browseable::Patroni::_pool_conns();
is( ( split /:/, $pool[0][0] )[1], $lport, 'the parent has a pooled connection to the leader' );

my $dir = tempdir( CLEANUP => 1 );
my $w = Workload->start( workers => 4, args => \%args, dir => "$dir/w" );

# A fifth process runs the class methods in a loop across the switchover:
# searchOn (as the portal does at login) and the purge's deleteIfLowerThan
# (with a rule that matches none of the workers' sessions).
my $bpid = fork // die;
if ( !$bpid ) {
    open my $log, '>', "$dir/browse.log" or die;
    select( ( select($log), $| = 1 )[0] );
    until ( -e "$dir/w/stop" ) {
        my $t0 = time;
        my @w;
        # errors only: the module's log lines (warnings too) stay on STDERR
        local $SIG{__WARN__} = sub { $_[0] =~ /^\Q$C\E\[\d+\] / ? print STDERR $_[0] : push @w, @_ };
        my $ok = eval {
            my $r = $C->searchOn( {%args}, _session_kind => 'SSO', 'uid' );
            die "searchOn returned no hash\n" unless ref $r eq 'HASH';
            my @d = $C->deleteIfLowerThan( {%args}, { not => { _session_kind => 'Persistent' }, or => { _utime => 1000 } } );
            die "deleteIfLowerThan returned (@d)\n" unless "@d" eq '1 0';
            1;
        };
        my $e = $ok ? join( ' ', @w ) : $@;
        $e =~ s/\s+/ /g;
        printf $log "%.3f %.3f %s\n", $t0, time, $e eq '' ? 'ok' : "ERR $e";
        sleep 0.05;
    }
    POSIX::_exit(0);
}
sleep 3;
my $sw = $c->switchover;
diag sprintf 'switchover node%d -> node%d: new leader running after %.2f s, writable after %.2f s',
  $sw->{old}, $sw->{new}, $sw->{leader_seconds}, $sw->{writable_seconds};
sleep 3;
my $r = $w->stop;
waitpid $bpid, 0;
my @browse = do { open my $fh, '<', "$dir/browse.log" or die; map { chomp; $_ } <$fh> };
cmp_ok( scalar @browse, '>', 20, scalar(@browse) . ' rounds of searchOn + deleteIfLowerThan ran' );
is( scalar( grep { !/ ok$/ } @browse ), 0, 'searchOn and deleteIfLowerThan saw no error across the switchover' )
  or diag join "\n", grep { !/ ok$/ } @browse;

cmp_ok( $r->{count}, '>', 200, "the workers ran ($r->{count} operations)" );
is( scalar @{ $r->{errors} }, 0, 'no caller saw an error during the switchover' )
  or diag join "\n", map { "$_->{op} $_->{id}: $_->{status}" } @{ $r->{errors} }[ 0 .. 9 ];
is( scalar @{ $r->{stale} }, 0, 'no read returned an older value than the last acknowledged one' )
  or diag join "\n", map { sprintf '%.3f %s %s', $_->{t1}, $_->{id}, $_->{status} } @{ $r->{stale} }[ 0 .. 4 ];
my @lost = Workload::verify( $r, Workload::rows($c) );
is( scalar @lost, 0, 'every acknowledged write is on the new leader with its last value' )
  or diag join "\n", @lost[ 0 .. 9 ];
cmp_ok( $r->{max}, '<', 5, sprintf( 'longest operation %.2f s (under LL::NG\'s 5 s alarm)', $r->{max} ) );
my ($gap) = Workload::write_gap( $r, $r->{ops}[0]{t1}, $r->{ops}[-1]{t1} );
diag sprintf '%d operations, p50 %.1f ms, p99 %.1f ms, max %.0f ms; longest time without an acknowledged write: %.2f s',
  $r->{count}, $r->{p50} * 1000, $r->{p99} * 1000, $r->{max} * 1000, $gap;

# The parent's pooled connection points at the old leader, now a replica.
my ( $new, undef, $nport ) = $c->leader;
isnt( $new, $leader, 'the leader changed' );
tie( %p, $C, $pid_session, {%args} );
is( $p{v}, 'parent-before', 'read through the stale pool: the session is there' );
$p{v} = 'parent-after';
untie %p;
is( $c->psql( $new, "SELECT a_session->>'v' FROM sessions WHERE id = '$pid_session'" ), 'parent-after',
    'the next write went to the new leader' );
tie( %p, $C, $pid_session, {%args} );
is( $p{v}, 'parent-after', 'and the next read too' );
untie %p;
@pool = Apache::Session::Browseable::Patroni::_pool_conns();
ok( !( grep { ( split /:/, $_->[0] )[1] == $lport } @pool ), 'no pooled connection to the old leader is kept' );
ok( ( grep { ( split /:/, $_->[0] )[1] == $nport } @pool ), 'the pool now holds a connection to the new leader' );

done_testing;
