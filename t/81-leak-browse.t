# Leaks over time in the browse path: 10,000 searches (searchOn, with and
# without a field list, and searchOnExpr) in one process, with error paths
# in the loop (a DataSource that does not parse, an unknown database, a
# missing table, a missing id through tie: each must die with its exact
# message; a search that finds nothing must return an empty hash; a
# warning fails the cycle),
# against a throwaway PostgreSQL holding 300 LL::NG-sized sessions.  RSS
# is measured after a warm-up and at the end; bound and reasoning as in
# t/80-leak-tie.t (1 MB over 9,000 measured cycles; a lost decoded
# session, PGresult or error record per search would exceed it).
use strict;
use File::Temp ();
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

# how many sessions searchOnExpr('user$u*') finds
my %prefix_count;
for my $u ( 1 .. $SESSIONS ) {
    $prefix_count{$u} += ( $_ % 10 ? 1 : 2 ) for grep { index( $_, $u ) == 0 } 1 .. $SESSIONS;
}
my $bad_ds   = { %$args, DataSource => 'dbi:Pg:dbname=x;oops' };
my $no_db    = { %$args, DataSource => ( $args->{DataSource} =~ s/dbname=sessions/dbname=nosuchdb/r ) };
my $no_table = { %$args, TableName => 'nosuchtable' };
my ( %count, @errors );

# Every error path dies with its own message (none of them returns an
# empty result): anything else, a result included, is wrong.
sub expect_error {
    my ( $what, $re, $code ) = @_;
    my $ok  = eval { $code->(); 1 };
    my $err = $@;
    return if !$ok && $err =~ $re;
    push @errors, "$what: " . ( $ok ? 'no error' : "not the expected error: $err" );
}
my $P = qr/\AApache::Session::Browseable::Patroni: /;
my $E_BAD_DS   = qr/${P}Invalid DataSource 'dbi:Pg:dbname=x;oops': expected key=value at character 17 at /;
my $E_NO_DB    = qr/${P}cannot connect to DataSource dbi:Pg:dbname=nosuchdb;\S+: .*database "nosuchdb" does not exist \[SQLSTATE 3D000\] at /;
my $E_NO_TABLE = qr/${P}relation "nosuchtable" does not exist \(server 127\.0\.0\.1:\d+\) \[SQLSTATE 42P01\] at /;
my $E_MISSING  = qr/\AObject does not exist in the data store at /;

# A warning is a failed cycle.
my $warned = '';
$SIG{__WARN__} = sub { $warned .= $_[0] };

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
        $ok &&= ref $res eq 'HASH' && keys %$res == ( $u % 10 ? 1 : 2 )
          && !grep { join( ',', sort keys %$_ ) ne '_utime,_whatToTrace,id,ipAddr' or $_->{_whatToTrace} ne "user$u" } values %$res;
    }
    elsif ( $k == 6 and $i % 20 == 6 ) {    # searchOnExpr and a search that
                                            # finds nothing take turns
        $what = 'searchOnExpr';
        $ok   = eval { $res = $C->searchOnExpr( $args, '_whatToTrace', "user$u*", 'uid' ); 1 };
        $ok &&= ref $res eq 'HASH' && keys %$res == $prefix_count{$u}
          && !grep { index( $_->{uid}, "user$u" ) != 0 } values %$res;
    }
    elsif ( $k == 6 ) {
        $what = 'searchOn none';
        $ok   = eval { $res = $C->searchOn( $args, '_whatToTrace', "nobody$u" ); 1 };
        $ok &&= ref $res eq 'HASH' && !%$res;
    }
    elsif ( $k == 7 ) {
        $what = 'bad DataSource + missing id';
        expect_error( 'bad DataSource', $E_BAD_DS,
            sub { $C->searchOn( $bad_ds, 'uid', "user$u" ) } );
        expect_error( 'missing id', $E_MISSING,
            sub { tie( my %s, $C, sprintf( '%064x', $u ), $args ); 1 } );
        $ok = 1;
    }
    elsif ( $k == 8 and $i % 20 == 8 ) {
        # A refused connection (authentication runs first: half as often).
        $what = 'unknown database';
        expect_error( $what, $E_NO_DB, sub { $C->searchOn( $no_db, 'uid', "user$u" ) } );
        $ok = 1;
    }
    elsif ( $k == 8 ) {
        $what = 'searchOn undef';
        $ok   = eval { $res = $C->searchOn( $args, '_whatToTrace', undef ); 1 };
        $ok &&= ref $res eq 'HASH' && !%$res;
    }
    else {
        $what = 'missing table';
        expect_error( $what, $E_NO_TABLE, sub { $C->searchOn( $no_table, 'uid', "user$u" ) } );
        $ok = 1;
    }
    $count{$what}++;
    push @errors, "$what user$u: " . ( $@ || 'wrong result' ) unless $ok;
    push @errors, "$what user$u: warning: $warned" if length $warned;
    $warned = '';
}

# The module logs failures on STDERR: keep the test output readable.
open my $save_err, '>&', \*STDERR or die;
my $log_tmp = File::Temp->new( TEMPLATE => 'asbp-leak-browse-XXXXXXXX', TMPDIR => 1 );   # exclusive, unpredictable
my $log = $log_tmp->filename;
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
