# The schema helper's index names (the _schema XSUB behind
# `asbp-patroni schema`), on a real PostgreSQL: a short table name keeps the
# first names exactly (existing deployments have them); two tables whose
# long names share their first 40 characters each get their own full set
# (names unique per table, presence checked on the table itself); a short
# name whose index names another table already uses gets the unique names.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use PgServer;
use Apache::Session::Browseable::Patroni;

my $pg = PgServer->start_or_skip( no_table => 1 );

# The indexes of the "global" kind, as (field, suffix).
my @GLOBAL = ( [ '_whattotrace', '' ], [ '_whattotrace', '_prefix' ], [ '_session_kind', '' ],
    [ '_utime', '_int' ], [ '_lastseen', '_int' ], [ 'ipaddr', '' ], [ '_httpsessiontype', '' ],
    [ 'user', '' ] );

sub schema {
    my ( $table, $dry ) = @_;
    return Apache::Session::Browseable::Patroni::_schema( { $pg->options, TableName => $table },
        'global', $dry ? 1 : 0, 0 );
}

sub index_items { return grep { $_->{what} ne 'table' } @{ $_[0]{items} } }

# The index names of a table (its primary key aside), sorted.
sub indexes_of {
    my ($table) = @_;
    my $out = $pg->psql( "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes "
          . "WHERE schemaname = 'public' AND tablename = '$table' AND indexname NOT LIKE '%_pkey'" );
    return [ split /,/, $out ];
}

# ---- a short name: the first names, exactly ------------------------------

my $r = schema('sessions');
my @want = sort map { "sessions_$_->[0]$_->[1]_idx" } @GLOBAL;
is_deeply( [ sort map { $_->{what} } index_items($r) ], \@want, 'short name: the first index names' );
ok( ( grep { $_->{done} && !$_->{existed} } index_items($r) ) == @GLOBAL, 'short name: all created' );
is_deeply( indexes_of('sessions'), \@want, 'short name: the table has them' );
ok( ( grep { $_->{existed} && !$_->{done} } index_items( schema('sessions') ) ) == @GLOBAL,
    'short name, again: all there, nothing run' );
ok( grep( { $_ eq 'sessions__whattotrace_idx' } @want ), 'README\'s example name is among them' );

# ---- two long names sharing their first 40 characters -------------------

my $prefix = 'llng_sessions_for_the_portal_of_company_';    # 40 characters
is( length $prefix, 40, 'the shared prefix has 40 characters' );
my ( $ta, $tb ) = ( "${prefix}one", "${prefix}two" );
$pg->psql("CREATE TABLE $_ (id varchar(64) NOT NULL PRIMARY KEY, a_session jsonb)") for $ta, $tb;

my $ra = schema($ta);
ok( ( grep { $_->{done} && !$_->{existed} } index_items($ra) ) == @GLOBAL, 'first long table: all created' );
my $rb = schema($tb);
my @b  = index_items($rb);
is( scalar(@b), scalar(@GLOBAL), 'second long table: one item per index' );
is( scalar( grep { $_->{existed} } @b ), 0, 'second long table: none reported as existing' )
  or diag explain [ map { $_->{what} } grep { $_->{existed} } @b ];
is( scalar( grep { $_->{done} } @b ), scalar(@GLOBAL), 'second long table: all created' );

my ( $ia, $ib ) = ( indexes_of($ta), indexes_of($tb) );
is( scalar(@$ia), scalar(@GLOBAL), 'first long table: its full set' );
is( scalar(@$ib), scalar(@GLOBAL), 'second long table: its full set' );
my %in_a = map { $_ => 1 } @$ia;
is( scalar( grep { $in_a{$_} } @$ib ), 0, 'no index name shared by the two tables' );
is( scalar( grep { length($_) > 63 } @$ia, @$ib ), 0, 'every name within 63 bytes' );
is_deeply( [ sort map { $_->{what} } @b ], $ib, 'the report names the indexes the table has' );
like( $ib->[0], qr/^\Q${\ substr( $prefix, 0, 20 )}\E_[0-9a-f]{8}_/, 'a readable prefix, then a hash' );
ok( ( grep { $_->{existed} && !$_->{done} } index_items( schema($tb) ) ) == @GLOBAL,
    'second long table, again: all there, nothing run' );
is_deeply( [ sort map { $_->{what} } index_items( schema( $ta, 1 ) ) ], $ia, 'dry run: the same names' );

# ---- a long name whose table has an index under its first name ----------

my $tc  = "${prefix}old";
my $old = substr( $tc, 0, 30 ) . '__whattotrace_idx';
$pg->psql("CREATE TABLE $tc (id varchar(64) NOT NULL PRIMARY KEY, a_session jsonb)");
$pg->psql("CREATE INDEX $old ON $tc ((a_session ->> '_whatToTrace'))");
my @o = index_items( schema($tc) );
is_deeply( [ map { $_->{what} } grep { $_->{existed} } @o ], [$old], 'an existing first name is kept' );
is( scalar( grep { $_->{done} } @o ), @GLOBAL - 1, 'the others are created' );
is( scalar @{ indexes_of($tc) }, scalar(@GLOBAL), 'no index twice' );

# ---- a short name whose first names another table has --------------------

$pg->psql(q{CREATE TABLE "my-sess" (id varchar(64) NOT NULL PRIMARY KEY, a_session jsonb)});
$pg->psql(q{CREATE TABLE my_sess (id varchar(64) NOT NULL PRIMARY KEY, a_session jsonb)});
schema('"my-sess"');
my @c = index_items( schema('my_sess') );
is( scalar( grep { $_->{done} && !$_->{existed} } @c ), scalar(@GLOBAL),
    'a short name whose index names are taken: all created' );
is( scalar @{ indexes_of('my_sess') }, scalar(@GLOBAL), 'it has its full set' );
is( scalar @{ indexes_of('my-sess') }, scalar(@GLOBAL), 'and so has the other table' );

$pg->stop;
done_testing;
