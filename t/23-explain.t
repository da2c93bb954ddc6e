# The SQL our C code generates uses the expression indexes: EXPLAIN, run
# through psql on the exact SQL text (taken from the cursor object, or from
# the ASBP_TRACE=1 log for the DELETE), with the parameters bound through
# PREPARE/EXECUTE as the module binds them.  5,000 sessions and ANALYZE
# are enough for the planner to choose the indexes by itself: no
# enable_seqscan = off anywhere.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use PgServer;
use BrowseData qw();
use Apache::Session::Browseable::Patroni;

my $pg   = PgServer->start_or_skip;
my $args = { $pg->options };
my $C    = 'Apache::Session::Browseable::Patroni';
my $N    = 5000;
BrowseData::load( $pg, [ 0 .. $N - 1 ] );
BrowseData::load( $pg, [ $N .. $N + 199 ],
    make => sub { my $s = BrowseData::session( $_[0] ); $s->{_whatToTrace} = 'dup' . ( $_[0] - $N ); $s } );

sub index_on {
    my ($expr) = @_;
    $expr =~ s/'/''/g;
    return $pg->psql("SELECT indexname FROM pg_indexes WHERE tablename = 'sessions' AND indexdef LIKE '%$expr%' ORDER BY indexname LIMIT 1");
}
sub sql_of { my $it = Apache::Session::Browseable::Patroni::_browse_open( $args, @_ ); my @s = $it->sql; 1 while $it->next; @s }

# EXPLAIN of a statement prepared from our SQL text with its parameters.
sub plan_of {
    my ( $sql, $types, $values, $settings ) = @_;
    my $vals = join ', ', map { my $v = $_; $v =~ s/'/''/g; "'$v'" } @$values;
    return $pg->psql( ( $settings // '' ) . "PREPARE q($types) AS $sql; EXPLAIN EXECUTE q($vals); DEALLOCATE q;" );
}

my $wtt = index_on(q{'_whatToTrace'::text))});
ok( $wtt, "expression index on _whatToTrace: $wtt" );

# searchOn on an indexed field
{
    my ( $sql, @p ) = sql_of( 'eq', '_whatToTrace', 'user42', undef );
    like( $sql, qr/WHERE a_session ->> '_whatToTrace' = \$1$/, "searchOn SQL: $sql" );
    is_deeply( \@p, ['user42'], 'the value is the parameter' );
    my $plan = plan_of( $sql, 'text', \@p );
    like( $plan, qr/(Index Scan using|Bitmap Index Scan on) $wtt\b/, 'searchOn uses the expression index' ) or diag $plan;
    # searchOn runs as a prepared statement: after a few executions the
    # server may use its generic plan, with $1 unknown: still the index
    $plan = plan_of( $sql, 'text', \@p, 'SET plan_cache_mode = force_generic_plan; ' );
    like( $plan, qr/(Index Scan using|Bitmap Index Scan on) $wtt\b/, '... with the generic plan too' ) or diag $plan;

    ( $sql, @p ) = sql_of( 'eq', '_whatToTrace', 'user42', [ 'cn', '_utime', 'MixedCase' ] );
    $plan = plan_of( $sql, 'text', \@p );
    like( $plan, qr/(Index Scan using|Bitmap Index Scan on) $wtt\b/, 'searchOn with fields uses the index' ) or diag $plan;

    # what a parameter in place of the literal field name would do: the
    # generic plan cannot match the expression index
    $plan = plan_of( 'SELECT id, a_session FROM sessions WHERE a_session ->> $1 = $2', 'text, text', [ '_whatToTrace', 'user42' ],
        'SET plan_cache_mode = force_generic_plan; ' );
    like( $plan, qr/Seq Scan on sessions/, 'contrast: a field name as a parameter gives a sequential scan (generic plan)' ) or diag $plan;

    my $kind = index_on(q{'_session_kind'::text))});
    ( $sql, @p ) = sql_of( 'eq', '_session_kind', 'Persistent', ['_session_id'] );
    $plan = plan_of( $sql, 'text', \@p );
    like( $plan, qr/(Index Scan using|Bitmap Index Scan on) $kind\b/, "searchOn(_session_kind => Persistent) uses $kind" ) or diag $plan;
}

