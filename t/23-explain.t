# The module's own queries use the expression indexes.  The test server
# loads auto_explain, which logs the plan of every statement as the server
# executes it: the plans checked here are those of what the module sent,
# as it sent it (its SQL text, prepared once per connection, its parameters
# typed and bound as it binds them, custom or generic plan as the server
# chose), found in the server log by their query text.  Each call's result
# is checked too.  5,000 sessions and ANALYZE are enough for the planner to
# choose the indexes by itself: no enable_seqscan = off anywhere.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use PgServer;
use BrowseData qw();
use Apache::Session::Browseable::Patroni;
use Time::HiRes ();

my $pg = PgServer->start_or_skip(
    settings => { shared_preload_libraries => 'auto_explain', 'auto_explain.log_min_duration' => 0 } );
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

# The plans auto_explain logged since the last call whose query text is
# exactly $sql (other statements, psql's included, are skipped), as plan
# texts.  A plan is logged when the server ends the statement, which can
# be just after the client has its rows: wait a little (up to 2 s) for it.
my $log_pos = 0;
my $log     = $pg->{log};    # PgServer's server log (no accessor)
sub plans_of {
    my ( $sql, $want ) = @_;
    my ( @plans, $text );
    for ( 1 .. 20 ) {
        open my $fh, '<', $log or die "$log: $!";
        seek $fh, $log_pos, 0;
        local $/;
        $text .= <$fh> // '';
        $log_pos = tell $fh;
        @plans = ();
        while ( $text =~ /LOG:  duration: [\d.]+ ms  plan:\n\tQuery Text: ([^\n]*)\n((?:\t[^\n]*\n)*)/g ) {
            push @plans, $2 if $1 eq $sql;
        }
        last if @plans >= ( $want // 1 );
        Time::HiRes::sleep(0.1);
    }
    return @plans;
}
# BrowseData gives each user three sessions: n = 3u, 3u+1, 3u+2.
sub ids_of_user { my ($u) = @_; [ map { BrowseData::id($_) } 3 * $u .. 3 * $u + 2 ] }
my $INDEX = sub { qr/(Index Scan using|Bitmap Index Scan on) $_[0]\b/ };

# All statements of a tie or browse end up in the log; start from here.
plans_of('');

my $wtt = index_on(q{'_whatToTrace'::text))});
ok( $wtt, "expression index on _whatToTrace: $wtt" );

