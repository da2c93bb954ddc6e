#!/usr/bin/perl
# Benchmark: time to a usable leader.  A fresh process (nothing cached)
# ties a session whose DataSource points at a dead port, so the tie succeeds
# only after discovery (Patroni API -> leader -> connection -> INSERT).
# The API is a fake Patroni server (t/lib/FakePatroni.pm) naming a real
# PostgreSQL; compared: a healthy first endpoint, and a first endpoint that
# accepts connections and never answers (listed before the healthy one).
#
#   perl Makefile.PL && make && perl bench/discovery.pl [--samples 30]
#
# Target: the hanging first endpoint adds at most 50 ms.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib", "$FindBin::Bin/../blib/lib", "$FindBin::Bin/../blib/arch";
use Getopt::Long;
use Time::HiRes qw(time);
use JSON::PP;
use POSIX ();
use PgServer;
use FakePatroni;
use Apache::Session::Browseable::Patroni;

my %o = ( samples => 30 );
GetOptions( \%o, 'samples=i' ) or die "bad options\n";
$| = 1;

my $pg   = PgServer->new;
my $dead = PgServer::free_port();
my $json = encode_json( { members => [ { name => 'node1', role => 'leader', state => 'running',
    host => '127.0.0.1', port => $pg->port, api_url => 'http://127.0.0.1:1/patroni' } ] } );
my $good = FakePatroni->new( body => $json );
my $hang = FakePatroni->new( mode => 'hang' );
my $refused = FakePatroni->refused_url( creds => 0 );

# One sample: a child process ties once and reports how long it took.
sub sample {
    my ($urls) = @_;
    pipe my $r, my $w or die;
    my $pid = fork // die;
    if ( !$pid ) {
        close $r;
        my $args = { DataSource => "dbi:Pg:dbname=sessions;host=127.0.0.1;port=$dead",
            UserName => $pg->user, Password => $pg->password, PatroniUrl => $urls, PatroniTimeout => 3 };
        open STDERR, '>', '/dev/null';
        my $t0 = time;
        my $ok = eval {
            tie my %s, 'Apache::Session::Browseable::Patroni', undef, $args;
            $s{x} = 1;
            untie %s;
            1;
        };
        print $w $ok ? sprintf( "%.3f\n", ( time - $t0 ) * 1000 ) : "ERR $@\n";
        close $w;
        POSIX::_exit(0);
    }
    close $w;
    my $line = <$r>;
    waitpid $pid, 0;
    die "sample failed: $line" unless defined $line and $line =~ /^[\d.]+$/;
    return $line + 0;
}

sub stats {
    my @v = sort { $a <=> $b } @_;
    return ( $v[ $#v / 2 ], $v[ int( 0.9 * $#v ) ], $v[-1] );
}

my %cases = (
    '1 healthy endpoint'                      => $good->url( creds => 0 ),
    'hanging first, healthy second'           => join( ',', $hang->url( creds => 0 ), $good->url( creds => 0 ) ),
    'refusing first, healthy second'          => join( ',', $refused, $good->url( creds => 0 ) ),
);
my @order = ( '1 healthy endpoint', 'hanging first, healthy second', 'refusing first, healthy second' );
my %res;
sample( $cases{ $order[0] } ) for 1 .. 3;    # warm up
for my $i ( 1 .. $o{samples} ) {
    push @{ $res{$_} }, sample( $cases{$_} ) for @order;
}
print "\nTime to a usable leader from a fresh process (discovery + connect + INSERT + COMMIT), $o{samples} samples\n";
printf "%-34s %10s %10s %10s\n", 'first endpoint', 'p50 ms', 'p90 ms', 'max ms';
my ($base) = stats( @{ $res{ $order[0] } } );
for (@order) {
    my ( $p50, $p90, $max ) = stats( @{ $res{$_} } );
    printf "%-34s %10.1f %10.1f %10.1f\n", $_, $p50, $p90, $max;
}
my ($h50) = stats( @{ $res{ $order[1] } } );
printf "\nhanging first endpoint adds %.1f ms at the median (target: at most 50 ms)\n", $h50 - $base;
printf "for comparison, the pure-Perl module asks endpoints one after the other with a 3 s timeout each:\n"
  . "a hanging first endpoint costs it 3000 ms\n";
