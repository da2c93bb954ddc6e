# Create, read, update, delete through tie on a real PostgreSQL, nested ties,
# Commit => 0, missing and invalid ids, table names, options.
use strict;
use File::Temp ();
use warnings;
use Test::More;
use lib 't/lib';
use PgServer;
use Apache::Session::Browseable::Patroni;

my $pg   = PgServer->start_or_skip;
my %base = $pg->options;
my $C    = 'Apache::Session::Browseable::Patroni';

sub rows { $pg->psql("SELECT count(*) FROM sessions") }

# create
my $args = { %base, Commit => 1 };
tie my %s, $C, undef, $args;
my $id = $s{_session_id};
like( $id, qr/^[0-9a-f]{64}\z/, 'new id: 64 lower-case hex digits' );
$s{uid}  = 'dwho';
$s{list} = [ 1, 2, 3 ];
untie %s;
is( $pg->psql("SELECT a_session->>'uid' FROM sessions WHERE id = '$id'"), 'dwho',
    'row written with its data' );
is( $pg->psql("SELECT jsonb_typeof(a_session) FROM sessions WHERE id = '$id'"), 'object',
    'stored as a JSON object' );

# read
tie %s, $C, $id, $args;
is( $s{uid}, 'dwho', 'read back' );
is_deeply( $s{list}, [ 1, 2, 3 ], 'array read back' );
is( $s{_session_id}, $id, 'id in the data' );
untie %s;

# update (and delete a key)
tie %s, $C, $id, $args;
$s{uid}  = 'rtyler';
$s{mail} = 'rtyler@badwolf.org';
delete $s{list};
untie %s;
tie %s, $C, $id, $args;
is( $s{uid},  'rtyler',             'update stored' );
is( $s{mail}, 'rtyler@badwolf.org', 'new key stored' );
ok( !exists $s{list}, 'deleted key gone' );
untie %s;

# an untouched read leaves the row as it was
my $before = $pg->psql("SELECT a_session::text FROM sessions WHERE id = '$id'");
tie %s, $C, $id, $args;
my $x = $s{uid};
untie %s;
is( $pg->psql("SELECT a_session::text FROM sessions WHERE id = '$id'"), $before,
    'a read changes nothing' );

# delete
tie %s, $C, $id, $args;
tied(%s)->delete;
untie %s;
is( $pg->psql("SELECT count(*) FROM sessions WHERE id = '$id'"), 0, 'deleted' );

# missing id
eval { tie %s, $C, $id, $args };
like( $@, qr/Object does not exist/, 'missing id: "Object does not exist"' );

# nested ties of two sessions in one process: separate transactions
{
    tie my %a, $C, undef, $args;
    $a{n} = 'a';
    my $ida = $a{_session_id};
    tie my %b, $C, undef, $args;
    $b{n} = 'b';
    my $idb = $b{_session_id};
    isnt( $ida, $idb, 'two ids' );
    untie %b;
    is( $pg->psql("SELECT a_session->>'n' FROM sessions WHERE id = '$idb'"), 'b',
        'inner session committed while the outer one is still tied' );
    is( $pg->psql("SELECT a_session->>'n' FROM sessions WHERE id = '$ida'"), '',
        'outer session not yet updated (its transaction is open)' );
    untie %a;
    is( $pg->psql("SELECT a_session->>'n' FROM sessions WHERE id = '$ida'"), 'a',
        'outer session committed at its untie' );
    # the same session tied twice in one process would wait for its own row
    # lock: a read through a second tie blocks until the first ends, so
    # nested ties are of different sessions (as LL::NG does).
}

# Commit => 0 leaves nothing behind
{
    my $n = rows();
    tie my %t, $C, undef, { %base, Commit => 0 };
    $t{x} = 1;
    untie %t;
    is( rows(), $n, 'Commit => 0: creation rolled back' );
    tie my %u, $C, undef, $args;
    $u{x} = 1;
    my $idu = $u{_session_id};
    untie %u;
    tie %u, $C, $idu, { %base, Commit => 0 };
    $u{x} = 2;
    untie %u;
    is( $pg->psql("SELECT a_session->>'x' FROM sessions WHERE id = '$idu'"), 1,
        'Commit => 0: update rolled back' );
    tie %u, $C, $idu, { %base, Commit => 0 };
    tied(%u)->delete;
    untie %u;
    is( $pg->psql("SELECT count(*) FROM sessions WHERE id = '$idu'"), 1,
        'Commit => 0: delete rolled back' );
}

