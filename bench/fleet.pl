#!/usr/bin/perl
# Benchmark: a fleet of forked processes (50 and 200 by default) doing
# LL::NG-shaped work through tie against one PostgreSQL, for our class and
# for Debian's pure-Perl Apache::Session::Browseable::PgJSON, in the same
# run on the same throwaway server (fsync on, logged table with the four
# expression indexes, pre-filled with LL::NG-like sessions), directly and
# through PgBouncer in transaction pooling mode.
#
#   perl Makefile.PL && make && perl bench/fleet.pl [--seconds 10]
#        [--procs 50,200] [--rows 50000] [--auth trust|scram-sha-256]
#        [--max-connections N] [--pool-size 20] [--no-default-max]
#
# The work of each process: 80% reads (tie an existing session, read a
# key, untie), 10% creates (a new ~1.1 kB session), 7% updates (tie an
# existing session, set _lastSeen, untie), 3% deletes (of a session the
# process created itself, as a logout does).
#
# Each cell (contender x path x processes) forks its workers from a parent
# that has loaded every module (copy-on-write keeps the fleet small), waits
# until all are ready, releases them together (a pipe closed by the
# parent), and stops them after --seconds (their own deadline, then
# SIGTERM, then SIGKILL for a worker stuck 20 s past it).  Meanwhile the
# parent samples, every 0.2 s, the client backends of the application user
# in pg_stat_activity (through a superuser connection of its own, not
# counted) and the workers' VmRSS (/proc/PID/status); once, at 80% of the
# cell, their Pss (/proc/PID/smaps_rollup: RSS with shared pages divided
# among the processes sharing them, what the fleet really costs).
#
# Reported per cell: throughput (successful operations per second), p50
# and p99 of the latency of one operation (tie to untie, all kinds
# together, then the p50 of each kind), the server connections held (the
# largest sample, and the last one before the workers stop), the median
# VmRSS and Pss of a worker, the failed operations and the workers that saw
# one (with the most frequent first error message of a worker).  After
# each cell the pre-filled sessions are counted: nobody deletes them (a
# worker deletes only the sessions it created), so one missing means a
# statement ran with another client's parameters, or the other way round
# (what named prepared statements through a transaction-pooling bouncer
# can do).
#
# Direct connections: PostgreSQL runs with max_connections = --max-connections
# (default: the largest --procs + 50).  Then, unless --no-default-max, the
# server is restarted with PostgreSQL's default of 100 and the largest
# fleet runs again on both paths: what happens without PgBouncer.
#
# PgBouncer (t/lib/PgBouncer.pm, Debian's pgbouncer) runs in transaction
# pooling mode with default_pool_size --pool-size (20, pgbouncer's own
# default) and max_client_conn for the largest fleet; ours gets
# PreparedStatements => 0 there (PgJSON gets nothing: DBD::Pg's own
# defaults, a connection per tie).
#
# --auth: how the server (and PgBouncer) authenticate TCP connections.
# PgJSON opens a connection per tie, so its figures depend on it; ours
# keeps connections open.  Default trust, as in bench/tie.pl: the most
# favourable case for the pure-Perl module.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib", "$FindBin::Bin/../blib/lib", "$FindBin::Bin/../blib/arch";
use Getopt::Long;
use File::Temp qw(tempdir);
use POSIX ();
use Storable ();
use Time::HiRes qw(time sleep);
use JSON::XS ();
use DBI;
use PgServer;
use LLNGSession;
use Apache::Session::Browseable::Patroni;

my %o = ( seconds => 10, procs => '50,200', rows => 50000, auth => 'trust', 'pool-size' => 20 );
GetOptions( \%o, 'seconds=f', 'procs=s', 'rows=i', 'auth=s', 'max-connections=i', 'pool-size=i',
    'no-default-max' )
  or die "bad options\n";
$| = 1;
my @procs = sort { $a <=> $b } split /,/, $o{procs};
die "--procs: a list of numbers\n" if !@procs || grep { !/^\d+\z/ || !$_ } @procs;
my $NMAX = $procs[-1];

my $OURS   = 'Apache::Session::Browseable::Patroni';
my $THEIRS = 'Apache::Session::Browseable::PgJSON';
my $have_pgjson = eval { require Apache::Session::Browseable::PgJSON; require DBD::Pg; 1 };
warn "$THEIRS not available: ours only\n" unless $have_pgjson;
my $have_bouncer = eval { require PgBouncer; PgBouncer->can('available') ? ( PgBouncer::available() )[0] : 1 };
warn "PgBouncer (t/lib/PgBouncer.pm and pgbouncer) not available: direct connections only\n"
  unless $have_bouncer;
