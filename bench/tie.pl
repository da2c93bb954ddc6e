#!/usr/bin/perl
# Benchmark: create, read, update, delete through tie, for our class and for
# Debian's pure-Perl Apache::Session::Browseable::PgJSON, in the same run on
# the same throwaway PostgreSQL server (fsync on, logged table with the four
# expression indexes, pre-filled with LL::NG-like sessions), plus the floor:
# the same statements through raw libpq from bench/floor.c.
#
#   perl Makefile.PL && make && perl bench/tie.pl [--runs 3] [--seconds 4]
#        [--rows 120000] [--auth trust|scram-sha-256] [--prepared 1|0|both]
#
# Each operation is measured for ours, the floor and PgJSON back to back
# (the order rotates between runs), so that the machine's drift (WAL flush
# times vary a lot on a small VM) hits all three alike.  Prints one table
# per run and the median of the runs.
#
# --auth: how the server authenticates TCP connections.  The pure-Perl
# module opens a connection per tie, so its figures depend on it (SCRAM
# costs it about 30 ms per tie); ours keeps connections open.  Default
# trust: the most favourable case for the pure-Perl module.
#
# --prepared: our class's PreparedStatements option (default 1: named
# statements prepared once per connection; 0: unnamed statements with
# parameters, parsed and planned on every execution, as PgBouncer's
# transaction pooling needs); "both" measures ours both ways in the same
# run (the column "ours PS=0" and its ratio to "ours").
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib", "$FindBin::Bin/../blib/lib", "$FindBin::Bin/../blib/arch";
use Getopt::Long;
use File::Temp qw(tempdir);
use Time::HiRes qw(time);
use PgServer;
use LLNGSession;
use Apache::Session::Browseable::Patroni;

my %o = ( runs => 3, seconds => 4, rows => 120000, auth => 'trust', prepared => '1' );
GetOptions( \%o, 'runs=i', 'seconds=f', 'rows=i', 'auth=s', 'prepared=s' ) or die "bad options\n";
die "--prepared: 1, 0 or both\n" unless $o{prepared} =~ /\A(?:0|1|both)\z/;
$| = 1;

my $have_pgjson = eval { require Apache::Session::Browseable::PgJSON; require DBD::Pg; 1 };
warn "Apache::Session::Browseable::PgJSON not available: comparing with the floor only\n"
  unless $have_pgjson;

my $pg = PgServer->new( fsync => 1, host_auth => $o{auth} );
my $args = { $pg->options, Commit => 1 };
$args->{PreparedStatements} = 0 if $o{prepared} eq '0';
my $args_np = { %$args, PreparedStatements => 0 };    # --prepared both
print "PostgreSQL ", $pg->psql('SHOW server_version'), " on 127.0.0.1:", $pg->port,
  ", fsync on, logged table, 4 expression indexes, TCP auth $o{auth}\n";

# An LL::NG-like SSO session: about 40 keys, ~1.3 kB of JSON.
sub session_data { LLNGSession::data( $_[0] ) }

# Pre-fill the table so that indexes and the heap have a realistic size.
printf "filled %d sessions in %.1f s\n", $o{rows}, LLNGSession::fill( $pg, 1, $o{rows} );
my $sample_json = JSON::XS->new->encode( session_data(0) );
printf "session size: %d bytes of JSON, %d keys\n", length $sample_json, scalar keys %{ session_data(0) };


# Pre-filled rows are handed out in disjoint ranges: reads and updates use
# 1000 rows of their own per contender (the floor writes a fixed JSON that
# is not the row's own session: its rows must not be read back by the
# modules), deletes consume rows nobody else uses.
my $next_row = 1;
sub rows_for { my ($n) = @_; my $first = $next_row; $next_row += $n; die "not enough pre-filled rows (--rows)\n" if $next_row > $o{rows}; $first }
my %hot = map { $_ => rows_for(1000) } qw(Apache::Session::Browseable::Patroni Apache::Session::Browseable::PgJSON floor unprepared);
sub rowid { sprintf '%064x', $_[0] }

# One operation through tie, as LL::NG performs it, for $secs seconds.
# Returns (operations, seconds).
sub bench_class {
    my ( $class, $op, $secs, $use, $hot ) = @_;
    $use ||= $args;
    my $data = session_data(7);
    my $limit = int( $secs * 3000 ) + 10;
    my $first = $op eq 'delete' ? rows_for($limit) : $hot{ $hot || $class };
    my ( $t0, $n ) = ( time, 0 );
    while ( time - $t0 < $secs && $n < $limit ) {
        if ( $op eq 'create' ) {
            tie my %s, $class, undef, {%$use};
            @s{ keys %$data } = values %$data;
            untie %s;
        }
        elsif ( $op eq 'read' ) {
            tie my %s, $class, rowid( $first + $n % 1000 ), {%$use};
            my $u = $s{uid};
            untie %s;
        }
        elsif ( $op eq 'update' ) {
            tie my %s, $class, rowid( $first + $n % 1000 ), {%$use};
            $s{_lastSeen} = time;
            untie %s;
        }
        else {
            tie my %s, $class, rowid( $first + $n ), {%$use};
            tied(%s)->delete;
            untie %s;
        }
        $n++;
    }
    return ( $n, time - $t0 );
}

