# Leaks over time in the browse path: 10,000 searches (searchOn, with and
# without a field list, and searchOnExpr) in one process, with error paths
# in the loop (a DataSource that does not parse, an unknown database, a
# missing table, a missing id through tie, a search that finds nothing),
# against a throwaway PostgreSQL holding 300 LL::NG-sized sessions.  RSS
# is measured after a warm-up and at the end; bound and reasoning as in
# t/80-leak-tie.t (1 MB over 9,000 measured cycles; a lost decoded
# session, PGresult or error record per search would exceed it).
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Apache::Session::Browseable::Patroni;

my $C = 'Apache::Session::Browseable::Patroni';

require PgServer;
require LeakCheck;

my $pg     = PgServer->start_or_skip;
my $args   = { $pg->options };
my $CYCLES = LeakCheck::cycles(10_000);
my $WARMUP = int( $CYCLES / 10 );
my $BOUND_KB = 1024;
my $SESSIONS = 300;

# Sessions to find: user1..user300, 41 keys each; every 10th user has a
# second session (searchOn then returns two).
for my $i ( 1 .. $SESSIONS ) {
    for my $copy ( 1 .. ( $i % 10 ? 1 : 2 ) ) {
        tie my %s, $C, undef, $args;
        my %d = ( _session_kind => 'SSO', _whatToTrace => "user$i", uid => "user$i",
            _utime => 1_700_000_000 + $i, ipAddr => "10.0.0.$copy", mail => "user$i\@example.com",
            hGroups => { staff => { name => 'staff' } }, map { ( "attr$_" => "value $_ (été)" ) } 1 .. 34 );
        @s{ keys %d } = values %d;
        untie %s;
    }
}

my $has_expr = $C->can('searchOnExpr');
my $bad_ds   = { %$args, DataSource => 'dbi:Pg:dbname=x;oops' };
my $no_db    = { %$args, DataSource => ( $args->{DataSource} =~ s/dbname=sessions/dbname=nosuchdb/r ) };
my $no_table = { %$args, TableName => 'nosuchtable' };
my ( %count, @errors );

sub expect_error {
    my ( $what, $re, $code ) = @_;
    my $res = eval { $code->() };
    my $err = $@;
    # An error path either dies with the reason or, like upstream, returns
    # an empty result; anything else is wrong.
    return if $err =~ $re;
    return if !$err and ( !$res or ( ref $res eq 'HASH' and !%$res ) );
    push @errors, "$what: " . ( $err || 'unexpected result' );
}

sub cycle {
    my ($i) = @_;
    my $u = 1 + $i % $SESSIONS;
    my $k = $i % 10;
    my ( $what, $ok, $res );
    if ( $k <= 3 ) {
        $what = 'searchOn';
        $ok   = eval { $res = $C->searchOn( $args, '_whatToTrace', "user$u" ); 1 };
        $ok &&= ref $res eq 'HASH' && keys %$res == ( $u % 10 ? 1 : 2 )
          && ( values %$res )[0]{uid} eq "user$u";
    }
    elsif ( $k <= 5 ) {
        $what = 'searchOn fields';
        $ok   = eval { $res = $C->searchOn( $args, 'uid', "user$u", qw(_whatToTrace ipAddr _utime) ); 1 };
        $ok &&= ref $res eq 'HASH' && keys %$res >= 1 && ( values %$res )[0]{_whatToTrace} eq "user$u";
    }
    elsif ( $k == 6 and $has_expr ) {
        $what = 'searchOnExpr';
        $ok   = eval { $res = $C->searchOnExpr( $args, '_whatToTrace', "user$u*", 'uid' ); 1 };
        $ok &&= ref $res eq 'HASH' && keys %$res >= 1;
    }
    elsif ( $k <= 6 ) {
        $what = 'searchOn none';
        $ok   = eval { $res = $C->searchOn( $args, '_whatToTrace', "nobody$u" ); 1 };
        $ok &&= ref $res eq 'HASH' && !%$res;
    }
    elsif ( $k == 7 ) {
        $what = 'bad DataSource + missing id';
        expect_error( 'bad DataSource', qr/Invalid DataSource/,
            sub { $C->searchOn( $bad_ds, 'uid', "user$u" ) } );
        expect_error( 'missing id', qr/Object does not exist/,
            sub { tie( my %s, $C, sprintf( '%064x', $u ), $args ); 1 } );
        $ok = 1;
    }
    elsif ( $k == 8 and $i % 20 == 8 ) {
        # A refused connection (authentication runs first: half as often).
        $what = 'unknown database';
        expect_error( $what, qr/nosuchdb/, sub { $C->searchOn( $no_db, 'uid', "user$u" ) } );
        $ok = 1;
    }
    elsif ( $k == 8 ) {
        $what = 'searchOn undef';
        $ok   = eval { $res = $C->searchOn( $args, '_whatToTrace', undef ); 1 };
        $ok &&= ref $res eq 'HASH' && !%$res;
    }
    else {
        $what = 'missing table';
        expect_error( $what, qr/nosuchtable/, sub { $C->searchOn( $no_table, 'uid', "user$u" ) } );
        $ok = 1;
    }
    $count{$what}++;
    push @errors, "$what user$u: " . ( $@ || 'wrong result' ) unless $ok;
}

# The module logs failures on STDERR: keep the test output readable.
open my $save_err, '>&', \*STDERR or die;
my $log = "/tmp/asbp-leak-browse-$$.log";
open STDERR, '>', $log or die "$log: $!";
END { unlink $log if $log }

my ( $rss0, $rss1, $dt ) = LeakCheck::run( \&cycle, $WARMUP, $CYCLES );
open STDERR, '>&', $save_err or die;

is( scalar @errors, 0, "$CYCLES cycles, every result and error as expected" )
  or diag( join "\n", @errors[ 0 .. ( $#errors < 4 ? $#errors : 4 ) ] );
diag( sprintf '%d cycles in %.1f s (%s)', $CYCLES, $dt,
    join ', ', map { "$_ $count{$_}" } sort keys %count );

LeakCheck::check_growth( $rss0, $rss1, $WARMUP, $CYCLES, $BOUND_KB );
done_testing;