my $have_ps_option = pod_has('PreparedStatements');
warn "$OURS has no PreparedStatements option yet: through PgBouncer in transaction mode "
  . "its named prepared statements may fail\n" if $have_bouncer && !$have_ps_option;

# Is =item NAME in the POD of our loaded module?
sub pod_has {
    my ($name) = @_;
    open my $fh, '<', $INC{'Apache/Session/Browseable/Patroni.pm'} or return 0;
    while (<$fh>) { return 1 if /^=item\s+\Q$name\E\b/ }
    return 0;
}

my $maxconn = $o{'max-connections'} || $NMAX + 50;
my $pg = PgServer->new( fsync => 1, host_auth => $o{auth},
    settings => { max_connections => $maxconn } );
my $bouncer;

machine();
printf "filled %d sessions in %.1f s\n", $o{rows}, LLNGSession::fill( $pg, 1, $o{rows} );
printf "session size: %d bytes of JSON, %d keys\n",
  length( JSON::XS->new->encode( LLNGSession::data(0) ) ), scalar keys %{ LLNGSession::data(0) };

# ---- the machine ----------------------------------------------------------

sub first_line { my ( $f, $re ) = @_; open my $fh, "<", $f or return "?"; while ( my $l = <$fh> ) { return $1 if $l =~ $re } '?' }

sub machine {
    my $cpus  = () = do { open my $fh, '<', '/proc/cpuinfo'; grep { /^processor\s*:/ } <$fh> };
    my $model = first_line( '/proc/cpuinfo', qr/^model name\s*:\s*(.*)/ );
    my $mem   = first_line( '/proc/meminfo', qr/^MemTotal:\s*(\d+)/ );
    my $kern  = ( POSIX::uname() )[2];
    print "machine: $cpus CPU ($model), ", sprintf( '%.1f', $mem / 1048576 ), " GiB RAM, Linux $kern, perl $^V\n";
    print "PostgreSQL ", $pg->psql('SHOW server_version'), " on 127.0.0.1:", $pg->port,
      ", fsync on, logged table, 4 expression indexes, TCP auth $o{auth}, max_connections $maxconn\n";
    print "$OURS $Apache::Session::Browseable::Patroni::VERSION", ( $have_pgjson ? ", $THEIRS $Apache::Session::Browseable::PgJSON::VERSION (DBD::Pg $DBD::Pg::VERSION)" : '' ), "\n";
    if ($have_bouncer) {
        my $v = `@{[ PgBouncer::program() ]} --version 2>&1`;
        print "PgBouncer ", ( $v =~ /PgBouncer\s+(\S+)/ ? $1 : '?' ), ", transaction pooling, default_pool_size $o{'pool-size'}\n";
    }
    print "everything on this machine: PostgreSQL, PgBouncer and the workers share the CPUs\n";
}

# ---- the monitor: server connections of the application user -------------

my $mon;

sub monitor {
    return $mon if $mon && $mon->ping;
    $mon = DBI->connect( "dbi:Pg:dbname=sessions;host=$pg->{sock};port=" . $pg->port,
        'postgres', '', { RaiseError => 1, PrintError => 0, AutoCommit => 1, AutoInactiveDestroy => 1 } );
    return $mon;
}

sub app_backends {
    my $n = eval {
        monitor()->selectrow_array( q{SELECT count(*) FROM pg_stat_activity
            WHERE usename = ? AND backend_type = 'client backend'}, undef, $pg->user );
    };
    return $n // -1;
}

# Waits until the server holds at most $n connections of the application
# user (the previous cell's backends have exited), up to 10 s.
sub settle {
    my ($n) = @_;
    my $end = time + 10;
    sleep 0.1 while app_backends() > $n && time < $end;
}

# Pre-filled sessions deleted since the last call (nobody deletes them: the
# workers delete only the sessions they created; a statement run with
# another's parameters would).
my $missing = 0;

sub lost_rows {
    my $now = eval {
        monitor()->selectrow_array( q{SELECT ? - count(*) FROM sessions WHERE id IN
            (SELECT lpad(to_hex(g), 64, '0') FROM generate_series(1, ?) g)}, undef, $o{rows}, $o{rows} );
    } // return 0;
    my $d = $now - $missing;
    $missing = $now;
    return $d;
}

# ---- the workers ----------------------------------------------------------

sub rowid { sprintf '%064x', $_[0] }