# The floor program.
my $dir = tempdir( CLEANUP => 1 );
my $cflags = `pkg-config --cflags libpq 2>/dev/null` || '-I' . `pg_config --includedir`;
my $libs   = `pkg-config --libs libpq 2>/dev/null` || '-lpq';
chomp( $cflags, $libs );
system("cc -O2 $cflags -o $dir/floor $FindBin::Bin/floor.c $libs") == 0 or die "cannot build bench/floor.c\n";
my $jf = "$dir/session.json";
{ open my $fh, '>', $jf or die; print $fh $sample_json; }
my $conninfo = sprintf "host=127.0.0.1 port=%d dbname=%s user=%s password=%s",
  $pg->port, $pg->dbname, $pg->user, $pg->password;

sub bench_floor {
    my ( $op, $secs ) = @_;
    my $limit = int( $secs * 3000 ) + 10;
    my $first = $op eq 'delete' ? rows_for($limit) : $hot{floor};
    my $out = `$dir/floor '$conninfo' sessions $jf $secs $op $first $limit`;
    my $rate = $out =~ /^\w+ ([\d.]+)/ ? $1 : die "floor failed: $out\n";
    return ( $rate * $secs, $secs );
}

my @ops = qw(create read update delete);
my @who = ( 'ours', 'floor', $have_pgjson ? 'pgjson' : (), $o{prepared} eq 'both' ? 'ours_np' : () );
my %run = (
    ours   => sub { bench_class( 'Apache::Session::Browseable::Patroni', @_ ) },
    ours_np => sub { bench_class( 'Apache::Session::Browseable::Patroni', @_, $args_np, 'unprepared' ) },
    pgjson => sub { bench_class( 'Apache::Session::Browseable::PgJSON',  @_ ) },
    floor  => \&bench_floor,
);
# Each measurement is cut into slices that alternate between the
# contenders, so that slow drifts of the machine (the time a WAL flush takes
# varies a lot on a small VM) hit them alike.
my $SLICES = 6;
my @runs;
for my $r ( 1 .. $o{runs} ) {
    my %res;
    for my $op (@ops) {
        my ( %n, %t );
        for my $slice ( 1 .. $SLICES ) {
            my @order = @who;
            push @order, shift @order for 1 .. ( $r + $slice ) % @who;    # rotate
            for (@order) {
                my ( $n, $t ) = $run{$_}->( $op, $o{seconds} / $SLICES );
                $n{$_} += $n;
                $t{$_} += $t;
            }
        }
        $res{$_}{$op} = $n{$_} / $t{$_} for @who;
    }
    push @runs, \%res;
    print_table( "run $r", \%res );
}

sub median { my @v = sort { $a <=> $b } @_; return $v[ $#v / 2 ] }

my %med;
for my $who (@who) {
    for my $op (@ops) {
        $med{$who}{$op} = median( map { $_->{$who}{$op} } @runs );
    }
}
print_table( "median of $o{runs} runs", \%med );

sub print_table {
    my ( $title, $r ) = @_;
    my $np = $o{prepared} eq 'both';
    my $ps = $o{prepared} eq '0' ? ' (ours: PreparedStatements 0)' : '';
    print "\n== $title: ops/s through tie (floor: the same statements through raw libpq)$ps ==\n";
    printf "%-8s %10s %10s %12s %10s %11s%s\n", 'op', 'PgJSON', 'ours', 'ours/PgJSON', 'floor',
      'floor/ours', $np ? sprintf( ' %10s %9s', 'ours PS=0', 'PS=0/PS=1' ) : '';
    for my $op (@ops) {
        my ( $p, $u, $f ) = ( $r->{pgjson}{$op}, $r->{ours}{$op}, $r->{floor}{$op} );
        printf "%-8s %10s %10.0f %12s %10.0f %11.2f%s\n", $op,
          defined $p ? sprintf( '%.0f', $p ) : 'n/a', $u,
          defined $p ? sprintf( '%.1fx', $u / $p ) : 'n/a', $f, $f / $u,
          $np ? sprintf( ' %10.0f %9.2f', $r->{ours_np}{$op}, $r->{ours_np}{$op} / $u ) : '';
    }
}
