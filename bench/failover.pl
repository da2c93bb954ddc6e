#!/usr/bin/perl
# Benchmark: how long writes are unavailable around a leader change, on a
# real 3-node Patroni cluster (t/lib/PatroniCluster.pm, synchronous_mode on).
# Measured side by side during the same events:
#   - through the module: 4 workers doing LL::NG-shaped work (t/lib/Workload.pm);
#   - Patroni's own window: a raw libpq (DBD::Pg) loop inserting on every node
#     every 20 ms (PatroniCluster's probe): the time no node accepted a write;
#   - a libpq multi-host client (host=a,b,c target_session_attrs=read-write)
#     doing the same kind of work (a transaction: SELECT ... FOR UPDATE, UPDATE).
# The window is the longest time without an acknowledged write.
#
#   perl Makefile.PL && make && perl bench/failover.pl [--rounds 2] [--out DIR]
#
# It also draws what it measured (t/lib/Timeline.pm, with gnuplot): DIR
# (default /tmp/asbp-failover-DATE-TIME) gets failover.png and failover.svg,
# the data files and the gnuplot script that drew them.
#
# Target: through the module, at most 100 ms longer than Patroni's own window.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib", "$FindBin::Bin/../blib/lib", "$FindBin::Bin/../blib/arch";
use Getopt::Long;
use File::Spec;
use File::Temp qw(tempdir);
use Time::HiRes qw(time sleep);
use POSIX ();
use PatroniCluster;
use Timeline;
use Workload;

my %o = ( rounds => 2,
    out => File::Spec->catdir( File::Spec->tmpdir, POSIX::strftime( 'asbp-failover-%Y%m%d-%H%M%S', localtime ) ) );
GetOptions( \%o, 'rounds=i', 'out=s' ) or die "usage: $0 [--rounds N] [--out DIR]\n";
my $T0 = time;
$| = 1;
my ( $ok, $why ) = PatroniCluster::available();
die "cannot run: $why\n" unless $ok;
require DBI;

my $c = PatroniCluster->start( sync => 1 );
my $dir = tempdir( CLEANUP => 1 );

# The multi-host client: what a plain libpq application gets.
sub multihost_start {
    my ($log) = @_;
    my @n = $c->nodes;
    my $dsn = 'dbi:Pg:dbname=sessions;host=' . join( ',', ('127.0.0.1') x @n ) . ';port='
      . join( ',', map { $c->pg_port($_) } @n ) . ';target_session_attrs=read-write;connect_timeout=2';
    my $pid = fork // die;
    return $pid if $pid;
    open my $out, '>', $log or POSIX::_exit(1);
    $out->autoflush(1);
    my $parent = getppid;
    my ( $dbh, $n );
    until ( -e "$log.stop" || getppid != $parent ) {
        $dbh ||= eval { DBI->connect( $dsn, $c->user, $c->password, { RaiseError => 1, PrintError => 0, AutoCommit => 1 } ) };
        unless ($dbh) { sleep 0.01; next }
        my $id = sprintf 'mh%d-%d', $$, ++$n;
        my $ok = eval {
            $dbh->do( 'INSERT INTO sessions (id, a_session) VALUES (?, ?)', undef, $id, '{"v":1}' );
            $dbh->begin_work;
            $dbh->selectall_arrayref( 'SELECT a_session FROM sessions WHERE id = ? FOR UPDATE', undef, $id );
            $dbh->do( 'UPDATE sessions SET a_session = ? WHERE id = ?', undef, '{"v":2}', $id );
            $dbh->commit;
            1;
        };
        if ($ok) { printf $out "%.6f\n", time }
        else { eval { $dbh->disconnect }; undef $dbh }
        sleep 0.002;
    }
    POSIX::_exit(0);
}

# The longest time without a write between $from and $to, and where it was.
sub multihost_gap {
    my ( $log, $from, $to ) = @_;
    open my $fh, '<', $log or return;
    my @t = grep { $_ >= $from && $_ <= $to } map { chomp; $_ } <$fh>;
    my ( $gap, $a, $b, $prev ) = ( 0, $from, $from, $from );
    for ( @t, $to ) { ( $gap, $a, $b ) = ( $_ - $prev, $prev, $_ ) if $_ - $prev > $gap; $prev = $_ }
    return ( $gap, $a, $b );
}

my %args = ( DataSource => $c->dsn( scalar $c->leader ), UserName => $c->user, Password => $c->password,
    PatroniUrl => $c->patroni_url );
