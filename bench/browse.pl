#!/usr/bin/perl
# Benchmark: the class methods (searchOn, searchOnExpr, the manager's
# listing, get_key_from_all_sessions, deleteIfLowerThan) of our class and of
# Debian's pure-Perl Apache::Session::Browseable::PgJSON, in the same run on
# the same throwaway PostgreSQL server (fsync on, logged table with the four
# expression indexes of t/lib/PgServer.pm), filled with LL::NG-like sessions.
#
#   perl Makefile.PL && make && perl bench/browse.pl [--rows 100000]
#        [--runs 3] [--calls 2000] [--million]
#
# Every case runs in a fresh forked child: its time, and its peak RSS
# growth (VmHWM from /proc/self/status at the end minus at the start: the
# modules are loaded before the fork, so that is the cost of the call and
# of what it returns).  Time and memory are the median of --runs children.
# The searchOn latency is the median (p50) of --calls calls in one child,
# after one warm-up call (which opens the connection).
#
# --million: afterwards, fill the table up to 1,000,000 sessions and run
# the coderef form again (memory must not grow with the table).
#
# The "floor" line builds the listing's and the undef form's results in
# plain Perl from memory, without any database: what holding the result
# costs whoever builds it (the limit for the memory targets).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib", "$FindBin::Bin/../blib/lib", "$FindBin::Bin/../blib/arch";
use Getopt::Long;
use POSIX ();
use Time::HiRes qw(time);
use JSON::XS;
use PgServer;
use LLNGSession;
use Apache::Session::Browseable::Patroni;

my %o = ( rows => 100000, runs => 3, calls => 2000 );
GetOptions( \%o, 'rows=i', 'runs=i', 'calls=i', 'million' ) or die "bad options\n";
$| = 1;

my $have_pgjson = eval { require Apache::Session::Browseable::PgJSON; require DBD::Pg; 1 };
warn "Apache::Session::Browseable::PgJSON not available: ours only\n" unless $have_pgjson;
my $OURS   = 'Apache::Session::Browseable::Patroni';
my $THEIRS = 'Apache::Session::Browseable::PgJSON';

my $pg = PgServer->new( fsync => 1 );
my $args = { $pg->options, Commit => 1 };
print "PostgreSQL ", $pg->psql('SHOW server_version'), " on 127.0.0.1:", $pg->port,
  ", fsync on, logged table, 4 expression indexes\n";

# An LL::NG-like session: about 40 keys, ~1.3 kB of JSON.  One in twenty is
# a persistent session (the purge keeps them).
sub session_data { LLNGSession::data( $_[0], persistent_every => 20 ) }

# Rows first..last, through COPY.
sub fill {
    my ( $first, $last ) = @_;
    my $dt = LLNGSession::fill( $pg, $first, $last, persistent_every => 20 );
    printf "filled sessions %d..%d in %.1f s\n", $first, $last, $dt;
}
fill( 1, $o{rows} );
printf "session size: %d bytes of JSON, %d keys; %s sessions, %s of kind SSO\n",
  length( JSON::XS->new->encode( session_data(1) ) ), scalar keys %{ session_data(1) },
  $pg->psql('SELECT count(*) FROM sessions'),
  $pg->psql(q{SELECT count(*) FROM sessions WHERE a_session ->> '_session_kind' = 'SSO'});

sub hwm {
    open my $fh, '<', '/proc/self/status' or return 0;
    while ( my $l = <$fh> ) { return $1 * 1024 if $l =~ /^VmHWM:\s+(\d+)\s+kB/ }
    return 0;
}