# searchOn on an indexed field
{
    my $sql = q{SELECT id, a_session FROM "sessions" WHERE a_session ->> '_whatToTrace' = $1};
    my $r   = $C->searchOn( $args, '_whatToTrace', 'user42' );
    is_deeply( [ sort keys %$r ], ids_of_user(42), 'searchOn finds the 3 sessions of user42' );
    is_deeply( $r->{ BrowseData::id(127) }, BrowseData::session(127), '... whole' );
    my @p = plans_of($sql);
    is( scalar @p, 1, "searchOn sent: $sql" );
    like( $p[0] // '', $INDEX->($wtt), '... and the server used the expression index' ) or diag explain \@p;

    # searchOn runs as a prepared statement: after five executions the
    # server may switch to its generic plan ($1 unknown): still the index.
    my @got = map { scalar keys %{ $C->searchOn( $args, '_whatToTrace', "user$_" ) } } 100 .. 107;
    is_deeply( \@got, [ (3) x 8 ], '8 more searchOn, each finds its 3 sessions' );
    @p = plans_of( $sql, 8 );
    is( scalar @p, 8, '... 8 executions logged' );
    is( scalar( grep { $_ =~ $INDEX->($wtt) } @p ), 8, '... every one used the expression index' ) or diag explain \@p;

    # the generic plan for sure: a DataSource whose connections force it
    my $generic = { %$args, DataSource => $pg->dsn . ";options='-c plan_cache_mode=force_generic_plan'" };
    $r = $C->searchOn( $generic, '_whatToTrace', 'user43' );
    is_deeply( [ sort keys %$r ], ids_of_user(43), 'searchOn with the generic plan forced finds the sessions' );
    @p = plans_of($sql);
    is( scalar @p, 1, '... one execution logged' );
    like( $p[0] // '', qr/Index Cond: \(\(a_session ->> '_whatToTrace'::text\) = \$1\)/, '... with the generic plan ($1 in the index condition)' )
      or diag explain \@p;
    like( $p[0] // '', $INDEX->($wtt), '... which uses the expression index' ) or diag explain \@p;

    # with a field list
    $r = $C->searchOn( $args, '_whatToTrace', 'user42', 'cn', '_utime', 'MixedCase' );
    is_deeply( [ sort keys %$r ], ids_of_user(42), 'searchOn with fields finds the sessions' );
    is_deeply( $r->{ BrowseData::id(127) }, { id => BrowseData::id(127), map { ( $_ => '' . BrowseData::session(127)->{$_} ) } qw(cn _utime MixedCase) },
        '... with their fields' );
    @p = plans_of(q{SELECT id, a_session ->> 'cn', a_session ->> '_utime', a_session ->> 'MixedCase' FROM "sessions" }
          . q{WHERE a_session ->> '_whatToTrace' = $1});
    is( scalar @p, 1, '... it sent the field names as literals, the value as $1' );
    like( $p[0] // '', $INDEX->($wtt), '... and the server used the expression index' ) or diag explain \@p;

    my $kind = index_on(q{'_session_kind'::text))});
    $sql = q{SELECT id, a_session ->> '_session_id' FROM "sessions" WHERE a_session ->> '_session_kind' = $1};
    $r   = $C->searchOn( $args, '_session_kind', 'Persistent', '_session_id' );
    is( scalar keys %$r, $pg->psql(q{SELECT count(*) FROM sessions WHERE a_session ->> '_session_kind' = 'Persistent'}),
        'searchOn(_session_kind => Persistent) finds them all' );
    @p = plans_of($sql);
    is( scalar @p, 1, "... it sent: $sql" );
    like( $p[0] // '', $INDEX->($kind), "... using $kind" ) or diag explain \@p;
}

# searchOnExpr with a prefix
{
    my $sql = q{SELECT id, a_session FROM "sessions" WHERE a_session ->> '_whatToTrace' LIKE $1};
    my $want = { map { ( BrowseData::id( $N + $_ ) => 1 ) } grep { /^1/ } 0 .. 199 };
    my $r = $C->searchOnExpr( $args, '_whatToTrace', 'dup1*' );
    is_deeply( { map { ( $_ => 1 ) } keys %$r }, $want, 'searchOnExpr dup1* finds the 111 sessions' );
    my @p = plans_of($sql);
    is( scalar @p, 1, "searchOnExpr sent: $sql" );
    diag( 'without a text_pattern_ops index (collation C.UTF-8, not C): ' . ( $p[0] // '' ) =~ s/\s+/ /gr );

    $pg->psql(q{CREATE INDEX sessions_wtt_pattern ON sessions ((a_session ->> '_whatToTrace') text_pattern_ops)});
    $pg->psql_super('ANALYZE sessions');
    # a new DataSource: a new connection, whose statements are planned
    # with the new index
    my $args2 = { %$args, DataSource => $pg->dsn . ';application_name=explain2' };
    $r = $C->searchOnExpr( $args2, '_whatToTrace', 'dup1*' );
    is_deeply( { map { ( $_ => 1 ) } keys %$r }, $want, 'with a text_pattern_ops index: the same sessions' );
    @p = plans_of($sql);
    like( $p[0] // '', $INDEX->('sessions_wtt_pattern'), "... found through it" ) or diag explain \@p;
    like( $p[0] // '', qr/~>=~ 'dup1'::text/, '... on the prefix' ) or diag explain \@p;

    $r = $C->searchOnExpr( $args2, '_whatToTrace', 'du_p%*', 'cn' );
    is_deeply( $r, {}, 'a prefix with literal _ and % finds nothing here' );
    @p = plans_of( q{SELECT id, a_session ->> 'cn' FROM "sessions" WHERE a_session ->> '_whatToTrace' LIKE $1} );
    like( $p[0] // '', $INDEX->('sessions_wtt_pattern'), '... through the index too' ) or diag explain \@p;
    like( $p[0] // '', qr/~>=~ 'du_p%'::text/, '... with the literal prefix' ) or diag explain \@p;
}

# deleteIfLowerThan
{
    $pg->psql(q{CREATE INDEX sessions_lastseen ON sessions ((cast(a_session ->> '_lastSeen' AS bigint)))});
    $pg->psql(q{UPDATE sessions SET a_session = a_session || jsonb_build_object('_lastSeen', (a_session ->> '_utime')::bigint)});
    $pg->psql_super('VACUUM ANALYZE sessions');
    my $utime = index_on(q{'_utime'::text))::bigint});
    my ( $T, $T2 ) = ( 1700000000 + 50, 1700000000 + 60 );
    my $args3 = { %$args, DataSource => $pg->dsn . ';application_name=explain3' };
    ok( $C->deleteIfLowerThan( $args3, { not => { _session_kind => 'Persistent' }, or => { _utime => $T, _lastSeen => $T2 } } ),
        'deleteIfLowerThan succeeded' );
    my $sql = q{DELETE FROM "sessions" WHERE (cast(a_session ->> '_lastSeen' as bigint) < $1 OR cast(a_session ->> '_utime' as bigint) < $2) }
      . q{AND a_session ->> '_session_kind' IS DISTINCT FROM $3};
    my @p = plans_of($sql);
    is( scalar @p, 1, 'it sent the DELETE: field names as literals, thresholds and strings as parameters' );
    like( $p[0] // '', qr/Bitmap Index Scan on $utime\b/,        "the purge used the _utime index ($utime)" ) or diag explain \@p;
    like( $p[0] // '', qr/Bitmap Index Scan on sessions_lastseen\b/, '... and the _lastSeen one' ) or diag explain \@p;
    my $gone = grep { $_ % 10 } 0 .. 59;    # _utime = _lastSeen < T2, not persistent
    is( $pg->psql('SELECT count(*) FROM sessions'), $N + 200 - $gone, "and it deleted the $gone expired non-persistent sessions" );
}

done_testing;