my ( @events, @ops, @spans, @windows );
for my $round ( 1 .. $o{rounds} ) {
    for my $kind (qw(switchover crash)) {
        my $mh = "$dir/mh-$round-$kind.log";
        my $mpid = multihost_start($mh);
        my $w = Workload->start( workers => 4, args => \%args, dir => "$dir/w-$round-$kind", pause => 0.002 );
        my $p = $c->start_probe;
        sleep 3;
        my ( $at, $desc );
        if ( $kind eq 'switchover' ) {
            $at = time;
            my $sw = $c->switchover;
            $desc = "node$sw->{old} -> node$sw->{new}";
        }
        else {
            my $k = $c->kill_leader;
            $at = $k->{at};
            my $new = $c->wait_new_leader( old => $k->{node}, since => $at, timeout => 60 );
            $c->wait_writable( $new, 20 );
            $desc = "node$k->{node} killed -> node$new";
            $c->{_restart} = $k->{node};
        }
        sleep 3;
        my $pr = $c->stop_probe($p);
        my $r  = $w->stop;
        open my $s, '>', "$mh.stop";
        close $s;
        waitpid $mpid, 0;
        my $end = time;
        my ( $gap, $ga, $gb ) = Workload::write_gap( $r, $at - 1, $end - 0.5 );
        my ( $mgap, $ma, $mb ) = multihost_gap( $mh, $at - 1, $end - 0.5 );
        push @ops, @{ $r->{ops} };
        push @spans, [ $w->{t0}, @{ $r->{ops} } ? $r->{ops}[-1]{t1} : $end ];
        push @windows, { lane => 'through the module', from => $ga, to => $gb, event => "$kind $round" };
        push @windows, { lane => "Patroni's own (raw libpq probe)", from => $pr->{gap_from}, to => $pr->{gap_to},
            event => "$kind $round" } if $pr->{gap_from};
        push @windows, { lane => 'multi-host libpq client', from => $ma, to => $mb, event => "$kind $round" }
          if defined $mgap;
        push @events, {
            name => $kind, round => $round, desc => $desc, module => $gap, patroni => $pr->{max_gap},
            multihost => $mgap // 0, at => $at,
            errors => scalar @{ $r->{errors} }, lost => scalar( Workload::verify( $r, Workload::rows( $c, qr/^mh/ ) ) ),
            # where our window sits against Patroni's: last write before, first after
            start_lag => $pr->{gap_from} ? $ga - $pr->{gap_from} : 0,
            end_lag   => $pr->{gap_to} ? $gb - $pr->{gap_to} : 0,
        };
        printf "round %d %-10s %-22s module %.2f s, Patroni's own %.2f s, multi-host libpq %.2f s"
          . " (our last write before: %+.0f ms, first after: %+.0f ms, against Patroni's)\n", $round, $kind,
          $desc, $gap, $pr->{max_gap}, $events[-1]{multihost}, $events[-1]{start_lag} * 1000,
          $events[-1]{end_lag} * 1000;
        if ( my $n = delete $c->{_restart} ) { $c->start_node($n) }
        $c->wait_healthy( timeout => 60 );
        $args{DataSource} = $c->dsn( scalar $c->leader );
    }
}


print "\nWrite-unavailable window around each event (longest time without an acknowledged write)\n";
printf "%-5s %-10s %-22s %10s %10s %12s %12s %7s %5s\n", 'round', 'event', 'nodes', 'module', 'Patroni', 'module-Patr.',
  'multi-host', 'errors', 'lost';
for (@events) {
    printf "%-5d %-10s %-22s %9.2fs %9.2fs %+10.0fms %11.2fs %7d %5d\n", $_->{round}, $_->{name}, $_->{desc},
      $_->{module}, $_->{patroni}, ( $_->{module} - $_->{patroni} ) * 1000, $_->{multihost}, $_->{errors}, $_->{lost};
}
print "\ntarget: module at most 100 ms longer than Patroni's own window\n";
my $pic = Timeline::draw(
    dir => $o{out}, name => 'failover', t0 => $T0, xlabel => 'seconds since the benchmark started',
    title => sprintf( 'bench/failover.pl %s: 4 workers through the module, %d rounds, 3-node Patroni cluster'
          . ' (synchronous_mode)', POSIX::strftime( '%Y-%m-%d %H:%M', localtime $T0 ), $o{rounds} ),
    ops => \@ops, spans => \@spans, windows => \@windows, formats => [qw(png svg)],
    events => [ map { { at => $_->{at}, name => "$_->{name} $_->{round}: $_->{desc}" } } @events ],
);
print $pic->{png}
  ? "timeline picture: $pic->{png}" . ( $pic->{svg} ? " and $pic->{svg}" : '' ) . " (data and gnuplot script beside it)\n"
  : "timeline picture: none: $pic->{error} (data and gnuplot script kept in $o{out})\n";
$c->stop;