# invalid ids are rejected before any SQL: with a dead server the error is
# about the id, not the connection.
{
    my $dead = { DataSource => 'dbi:Pg:dbname=x;host=127.0.0.1;port=' . PgServer::free_port() };
    for my $bad ( "zz", "12 34", "abc'; DROP TABLE sessions; --", "\x{263a}", "ab\ncd" ) {
        eval { tie my %b, $C, $bad, $dead };
        like( $@, qr/Invalid session ID/, "invalid id refused: " . join( " ", map { sprintf "%x", ord } split //, $bad ) );
    }
    is( rows() > 0, 1, 'table still there' );
}

# IDLength honoured, ids are hex
{
    tie my %t, $C, undef, { %base, IDLength => 32 };
    like( $t{_session_id}, qr/^[0-9a-f]{32}\z/, 'IDLength 32' );
    untie %t;
    tie %t, $C, undef, { %base, IDLength => 7 };
    like( $t{_session_id}, qr/^[0-9a-f]{7}\z/, 'IDLength 7 (odd)' );
    untie %t;
    my $warned = '';
    {
        local $SIG{__WARN__} = sub { $warned .= $_[0] };
        eval { tie my %u, $C, undef, { %base, IDLength => 'x' } };
    }
    like( $@, qr/Invalid IDLength/, 'bad IDLength refused' );
    is( $warned, '', '... without a warning from the failed tie\'s destruction' );
    my %seen;
    for ( 1 .. 200 ) {
        my $s = { args => {}, data => {} };
        Apache::Session::Browseable::Patroni::generate($s);
        $seen{ $s->{data}{_session_id} }++;
    }
    is( scalar keys %seen, 200, '200 generated ids are distinct' );
}

# table names: schema-qualified, mixed case folded like SQL, quoted, invalid
{
    $pg->psql('CREATE SCHEMA sso; CREATE TABLE sso.llng_sessions (id varchar(64) PRIMARY KEY, a_session jsonb)');
    $pg->psql('CREATE TABLE "Odd Name" (id varchar(64) PRIMARY KEY, a_session jsonb)');
    for my $t ( 'sso.llng_sessions', 'SSO.LLNG_Sessions', '"Odd Name"' ) {
        my $a = { %base, TableName => $t };
        tie my %t, $C, undef, $a;
        $t{k} = $t;
        my $i = $t{_session_id};
        untie %t;
        tie %t, $C, $i, $a;
        is( $t{k}, $t, "TableName $t works" );
        untie %t;
    }
    is( $pg->psql('SELECT count(*) FROM sso.llng_sessions'), 2, 'rows in the schema-qualified table' );
    is( $pg->psql('SELECT count(*) FROM "Odd Name"'), 1, 'row in the quoted table' );
    for my $t ( 'sessions; DROP TABLE sessions', 'a.b.c', '1abc', 'x"y', '"unterminated', 'a.', '' . 'x' x 64 ) {
        eval { tie my %t, $C, undef, { %base, TableName => $t } };
        like( $@, qr/Invalid TableName/, "TableName refused: $t" );
    }
    ok( rows() > 0, 'sessions table intact' );
}

# options: unknown ones ignored, Handle refused, patroniUrl alias accepted
{
    # LL::NG passes keys the module does not know: the tie works as
    # without them, they end up nowhere in the row, the hash is left as it
    # was, and nothing is warned or logged about them.
    my $opts = { %base, backend => $C, localStorage => 'Cache::FileCache',
        localStorageOptions => undef, whatever => [1], PatroniUrl => undef };
    my %before = %$opts;
    my ( $warned, $uid, $got ) = ( '' );
    my $errlog_tmp = File::Temp->new( TEMPLATE => 'asbp-tie-opts-XXXXXXXX', TMPDIR => 1 );   # exclusive, unpredictable
    my $errlog = $errlog_tmp->filename;
    open my $save_err, '>&', \*STDERR or die "dup STDERR: $!";
    open STDERR, '>', $errlog or die "$errlog: $!";
    my $ok = eval {
        local $SIG{__WARN__} = sub { $warned .= $_[0] };
        tie my %t, $C, undef, $opts;
        $t{a} = 1;
        $uid = $t{_session_id};
        untie %t;
        tie %t, $C, $uid, $opts;
        $got = { %t };
        untie %t;
        1;
    };
    my $err = $@;
    open STDERR, '>&', $save_err or die "restore STDERR: $!";
    my $logged = do { local $/; open my $fh, '<', $errlog or die "$errlog: $!"; <$fh> } // '';
    unlink $errlog;
    ok( $ok, 'unknown options: tie, write, untie and read back work' ) or diag $err;
    is_deeply( $got, { a => 1, _session_id => $uid }, '... the session read back is what was written' );
    is( $pg->psql("SELECT a_session::text FROM sessions WHERE id = '$uid'"), qq({"a": 1, "_session_id": "$uid"}),
        '... the row holds that and nothing of the options' );
    is_deeply( $opts, \%before, '... the options hash is left as it was' );
    is( $warned, '', '... no warning' );
    is( $logged, '', '... nothing logged' );
    eval { tie my %u, $C, undef, { %base, Handle => 'dbh' } };
    like( $@, qr/Handle option .* not supported/, 'Handle refused with a clear message' );
    eval { tie my %u, $C, undef, { %base, PatroniTimeout => 'soon' } };
    like( $@, qr/invalid PatroniTimeout 'soon'/, 'bad number refused' );
}

done_testing;