# searchOnExpr with a prefix
{
    my ( $sql, @p ) = sql_of( 'like', '_whatToTrace', 'dup*', undef );
    like( $sql, qr/WHERE a_session ->> '_whatToTrace' LIKE \$1$/, "searchOnExpr SQL: $sql" );
    is_deeply( \@p, ['dup%'], 'the pattern is the parameter' );
    my $plan = plan_of( $sql, 'text', \@p );
    diag("without a text_pattern_ops index (collation C.UTF-8, not C): " . ( $plan =~ /^\s*(\S.*?)\s\s/ ? $1 : $plan ));
    $pg->psql(q{CREATE INDEX sessions_wtt_pattern ON sessions ((a_session ->> '_whatToTrace') text_pattern_ops)});
    $pg->psql_super('ANALYZE sessions');
    $plan = plan_of( $sql, 'text', \@p );
    like( $plan, qr/(Index Scan using|Bitmap Index Scan on) sessions_wtt_pattern\b/, "prefix 'dup*' uses the text_pattern_ops index" )
      or diag $plan;
    like( $plan, qr/~>=~ 'dup'::text/, '... on the prefix' ) or diag $plan;

    ( $sql, @p ) = sql_of( 'like', '_whatToTrace', 'du_p%*', ['cn'] );
    is_deeply( \@p, ['du\\_p\\%%'], 'escaped pattern' );
    $plan = plan_of( $sql, 'text', \@p );
    like( $plan, qr/(Index Scan using|Bitmap Index Scan on) sessions_wtt_pattern\b/, 'a prefix with literal _ and % uses it too' )
      or diag $plan;
    like( $plan, qr/~>=~ 'du_p%'::text/, '... with the literal prefix' ) or diag $plan;
    is_deeply( $C->searchOnExpr( $args, '_whatToTrace', 'dup1*', '_whatToTrace' ),
        { map { ( BrowseData::id( $N + $_ ) => { id => BrowseData::id( $N + $_ ), _whatToTrace => "dup$_" } ) } grep { /^1/ } 0 .. 199 },
        'and the results are right' );
}

# deleteIfLowerThan: the DELETE as logged by ASBP_TRACE=1
{
    $pg->psql(q{CREATE INDEX sessions_lastseen ON sessions ((cast(a_session ->> '_lastSeen' AS bigint)))});
    $pg->psql(q{UPDATE sessions SET a_session = a_session || jsonb_build_object('_lastSeen', (a_session ->> '_utime')::bigint)});
    $pg->psql_super('VACUUM ANALYZE sessions');
    my $utime = index_on(q{'_utime'::text))::bigint});
    my ( $T, $T2 ) = ( 1700000000 + 50, 1700000000 + 60 );
    my $code = sprintf q{Apache::Session::Browseable::Patroni->deleteIfLowerThan({ DataSource => '%s', UserName => '%s', Password => '%s' },
        { not => { _session_kind => 'Persistent' }, or => { _utime => %d, _lastSeen => %d } })}, $pg->dsn, $pg->user, $pg->password, $T, $T2;
    local $ENV{ASBP_TRACE} = 1;
    my $log = `$^X -Mblib -MApache::Session::Browseable::Patroni -e "$code" 2>&1`;
    my ($sql) = $log =~ /deleteIfLowerThan on \S+: (DELETE .*)$/m;
    ok( $sql, 'the DELETE is in the trace' ) or diag $log;
    is( $sql, q{DELETE FROM "sessions" WHERE (cast(a_session ->> '_lastSeen' as bigint) < $1 OR cast(a_session ->> '_utime' as bigint) < $2) }
          . q{AND a_session ->> '_session_kind' IS DISTINCT FROM $3}, '... field names as literals, thresholds and strings as parameters' );
    my $plan = plan_of( $sql, 'bigint, bigint, text', [ $T2, $T, 'Persistent' ] );
    like( $plan, qr/Bitmap Index Scan on $utime\b/,        "the purge uses the _utime index ($utime)" ) or diag $plan;
    like( $plan, qr/Bitmap Index Scan on sessions_lastseen\b/, '... and the _lastSeen one' ) or diag $plan;
    my $gone = grep { $_ % 10 } 0 .. 59;    # _utime = _lastSeen < T2, not persistent
    is( $pg->psql('SELECT count(*) FROM sessions'), $N + 200 - $gone, "and it deleted the $gone expired non-persistent sessions" );
}

done_testing;
