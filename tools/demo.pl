#!/usr/bin/perl
# The demo: a local 3-node Patroni cluster (etcd + Patroni + PostgreSQL from
# Debian's packages, on 127.0.0.1), an LL::NG-shaped workload through
# Apache::Session::Browseable::Patroni in several worker processes, a
# planned switchover and a crash of the leader during the run, and a report.
#
#   sh tools/demo                       (installs, builds, runs this)
#   perl tools/demo.pl [--workers 4] [--seconds 45] [--out DIR]
#   ASBP_KEEP_CLUSTER=1 sh tools/demo   keeps the cluster running afterwards
#
# It also draws what it measured (t/lib/Timeline.pm, with gnuplot): DIR
# (default /tmp/asbp-demo-DATE-TIME) gets timeline.png and timeline.svg,
# the data files and the gnuplot script that drew them.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib", "$FindBin::Bin/../blib/lib", "$FindBin::Bin/../blib/arch";
use Getopt::Long;
use File::Spec;
use File::Temp qw(tempdir);
use POSIX qw(strftime);
use Time::HiRes qw(time sleep);
use PatroniCluster;
use Timeline;
use Workload;

my %o = ( workers => 4, seconds => 45,
    out => File::Spec->catdir( File::Spec->tmpdir, strftime( 'asbp-demo-%Y%m%d-%H%M%S', localtime ) ) );
GetOptions( \%o, 'workers=i', 'seconds=i', 'out=s' ) or die "usage: $0 [--workers N] [--seconds S] [--out DIR]\n";
$| = 1;
die "the demo needs at least 35 seconds\n" if $o{seconds} < 35;

my ( $ok, $why ) = PatroniCluster::available();
die "cannot run the demo here: $why\n" unless $ok;

sub say_ { printf "[%6.1fs] %s\n", time - $main::T0, join '', @_ }
our $T0 = time;

say_ 'starting etcd and 3 Patroni nodes (PostgreSQL 15, synchronous_mode on) on 127.0.0.1 ...';
my $c = PatroniCluster->start( sync => 1 );
my ( $leader, $lname, $lport ) = $c->leader;
say_ sprintf 'cluster up in %.1f s: %s', $c->start_seconds,
  join( ", ", map { "$_->{name} ($_->{role}, port $_->{port})" } $c->members );

# What an operator would put in globalStorageOptions.
my %args = (
    DataSource => $c->dsn($leader), UserName => $c->user, Password => $c->password,
    PatroniUrl => $c->patroni_url, Commit => 1,
);
say_ "globalStorage = Apache::Session::Browseable::Patroni";
say_ "globalStorageOptions = { DataSource => '$args{DataSource}', PatroniUrl => '$args{PatroniUrl}', ... }";

my $dir = tempdir( CLEANUP => 1 );
open my $save_err, '>&', \*STDERR or die;
open STDERR, '>', "$dir/module.log" or die;    # the module's messages, shown at the end
my $w = Workload->start( workers => $o{workers}, args => \%args, dir => "$dir/w", pause => 0.002 );
say_ "$o{workers} workers running LL::NG-shaped work (create, read, update, delete) through the module";

my ( @events, $count_before, $t_prev );
( $count_before, $t_prev ) = ( 0, time );
sub progress {
    my ($note) = @_;
    my ( $n, $e ) = ( 0, 0 );
    for my $f ( glob "$dir/w/worker*.log" ) {
        open my $fh, '<', $f or next;
        while (<$fh>) { $n++; $e++ if / ERR / }
    }
    my $now  = time;
    my $rate = ( $n - $count_before ) / ( ( $now - $t_prev ) || 1 );
    ( $count_before, $t_prev ) = ( $n, $now );
    my $l = $c->leader;
    say_ sprintf '%7d operations  %6.0f ops/s  %3d errors seen by callers  leader: %s%s',
      $n, $rate, $e, defined $l ? "node$l" : 'none', $note ? "  $note" : '';
}
sub run_for { my ($s) = @_; my $end = time + $s; while ( time < $end ) { sleep 1; progress() } }

run_for(5);

# A planned switchover, with Patroni's own window measured beside ours.
{
    my $p = $c->start_probe;
    sleep 1;
    my $t = time;
    progress('switchover requested');
    my $sw = $c->switchover;
    push @events, { name => 'switchover', at => $t, old => $sw->{old}, new => $sw->{new},
        label => "switchover node$sw->{old} -> node$sw->{new}" };
    progress( sprintf 'switchover done: node%d -> node%d (%.1f s)', $sw->{old}, $sw->{new}, $sw->{writable_seconds} );
    run_for(4);
    $events[-1]{probe} = $c->stop_probe($p);
    $events[-1]{end} = time;
}
run_for(3);

# A crash of the leader.
{
    my $p = $c->start_probe;
    sleep 1;
    my $k = $c->kill_leader;
    progress("killed the leader node$k->{node} (SIGKILL of Patroni, the postmaster and its children)");
    my ( $new, $secs ) = $c->wait_new_leader( old => $k->{node}, since => $k->{at}, timeout => 60 );
    $c->wait_writable( $new, 20 );
    push @events, { name => 'leader crash', at => $k->{at}, old => $k->{node}, new => $new,
        label => "leader crash: node$k->{node} killed, node$new leads" };
    progress( sprintf 'node%d is the new leader, %.1f s after the crash', $new, $secs );
    run_for(3);
    $events[-1]{probe} = $c->stop_probe($p);
    $events[-1]{end} = time;
    progress("restarting node$k->{node}: it rejoins as a replica");
    $c->start_node( $k->{node}, wait => 0 );
}
my $left = $o{seconds} - ( time - $w->{t0} );
run_for( $left > 3 ? $left : 3 );

