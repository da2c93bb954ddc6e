# The class methods fail over like tied sessions: two real PostgreSQL
# servers, a fake Patroni API naming the leader, a DataSource on a dead port.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use PgServer;
use FakePatroni;
use JSON::PP;
use Apache::Session::Browseable::Patroni;

my $A = PgServer->start_or_skip;
my $B = PgServer->new;
$B->psql_super( "ALTER ROLE llng PASSWORD '" . $A->password . "'" );
my $C    = 'Apache::Session::Browseable::Patroni';
my $dead = PgServer::free_port();

sub answer {
    my ($pg) = @_;
    return encode_json( { members => [ { name => 'n', role => 'leader', state => 'running',
        host => '127.0.0.1', port => $pg->port } ] } );
}

# The same ids on both servers, different data: results say which one answered.
for my $pg ( [ $A, 'A' ], [ $B, 'B' ] ) {
    my ( $srv, $tag ) = @$pg;
    $srv->psql( "INSERT INTO sessions SELECT lpad(to_hex(i), 64, '0'), jsonb_build_object("
          . "'_session_kind', 'SSO', 'uid', 'user' || i, '_whatToTrace', 'user' || i, 'server', '$tag', "
          . "'_utime', i) FROM generate_series(1, 50) i" );
}
my $api = FakePatroni->new( body => answer($A) );
my %args = ( DataSource => "dbi:Pg:dbname=sessions;host=127.0.0.1;port=$dead", UserName => 'llng',
    Password => $A->password, PatroniUrl => $api->url, FailoverTimeout => 3 );
my @log;
sub quiet { my ($code) = @_; local *STDERR; open STDERR, '>', '/dev/null'; $code->() }

my $r = quiet( sub { $C->searchOn( {%args}, uid => 'user7', 'server' ) } );
is( scalar keys %$r, 1, 'searchOn through discovery: one session' );
is( ( values %$r )[0]{server}, 'A', '... from the leader the API named' );

# The leader goes away; the API names B.
$A->stop('immediate');
$api->set_answer( answer($B) );
$r = quiet( sub { $C->searchOn( {%args}, uid => 'user7', 'server' ) } );
is( ( values %$r )[0]{server}, 'B', 'searchOn after the leader change: answered by the new leader' );
$r = quiet( sub { $C->searchOnExpr( {%args}, uid => 'user1*', 'server' ) } );
is( scalar keys %$r, 11, 'searchOnExpr on the new leader' );
$r = quiet( sub { $C->get_key_from_all_sessions( {%args}, ['server'] ) } );
is( scalar( grep { $_->{server} eq 'B' } values %$r ), 50, 'get_key_from_all_sessions on the new leader' );

# Again, for the purge: B goes, A comes back as the leader.
$A->start;
$B->stop('immediate');
$api->set_answer( answer($A) );
my @res = quiet( sub { $C->deleteIfLowerThan( {%args}, { or => { _utime => 11 } } ) } );
is_deeply( \@res, [ 1, 10 ], 'deleteIfLowerThan after the leader change: (1, rows) in list context' );
is( $A->psql('SELECT count(*) FROM sessions'), 40, 'the rows went from the new leader' );
my $n = 0;
quiet( sub { $C->get_key_from_all_sessions( {%args}, sub { $n++; undef } ) } );
is( $n, 40, 'the coderef form on the new leader' );
my $st = $C->status( {%args} );
cmp_ok( $st->{counters}{failovers}, '>=', 3, "failovers counted ($st->{counters}{failovers})" );

done_testing;
