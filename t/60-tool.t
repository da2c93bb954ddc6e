# The operator tool (bin/asbp-patroni) and the status class method, against
# a real PostgreSQL and a fake Patroni API.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use PgServer;
use FakePatroni;
use JSON::PP;
use Apache::Session::Browseable::Patroni;

my $pg  = PgServer->start_or_skip( no_table => 1 );
my $PW  = $pg->password;
my $leader = { name => 'node1', role => 'leader', state => 'running', host => '127.0.0.1', port => $pg->port };
my $api = FakePatroni->new( body => encode_json( { members => [ $leader,
    { name => 'node2', role => 'replica', state => 'running', host => '127.0.0.1', port => 9, lag => 0 } ] } ) );
my @base = ( '--set', 'DataSource=' . $pg->dsn, '--set', 'UserName=llng', '--set', 'PatroniUrl=' . $api->url );

sub tool {
    my (@a) = @_;
    local $ENV{ASBP_PASSWORD} = $PW;
    my $out = `$^X -Mblib bin/asbp-patroni @{[ map { quotemeta } @a ]} 2>&1`;
    return ( $? >> 8, $out );
}

my ( $rc, $out ) = tool( @base, '--json' );
is( $rc, 1, 'no table yet: status exits 1' );
my $j = decode_json($out);
like( join( ' ', @{ $j->{problems} } ), qr/does not exist/, 'the missing table is the problem' );

( $rc, $out ) = tool( 'schema', @base );
is( $rc, 0, 'schema: exit 0' );
like( $out, qr/created\s+CREATE TABLE IF NOT EXISTS "sessions"/, 'table created' );
like( $out, qr/text_pattern_ops/, 'with a text_pattern_ops index for prefix searches' );
is( $pg->psql("SELECT relpersistence FROM pg_class WHERE relname = 'sessions'"), 'p', 'the table is LOGGED' );
( $rc, $out ) = tool( 'schema', @base );
is( $rc, 0, 'schema again: exit 0' );
unlike( $out, qr/\bcreated\b/, 'idempotent: nothing created the second time' );
my $nidx = $pg->psql("SELECT count(*) FROM pg_indexes WHERE tablename = 'sessions'");
cmp_ok( $nidx, '>=', 9, "$nidx indexes (primary key + 8 recommended)" );

( $rc, $out ) = tool( @base, '--json' );
is( $rc, 0, 'status: exit 0 when all is well' ) or diag $out;
$j = decode_json($out);
ok( $j->{ok}, 'JSON: ok' );
is( $j->{patroni}{outcome}, 'leader', 'JSON: the API names a leader' );
is( $j->{patroni}{leader}, '127.0.0.1:' . $pg->port, 'the right one' );
is( scalar @{ $j->{patroni}{members} }, 2, 'members listed' );
ok( $j->{check}{ok}, 'write/read check passed' );
is( $j->{check}{server}, '127.0.0.1:' . $pg->port, 'on the leader' );
is( $pg->psql("SELECT count(*) FROM sessions"), 0, 'the check session was deleted' );

( $rc, $out ) = tool(@base);
is( $rc, 0, 'text output: exit 0' );
like( $out, qr/^Patroni API\s+http:\/\/llng:\*\*\*\@127\.0\.0\.1/m, 'API URL with its password masked' );
like( $out, qr/^Check\s+wrote, read back and deleted a session on 127\.0\.0\.1:\d+ in \d+ ms: OK/m, 'check reported' );
like( $out, qr/^Result\s+OK/m, 'result OK' );
unlike( $out, qr/\Q$PW\E|s3cr3t-pw/, 'no password anywhere in the output' );

# Problems a probe must report.
$api->set_answer( '', 503 );
( $rc, $out ) = tool( @base, '--json' );
is( $rc, 1, 'API down: exit 1' );
like( $out, qr/Patroni API unavailable/, 'says so' );
$api->set_answer( encode_json( { members => [ { %$leader, role => 'replica' } ] } ) );
( $rc, $out ) = tool(@base);
is( $rc, 1, 'no leader: exit 1' );
like( $out, qr/No leader found/, 'says so' );
$api->set_answer( encode_json( { members => [$leader] } ) );
$pg->psql('ALTER TABLE sessions SET UNLOGGED');
( $rc, $out ) = tool(@base);
is( $rc, 1, 'UNLOGGED table: exit 1' );
like( $out, qr/UNLOGGED: it is not replicated/, 'explained' );
( $rc, $out ) = tool( 'schema', '--fix-unlogged', @base );
is( $rc, 0, 'schema --fix-unlogged' );
is( $pg->psql("SELECT relpersistence FROM pg_class WHERE relname = 'sessions'"), 'p', 'the table is LOGGED again' );
( $rc, $out ) = tool( @base, '--set', 'Password=wrong' );
is( $rc, 1, 'wrong password on the command line: exit 1' );
like( $out, qr/password authentication failed/, 'check failure explained' );
like( $out, qr/visible to other users/, 'warned about a password on the command line' );
( $rc, $out ) = tool('--bogus');
is( $rc, 2, 'usage error: exit 2' );

# Options from a file (JSON and a Perl hash as LL::NG shows them).
my $f = "/tmp/asbp-tool-$$.conf";
open my $fh, '>', $f or die;
printf $fh "{ DataSource => '%s', UserName => 'llng', PatroniUrl => '%s' }\n", $pg->dsn, $api->url;
close $fh;
( $rc, $out ) = tool( '-f', $f );
is( $rc, 0, 'options from a Perl hash file' ) or diag $out;
unlink $f;

# The status class method: this process's view.
my %args = ( DataSource => $pg->dsn, UserName => 'llng', Password => $PW, PatroniUrl => $api->url );
tie my %s, 'Apache::Session::Browseable::Patroni', undef, {%args};
untie %s;
my $st = Apache::Session::Browseable::Patroni->status( \%args );
is( $st->{counters}{failovers}, 0, 'status: no failover yet' );
ok( !$st->{breaker_open}, 'status: breaker closed' );
is( $st->{pid}, $$, 'status: this process' );
like( $st->{datasource}, qr/^dbi:Pg:dbname=sessions/, 'status: the DataSource' );
my $dead = { %args, DataSource => 'dbi:Pg:dbname=sessions;host=127.0.0.1;port=' . PgServer::free_port() };
{
    local *STDERR;
    open STDERR, '>', '/dev/null';
    tie my %t, 'Apache::Session::Browseable::Patroni', undef, {%$dead};
    untie %t;
}
$st = Apache::Session::Browseable::Patroni->status($dead);
is( $st->{counters}{failovers}, 1, 'status: one failover counted' );
is( $st->{counters}{discoveries}, 1, 'status: one discovery' );
is( $st->{leader}, '127.0.0.1:' . $pg->port, 'status: the leader found' );
ok( $st->{leader_cached}, 'status: cached' );
cmp_ok( $st->{leader_age}, '<', 5, 'status: cache age in seconds' );
is_deeply( $st->{members_last_seen}, [ '127.0.0.1:' . $pg->port ], 'status: members last seen (the API lists one now)' );

done_testing;