say_ 'stopping the workers and checking every acknowledged write against the leader ...';
my $r = $w->stop;
$c->wait_healthy( timeout => 60 ) if eval { 1 };
my @lost    = Workload::verify( $r, Workload::rows($c) );
my $checked = grep { defined $r->{by_id}{$_}{acked} } keys %{ $r->{by_id} };
open STDERR, '>&', $save_err or die;

my $elapsed = $r->{elapsed} || 1;
print "\n==================== report ====================\n";
printf "operations            %d in %.1f s: %.0f ops/s (%d workers)\n", $r->{count}, $elapsed,
  $r->{count} / $elapsed, $o{workers};
my %by_op;
$by_op{ $_->{op} }++ for @{ $r->{ops} };
printf "                      %s\n", join ', ', map { "$by_op{$_} $_" } sort keys %by_op;
printf "latency               p50 %.1f ms, p99 %.1f ms, max %.0f ms\n", $r->{p50} * 1000,
  $r->{p99} * 1000, $r->{max} * 1000;
printf "errors seen by callers %d\n", scalar @{ $r->{errors} };
for my $ev (@events) {
    my @in = grep { $_->{t1} >= $ev->{at} && $_->{t1} <= $ev->{end} } @{ $r->{errors} };
    printf "                      %d during the %s\n", scalar @in, $ev->{name} if @in;
}
printf "sessions checked      %d acknowledged sessions, %d lost, %d stale reads\n", $checked,
  scalar @lost, scalar @{ $r->{stale} };
print "                      $_\n" for @lost[ 0 .. ( $#lost < 4 ? $#lost : 4 ) ];
print "\nwrite-unavailable window (longest time without an acknowledged write):\n";
printf "  %-14s %22s %24s %10s\n", 'event', 'through the module', "Patroni's own (raw probe)", 'difference';
my @windows;
for my $ev (@events) {
    my ( $gap, $from, $to ) = Workload::write_gap( $r, $ev->{at} - 1, $ev->{end} );
    my $pg = $ev->{probe}{max_gap} // 0;
    push @windows, { lane => 'through the module', from => $from, to => $to, event => $ev->{name} };
    push @windows, { lane => "Patroni's own (raw libpq probe)", from => $ev->{probe}{gap_from},
        to => $ev->{probe}{gap_to}, event => $ev->{name} } if $ev->{probe}{gap_from};
    printf "  %-14s %20.2f s %22.2f s %+8.0f ms   (node%d -> node%d)\n", $ev->{name}, $gap, $pg,
      ( $gap - $pg ) * 1000, $ev->{old}, $ev->{new};
}
my $pic = Timeline::draw(
    dir => $o{out}, name => 'timeline', t0 => $T0, xlabel => 'seconds since the demo started',
    title => sprintf( 'demo %s: %d workers through Apache::Session::Browseable::Patroni,'
          . ' 3-node Patroni cluster (synchronous_mode)', strftime( '%Y-%m-%d %H:%M', localtime $T0 ), $o{workers} ),
    ops => $r->{ops}, spans => [ [ $w->{t0}, @{ $r->{ops} } ? $r->{ops}[-1]{t1} : time ] ],
    events => [ map { { at => $_->{at}, name => $_->{label} } } @events ], windows => \@windows,
    formats => [qw(png svg)],
);
if ( $pic->{png} ) {
    print "\ntimeline picture      $pic->{png}\n";
    print "                      $pic->{svg}\n" if $pic->{svg};
    print "                      (data and gnuplot script beside it: cd $o{out} && gnuplot timeline.gp)\n";
}
else {
    print "\ntimeline picture      none: $pic->{error}\n";
    print "                      (data and gnuplot script kept in $o{out})\n";
}
print "\nA switchover should cost callers a delay, not an error; a crash leaves no leader for\n"
  . "about Patroni's ttl (10 s here), and calls that cannot wait that long (FailoverTimeout 4 s,\n"
  . "under LemonLDAP::NG's 5 s alarm) get a clear error; no acknowledged write is lost.\n";
{
    my %seen;
    open my $fh, '<', "$dir/module.log";
    my @m = grep { !$seen{ s/^\S+\[\d+\] //r }++ } map { chomp; $_ } <$fh>;
    printf "\nthe module logged %d distinct messages, for example:\n", scalar @m;
    print '  ', substr( $_, 0, 200 ), "\n" for @m[ 0 .. ( $#m < 5 ? $#m : 5 ) ];
}
print "\n";
if ( $ENV{ASBP_KEEP_CLUSTER} ) {
    $c->stop;    # with ASBP_KEEP_CLUSTER=1 this only prints how to reach and stop it
}
else {
    say_ 'tearing the cluster down (ASBP_KEEP_CLUSTER=1 sh tools/demo keeps it running to explore)';
    $c->stop;
}
exit( @lost ? 1 : 0 );