# Runs $code in a fresh child; returns { time, mem, out } (out: what the
# code returned, a short string).
sub in_child {
    my ($code) = @_;
    pipe my $r, my $w or die "pipe: $!";
    my $pid = fork // die "fork: $!";
    if ( !$pid ) {
        close $r;
        my $base = hwm();
        my $t0   = time;
        my $out  = eval { local $SIG{__WARN__} = sub { }; $code->() };    # DBI's PrintError: reported below
        my $dt   = time - $t0;
        $out = 'FAILED: ' . ( $@ =~ s/\s+$//r ) if !defined $out && $@;
        $out //= '';
        $out =~ s/\n/ /g;
        print $w join( "\t", $dt, hwm() - $base, $out ), "\n";
        close $w;
        POSIX::_exit(0);
    }
    close $w;
    my $line = <$r> // '';
    close $r;
    waitpid $pid, 0;
    chomp $line;
    my ( $t, $m, $out ) = split /\t/, $line, 3;
    return { time => $t // 0, mem => $m // 0, out => $out // "child died (status $?)" };
}

sub median { my @v = sort { $a <=> $b } @_; return $v[ $#v / 2 ] }

my @rows;    # [ case, ours, theirs ]
my @who = ( $OURS, $have_pgjson ? $THEIRS : () );

sub mb { sprintf '%.1f', $_[0] / 1048576 }

sub report {
    my ( $case, $r ) = @_;
    push @rows, [ $case, $r->{$OURS}, $r->{$THEIRS} ];
    my $f = sub {
        my $x = shift or return 'n/a';
        return "FAILED ($x->{out})" if $x->{out} =~ /^FAILED/;
        my $v = defined $x->{lat} ? sprintf( '%.3f ms p50', $x->{lat} * 1000 ) : sprintf( '%.3f s', $x->{time} );
        return "$v, +" . mb( $x->{mem} ) . " MB ($x->{out})";
    };
    printf "  %-46s ours %s\n  %-46s PgJSON %s\n", $case, $f->( $r->{$OURS} ), '', $f->( $r->{$THEIRS} );
}

# One case for each class, each run in fresh children; the classes take
# turns (the first one alternates between runs).
sub both {
    my ( $case, $code, %o2 ) = @_;
    my %r;
    my $runs = $o2{runs} || $o{runs};
    my %all;
    for my $run ( 1 .. $runs ) {
        my @order = $run % 2 ? @who : reverse @who;
        for my $class (@order) {
            push @{ $all{$class} }, in_child( sub { $code->($class) } );
        }
    }
    for my $class (@who) {
        my @r = @{ $all{$class} };
        $r{$class} = {
            time => median( map { $_->{time} } @r ),
            mem  => median( map { $_->{mem} } @r ),
            out  => $r[-1]{out},
        };
        if ( $r[-1]{out} =~ /^p50 ([\d.]+) s; (.*)$/ ) {
            $r{$class}{lat} = median( map { $_->{out} =~ /^p50 ([\d.]+)/ ? $1 : 0 } @r );
            $r{$class}{out} = $2;
        }
    }
    report( $case, \%r );
}
sub count_of { my ($h) = @_; return ref $h eq 'HASH' ? scalar( keys %$h ) . ' rows' : "returned $h" }

print "\n== $o{rows} sessions: median of $o{runs} fresh children per case ==\n";

# searchOn on an indexed field: p50 latency of --calls calls in one child.
both(
    "searchOn(_whatToTrace) latency",
    sub {
        my ($class) = @_;
        my ( @lat, $n );
        $class->searchOn( $args, '_whatToTrace', 'user1' );    # connects
        for my $i ( 1 .. $o{calls} ) {
            my $u  = 'user' . ( 1 + ( $i * 7919 ) % $o{rows} );
            my $t0 = time;
            my $h  = $class->searchOn( $args, '_whatToTrace', $u );
            push @lat, time - $t0;
            $n += keys %$h;
        }
        return sprintf 'p50 %.6f s; %d calls, %d rows', median(@lat), $o{calls}, $n;
    }
);
both( "searchOnExpr('user4242*'), no pattern index",
    sub { count_of( $_[0]->searchOnExpr( $args, '_whatToTrace', 'user4242*' ) ) } );
$pg->psql(q{CREATE INDEX sessions_wtt_pattern ON sessions ((a_session ->> '_whatToTrace') text_pattern_ops)});
$pg->psql_super('ANALYZE sessions');
both( "searchOnExpr('user4242*'), text_pattern_ops",
    sub { count_of( $_[0]->searchOnExpr( $args, '_whatToTrace', 'user4242*' ) ) } );
$pg->psql('DROP INDEX sessions_wtt_pattern');

my @listing = qw(_httpSessionType ipAddr _whatToTrace _utime _session_kind);
both( "listing: searchOn(_session_kind=SSO, 5 fields)",
    sub { count_of( $_[0]->searchOn( $args, '_session_kind', 'SSO', @listing ) ) } );
both( "get_key_from_all_sessions(['_utime','uid'])",
    sub { count_of( $_[0]->get_key_from_all_sessions( $args, [ '_utime', 'uid' ] ) ) } );
# LL::NG's purge fallback: collect the expired ids, return undef.
my $purge_cb = sub {
    my ( $s, $id ) = @_;
    push @main::expired, $id if $s->{_utime} < 1700000000 + 100;
    return undef;
};
both( "get_key_from_all_sessions(coderef)",
    sub { $_[0]->get_key_from_all_sessions( $args, $purge_cb ); scalar(@main::expired) . ' ids collected' } );
both( "get_key_from_all_sessions(undef)",
    sub { count_of( $_[0]->get_key_from_all_sessions($args) ) } );

# Floors: the same result structures built in plain Perl, without any
# database (what holding the result costs, whoever builds it).
{
    my %f;
    $f{listing} = in_child(
        sub {
            my %r;
            for my $n ( 1 .. $o{rows} ) {
                next unless $n % 20;
                my $id = sprintf '%064x', $n;
                $r{$id} = { id => $id, _httpSessionType => '', ipAddr => '10.1.' . ( $n % 250 ) . '.' . ( $n % 200 ),
                    _whatToTrace => "user$n", _utime => '' . ( 1700000000 + $n ), _session_kind => 'SSO' };
            }
            scalar( keys %r ) . ' rows';
        }
    );
    $f{undef} = in_child(
        sub {
            my %r;
            my $json = JSON::XS->new->allow_nonref;
            for my $n ( 1 .. $o{rows} ) {
                my $d = session_data($n);
                $d->{_session_id} = sprintf '%064x', $n;
                $r{ $d->{_session_id} } = $json->decode( $json->encode($d) );
            }
            scalar( keys %r ) . ' rows';
        }
    );
    printf "  floor: the listing's hash built in plain Perl: +%s MB; %d sessions decoded (JSON::XS) and kept: +%s MB\n",
      mb( $f{listing}{mem} ), $o{rows}, mb( $f{undef}{mem} );
    $main::floor = \%f;
}

# deleteIfLowerThan with LL::NG's rule: in each run, each class deletes
# the next 10,000 oldest rows (persistent sessions are kept), in fresh
# children, the order alternating between runs.
{
    my %all;
    my $lim = 1700000000;
    for my $run ( 1 .. $o{runs} ) {
        for my $class ( $run % 2 ? @who : reverse @who ) {
            $lim += 10000;
            my $t = $lim + 1;
            push @{ $all{$class} }, in_child(
                sub {
                    my ( $ok, $n ) = $class->deleteIfLowerThan( $args,
                        { not => { _session_kind => 'Persistent' }, or => { _utime => $t, _lastSeen => $t } } );
                    "returned ($ok, " . ( $n // 'undef' ) . ")";
                }
            );
        }
    }
    my %r;
    for my $class (@who) {
        my @r = @{ $all{$class} };
        $r{$class} = { time => median( map { $_->{time} } @r ), mem => median( map { $_->{mem} } @r ), out => $r[-1]{out} };
    }
    report( "deleteIfLowerThan(~10k rows)", \%r );
}

my %million;
if ( $o{million} ) {
    my $have = $pg->psql('SELECT count(*) FROM sessions');
    fill( $o{rows} + 1, $o{rows} + 1_000_000 - $have );    # up to 1,000,000 rows
    my $n = $pg->psql('SELECT count(*) FROM sessions');
    print "\n== $n sessions: the coderef form again (one child each) ==\n";
    both( "get_key_from_all_sessions(coderef) at 1M",
        sub { $_[0]->get_key_from_all_sessions( $args, $purge_cb ); scalar(@main::expired) . ' ids collected' },
        runs => 1 );
}

print "\n== summary: time (s; ms for latencies) and peak RSS growth (MB) ==\n";
printf "%-46s %9s %9s %7s %9s %9s %7s\n", 'case', 'PgJSON', 'ours', 'ratio', 'PgJSON MB', 'ours MB', 'ratio';
my %row;
for my $row (@rows) {
    my ( $case, $u, $p ) = @$row;
    $row{$case} = $row;
    my $val = sub { my $r = shift or return; return if $r->{out} =~ /^FAILED/; defined $r->{lat} ? $r->{lat} * 1000 : $r->{time} };
    my ( $vu, $vp ) = ( $val->($u), $val->($p) );
    printf "%-46s %9s %9s %7s %9s %9s %7s\n", $case,
      defined $vp ? sprintf( '%.3f', $vp ) : ( $p ? 'FAILED' : 'n/a' ),
      defined $vu ? sprintf( '%.3f', $vu ) : 'FAILED',
      defined $vp && defined $vu && $vp > 0 ? sprintf( '%.2f', $vu / $vp ) : '-',
      $p ? mb( $p->{mem} ) : 'n/a', mb( $u->{mem} ),
      $p && $p->{mem} > 0 && $val->($p) ? sprintf( '%.2f', $u->{mem} / $p->{mem} ) : '-';
}
for my $row (@rows) {
    my ( $case, $u, $p ) = @$row;
    print "  note: PgJSON, $case: $p->{out}\n" if $p && $p->{out} =~ /^FAILED/;
}

if ($have_pgjson) {
    print "\n== targets ==\n";
    my $check = sub {
        my ( $what, $ok, $detail ) = @_;
        printf "  %-4s %s (%s)\n", $ok ? 'met' : 'MISS', $what, $detail;
    };
    my $ratio = sub {
        my ( $case, $k ) = @_;
        my ( undef, $u, $p ) = @{ $row{$case} };
        return $k eq 'lat' ? $u->{lat} / $p->{lat} : $u->{$k} / ( $p->{$k} || 1 );
    };
    my $cb = $row{"get_key_from_all_sessions(coderef)"}[1]{mem};
    $check->( 'coderef form: peak RSS growth <= 20 MB', $cb <= 20 * 1048576, mb($cb) . ' MB' );
    if ( my $m = $row{"get_key_from_all_sessions(coderef) at 1M"} ) {
        $check->( 'coderef form: the same at 1M as at 100k (within 5 MB)', abs( $m->[1]{mem} - $cb ) <= 5 * 1048576,
            mb( $m->[1]{mem} ) . " MB vs " . mb($cb) . " MB" );
    }
    for my $case ( "get_key_from_all_sessions(undef)", "listing: searchOn(_session_kind=SSO, 5 fields)" ) {
        my ( $t, $m ) = ( $ratio->( $case, 'time' ), $ratio->( $case, 'mem' ) );
        $check->( "$case: time <= 1/3 of PgJSON", $t <= 1 / 3, sprintf '%.2f', $t );
        $check->( "$case: memory <= 1/2 of PgJSON", $m <= 1 / 2, sprintf '%.2f', $m );
    }
    for ( [ listing => "listing: searchOn(_session_kind=SSO, 5 fields)" ], [ undef => "get_key_from_all_sessions(undef)" ] ) {
        my ( $k, $case ) = @$_;
        my $p = $row{$case}[2]{mem} || 1;
        printf "       (%s: the result itself, built in plain Perl, takes %s MB = %.2f of PgJSON's growth)\n",
          $k, mb( $main::floor->{$k}{mem} ), $main::floor->{$k}{mem} / $p;
    }
    my $l = $ratio->( "searchOn(_whatToTrace) latency", 'lat' );
    $check->( 'searchOn: latency <= 1/2 of PgJSON', $l <= 1 / 2, sprintf '%.2f', $l );
}