# One worker: waits on $go (EOF releases it), works until $secs after the
# release or SIGTERM, stores its results in $file.
sub worker {
    my ( $class, $args, $go, $ready, $secs, $file ) = @_;
    my $stop = 0;
    local $SIG{TERM} = sub { $stop = 1 };
    # A failed tie warns again when its object is destroyed ("(in
    # cleanup)"): the error is counted once, below.
    local $SIG{__WARN__} = sub { };
    srand( $$ ^ int( time * 1000 ) );
    my $data = LLNGSession::data(7);
    my ( %n, %lat, %err, $first_err, @mine );
    my $errt = 0;    # seconds spent in failed operations
    syswrite $ready, 'r';
    close $ready;
    sysread $go, my $buf, 1;    # EOF: go
    my $end = time + $secs;
    while ( !$stop && time < $end ) {
        my $r  = rand 100;
        my $op = $r < 80 ? 'read' : $r < 90 ? 'create' : $r < 97 ? 'update' : 'delete';
        $op = 'create' if $op eq 'delete' && !@mine;
        my $t0 = time;
        my $ok = eval {
            if ( $op eq 'read' ) {
                tie my %s, $class, rowid( 1 + int rand $o{rows} ), {%$args};
                my $u = $s{uid};
                untie %s;
            }
            elsif ( $op eq 'create' ) {
                tie my %s, $class, undef, {%$args};
                @s{ keys %$data } = values %$data;
                my $id = $s{_session_id};
                untie %s;
                push @mine, $id;
            }
            elsif ( $op eq 'update' ) {
                tie my %s, $class, rowid( 1 + int rand $o{rows} ), {%$args};
                $s{_lastSeen} = time;
                untie %s;
            }
            else {
                tie my %s, $class, pop @mine, {%$args};
                tied(%s)->delete;
                untie %s;
            }
            1;
        };
        my $dt = time - $t0;
        if ($ok) { $n{$op}++; $lat{$op} .= pack 'f', $dt }
        else {
            $err{$op}++;
            $errt += $dt;
            ( $first_err //= "$op: $@" ) =~ s/\s+\z//;
        }
    }
    Storable::nstore( { n => \%n, lat => \%lat, err => \%err, errt => $errt, first_err => $first_err }, $file );
}

sub status_kb {
    my ( $pid, $file, $field ) = @_;
    open my $fh, '<', "/proc/$pid/$file" or return;
    while ( my $l = <$fh> ) { return $1 if $l =~ /^\Q$field\E:\s+(\d+)\s+kB/ }
    return;
}

sub median { my @v = sort { $a <=> $b } @_; return @v ? $v[ $#v / 2 ] : undef }

sub pct {
    my ( $p, $v ) = @_;    # $v sorted
    return undef unless @$v;
    my $i = int( $p / 100 * @$v + 0.5 ) - 1;
    $i = 0 if $i < 0;
    $i = $#$v if $i > $#$v;
    return $v->[$i];
}

# One cell: $n workers of $class with $args for $o{seconds}.
sub cell {
    my ( $class, $args, $n ) = @_;
    my $dir = tempdir( 'asbp-fleet-XXXXXX', TMPDIR => 1, CLEANUP => 1 );
    pipe my $go_r, my $go_w or die "pipe: $!";
    pipe my $rd_r, my $rd_w or die "pipe: $!";
    my @pids;
    for my $i ( 1 .. $n ) {
        my $pid = fork // die "fork ($i of $n): $!";
        if ( !$pid ) {
            close $go_w;
            close $rd_r;
            undef $mon;    # the parent's (AutoInactiveDestroy: left alone)
            eval { worker( $class, $args, $go_r, $rd_w, $o{seconds}, "$dir/$i" ); 1 }
              or print STDERR "worker $i: $@";
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    close $rd_w;
    close $go_r;
    my $got = 0;
    while ( $got < $n ) {
        my $r = sysread $rd_r, my $buf, $n - $got;
        last unless $r;
        $got += $r;
    }
    die "only $got of $n workers got ready\n" if $got < $n;
    my $t0 = time;
    close $go_w;    # go
    my ( $cmax, $clast, %rss, %pss, $pss_done ) = ( 0, 0 );
    while ( time < $t0 + $o{seconds} ) {
        my $c = app_backends();
        $cmax = $c if $c > $cmax;
        $clast = $c;
        for (@pids) {
            my $kb = status_kb( $_, 'status', 'VmRSS' ) // next;
            $rss{$_} = $kb if $kb > ( $rss{$_} // 0 );
        }
        if ( !$pss_done && time > $t0 + 0.8 * $o{seconds} ) {
            for (@pids) { my $kb = status_kb( $_, 'smaps_rollup', 'Pss' ); $pss{$_} = $kb if defined $kb }
            $pss_done = 1;
        }
        sleep 0.2;
    }
    # A loaded machine may have run past 80% of the cell between samples.
    if ( !$pss_done ) {
        for (@pids) { my $kb = status_kb( $_, 'smaps_rollup', 'Pss' ); $pss{$_} = $kb if defined $kb }
    }
    kill 'TERM', @pids;
    my %left = map { $_ => 1 } @pids;
    my $killed = 0;
    my $end = time + 20;
    while ( %left && time < $end ) {
        while ( ( my $p = waitpid( -1, POSIX::WNOHANG() ) ) > 0 ) { delete $left{$p} }
        sleep 0.05 if %left;
    }
    if (%left) {
        $killed = kill 'KILL', keys %left;
        waitpid $_, 0 for keys %left;
    }
    my $elapsed = time - $t0;
    my ( %n, %err, @lat, %lat_op, %first );
    my ( $bad_workers, $errt ) = ( 0, 0 );
    for my $i ( 1 .. $n ) {
        my $r = eval { Storable::retrieve("$dir/$i") } or next;
        for my $op ( keys %{ $r->{n} } ) {
            $n{$op} += $r->{n}{$op};
            my @l = unpack 'f*', $r->{lat}{$op};
            push @lat, @l;
            push @{ $lat_op{$op} }, @l;
        }
        $err{$_} += $r->{err}{$_} for keys %{ $r->{err} };
        $errt += $r->{errt} // 0;
        if ( defined $r->{first_err} ) { $first{ $r->{first_err} }++; $bad_workers++ }
    }
    @lat = sort { $a <=> $b } @lat;
    my $ok  = 0; $ok  += $_ for values %n;
    my $bad = 0; $bad += $_ for values %err;
    my ($msg) = sort { $first{$b} <=> $first{$a} } keys %first;
    return {
        ops    => $ok / $o{seconds},
        p50    => pct( 50, \@lat ),
        p99    => pct( 99, \@lat ),
        op_p50 => { map { $_ => median( @{ $lat_op{$_} } ) } keys %lat_op },
        cmax   => $cmax,
        clast  => $clast,
        rss    => median( values %rss ),
        pss    => median( values %pss ),
        pss_sum => do { my $s = 0; $s += $_ for values %pss; $s },
        errors => $bad,
        err_pct => $ok + $bad ? 100 * $bad / ( $ok + $bad ) : 0,
        err_msg => $msg,
        err_time => $bad ? $errt / $bad : undef,
        killed => $killed,
        bad_workers => $bad_workers,
        lost   => lost_rows(),
        elapsed => $elapsed,
    };
}

# ---- the cells ------------------------------------------------------------

my @who = ( [ ours => $OURS ], $have_pgjson ? ( [ PgJSON => $THEIRS ] ) : () );

sub args_for {
    my ( $who, $path ) = @_;
    if ( $path eq 'direct' ) { return { $pg->options, Commit => 1 } }
    my %a = ( $bouncer->options, Commit => 1 );
    $a{PreparedStatements} = 0 if $who eq 'ours';
    return \%a;
}

sub bouncer_up {
    return unless $have_bouncer;
    $bouncer //= PgBouncer->new(
        server => $pg, pool_mode => 'transaction',
        auth_type => $o{auth} eq 'trust' ? 'trust' : 'scram-sha-256',
        max_client_conn => $NMAX + 50, default_pool_size => $o{'pool-size'},
    );
}

my @rows;    # [ section, who, path, n, result ]

sub run_cells {
    my ( $section, $nlist ) = @_;
    my @paths = ( 'direct', $have_bouncer ? 'bouncer' : () );
    for my $path (@paths) {
        bouncer_up() if $path eq 'bouncer';
        for my $n (@$nlist) {
            for my $w (@who) {
                settle(0) if $path eq 'direct';
                printf "%-26s %-7s %-8s %4d processes ... ", $section, $w->[0], $path, $n;
                my $r = cell( $w->[1], args_for( $w->[0], $path ), $n );
                printf "%.0f ops/s, %d errors\n", $r->{ops}, $r->{errors};
                push @rows, [ $section, $w->[0], $path, $n, $r ];
            }
        }
    }
}

my $sec_main = "max_connections $maxconn";
run_cells( $sec_main, \@procs );
my $sec_default = 'max_connections 100';
if ( !$o{'no-default-max'} ) {
    $pg->{settings}{max_connections} = 100;
    undef $mon;
    $pg->restart;
    run_cells( $sec_default, [$NMAX] );
}

# ---- the report -----------------------------------------------------------

sub ms { defined $_[0] ? sprintf( '%.1f', 1000 * $_[0] ) : 'n/a' }
sub mb { defined $_[0] ? sprintf( '%.1f', $_[0] / 1024 ) : 'n/a' }

print "\n== fleet: ", $o{seconds}, " s per cell; 80% read, 10% create, 7% update, 3% delete ==\n";
printf "%-20s %-7s %-7s %5s %8s %7s %7s %6s %6s %7s %7s %8s %7s %5s\n",
  'server', 'who', 'path', 'procs', 'ops/s', 'p50 ms', 'p99 ms', 'conns', 'c.end', 'RSS MB', 'Pss MB',
  'errors', 'err %', 'w.err';
for (@rows) {
    my ( $s, $w, $p, $n, $r ) = @$_;
    printf "%-20s %-7s %-7s %5d %8.0f %7s %7s %6d %6d %7s %7s %8d %7.1f %5d\n", $s, $w, $p, $n, $r->{ops},
      ms( $r->{p50} ), ms( $r->{p99} ), $r->{cmax}, $r->{clast}, mb( $r->{rss} ), mb( $r->{pss} ),
      $r->{errors}, $r->{err_pct}, $r->{bad_workers};
}

print "\n== p50 latency per kind of operation (ms) ==\n";
printf "%-20s %-7s %-7s %5s %8s %8s %8s %8s\n", 'server', 'who', 'path', 'procs', qw(read create update delete);
for (@rows) {
    my ( $s, $w, $p, $n, $r ) = @$_;
    printf "%-20s %-7s %-7s %5d %8s %8s %8s %8s\n", $s, $w, $p, $n,
      map { ms( $r->{op_p50}{$_} ) } qw(read create update delete);
}

if ($have_pgjson) {
    print "\n== ours / PgJSON (same server, path and fleet) ==\n";
    printf "%-20s %-7s %5s %8s %8s %8s %8s %8s\n", 'server', 'path', 'procs', 'ops/s', 'p50', 'p99', 'conns', 'Pss';
    my %by = map { join( '|', @$_[ 0, 1, 2, 3 ] ) => $_->[4] } @rows;
    for (@rows) {
        my ( $s, $w, $p, $n ) = @$_;
        next unless $w eq 'ours';
        my ( $u, $t ) = ( $by{"$s|ours|$p|$n"}, $by{"$s|PgJSON|$p|$n"} );
        next unless $t;
        my $x = sub { my ( $a, $b ) = @_; defined $a && defined $b && $b > 0 ? sprintf( '%.2fx', $a / $b ) : 'n/a' };
        printf "%-20s %-7s %5d %8s %8s %8s %8s %8s\n", $s, $p, $n, $x->( $u->{ops}, $t->{ops} ),
          $x->( $u->{p50}, $t->{p50} ), $x->( $u->{p99}, $t->{p99} ), $x->( $u->{cmax}, $t->{cmax} ),
          $x->( $u->{pss}, $t->{pss} );
    }
}

my @errs = grep { $_->[4]{errors} || $_->[4]{killed} || $_->[4]{lost} } @rows;
if (@errs) {
    print "\n== errors (the most frequent first message of a worker) ==\n";
    for (@errs) {
        my ( $s, $w, $p, $n, $r ) = @$_;
        my $m = $r->{err_msg} // '';
        $m =~ s/\s+/ /g;
        $m = substr( $m, 0, 240 ) . '...' if length $m > 240;
        printf "%s, %s, %s, %d processes: %d errors in %d workers (%s ms each on average)%s%s: %s\n",
          $s, $w, $p, $n, $r->{errors}, $r->{bad_workers}, ms( $r->{err_time} ), $r->{killed} ? ", $r->{killed} workers killed" : '',
          $r->{lost} ? ", $r->{lost} pre-filled sessions lost" : '', $m;
    }
}
print "\nconns: the largest count of client backends of the application user in pg_stat_activity\n",
  "(c.end: the last sample before the workers stop); RSS, Pss: the median worker\n",
  "(Pss shares the copy-on-write pages among the processes); ops/s: successful operations;\n",
  "w.err: workers that saw at least one error\n";
