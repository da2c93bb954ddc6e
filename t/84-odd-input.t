# Odd inputs (issue 12, items 5 and 6): NUL bytes in a purge rule key and
# in option strings, strings in Perl's two internal forms (Latin-1 and
# UTF-8), NaN and infinities as timeouts, and session ids as the bearer
# tokens they are (a cookie of a megabyte, control characters, ids in
# messages).  What needs no database runs first; the rest needs PostgreSQL.
use strict;
use warnings;
use Test::More;
use Time::HiRes ();
use lib 't/lib';
use PgServer ();
use BrowseData ();
use Apache::Session::Browseable::Patroni;
use Apache::Session::Browseable::Store::Patroni;

my $C    = 'Apache::Session::Browseable::Patroni';
my $dead = PgServer::free_port();
my %dead = ( DataSource => "dbi:Pg:dbname=sessions;host=127.0.0.1;port=$dead", FailoverTimeout => 0.3,
    ConnectTimeout => 0.3 );

sub tie_error {
    my ( $args, $id ) = @_;
    my $ok = eval { tie( my %s, $C, $id, $args ); $s{x} = 1; untie %s; 1 };
    return $ok ? '' : "$@";
}

# ---- NUL bytes ---------------------------------------------------------------
for my $k ( "not\0", "or\0", "and\0x", "\0not" ) {
    ( my $shown = $k ) =~ s/\0/\\0/g;
    my $ok = eval { $C->deleteIfLowerThan( {%dead}, { or => { _utime => 1 }, $k => { uid => 'x' } } ); 1 };
    ok( !$ok, "deleteIfLowerThan: the rule key \"$shown\" is refused" );
    like( $@, qr/unknown rule key '\w*\\x\{0\}\w*'/, '... the NUL shown escaped' );
    unlike( $@, qr/\0/, '... never raw' );
}
{
    my $ok = eval { $C->deleteIfLowerThan( {%dead}, { or => { "_utime\0x" => 1 } } ); 1 };
    ok( !$ok, 'deleteIfLowerThan: a field name with a NUL is refused' );
    like( $@, qr/field name of the rule contains a NUL/, '... with a clear message' );
}
for my $opt (qw(TableName DataSource UserName Password PatroniUrl PatroniSSLCAFile)) {
    my %a = ( %dead, TableName => 'sessions' );
    $a{$opt} = ( $a{$opt} // 'x' ) . "\0s3cr3tpart";
    my $err = tie_error( \%a );
    like( $err, qr/invalid $opt: its value contains a NUL character \(byte \d+ of \d+\)/,
        "$opt with a NUL: refused with a message naming the option" );
    unlike( $err, qr/s3cr3t/, '... and not showing the value' );
}
{
    my $err = tie_error( { %dead, TableName => "sessions\0x" } );
    like( $err, qr/invalid TableName/, 'TableName "sessions\0x" is refused, not cut to "sessions"' );
    $err = eval { $C->status( { %dead, TableName => "sessions\0x" } ); '' } // "$@";
    like( $err, qr/invalid TableName/, '... by status() too' );
}

# ---- Perl's two string forms --------------------------------------------------
# The same characters, downgraded (Latin-1 bytes) and upgraded (UTF-8
# internally), must reach the core as the same UTF-8 bytes.
{
    my $down = "sess\xe9";
    my $up   = $down;
    utf8::upgrade($up);
    ok( !utf8::is_utf8($down) && utf8::is_utf8($up) && $down eq $up, 'two forms of the same string' );
    my $t_down = $C->status( { %dead, TableName => $down } )->{table};
    my $t_up   = $C->status( { %dead, TableName => $up } )->{table};
    is( $t_down, $t_up, 'status(): the same table from both forms' );
    is( $t_down, "sess\xc3\xa9", '... as UTF-8 bytes' );
    ok( !utf8::is_utf8($down), '... the caller\'s string left downgraded' );
    my $wide = "t\x{263a}";
    is( $C->status( { %dead, TableName => $wide } )->{table}, "t\xe2\x98\xba", 'a wide character: UTF-8 too' );
}

# ---- NaN and infinities -----------------------------------------------------
{
    my $inf = 9**9**9;
    my $nan = $inf - $inf;
    for my $case ( [ 'Inf', $inf ], [ '-Inf', -$inf ], [ 'NaN', $nan ], [ '"nan"', 'nan' ],
        [ '"Infinity"', 'Infinity' ], [ '"-inf"', '-inf' ], [ '1e400', '1e400' ] )
    {
        my ( $name, $v ) = @$case;
        for my $opt (qw(ConnectTimeout FailoverTimeout QueryTimeout PatroniTimeout)) {
            my $err = tie_error( { %dead, $opt => $v } );
            like( $err, qr/invalid $opt '[^']*': expected (a number of seconds|between 0 and 86400 seconds)/,
                "$opt $name: refused" );
        }
    }
}

# ---- session ids ------------------------------------------------------------
{
    my $hex = 'deadbeef' x 8;
    my $evil = "ab\ncd\e[2J\x07" . $hex;
    my $err = tie_error( {%dead}, $evil );
    like( $err, qr/^Invalid session ID: /, 'an id with control characters is refused' );
    unlike( $err, qr/[\x00-\x08\x0b-\x1f\x7f]|\n./s, '... and none of them is printed' );
    unlike( $err, qr/deadbeef/, '... nor the id in full' );

    my $big = 'a' x 1_000_000;
    my $t0 = Time::HiRes::time();
    $err = tie_error( {%dead}, $big );
    my $dt = Time::HiRes::time() - $t0;
    like( $err, qr/^Invalid session ID: a{1,8}\.\.\. \(longer than 4096 characters\)$/,
        'a hex cookie of a megabyte is refused' );
    cmp_ok( length $err, '<', 200, '... with a short message' );
    cmp_ok( $dt, '<', 0.5, '... at once' );
    $err = tie_error( {%dead}, 'f' x 4097 );
    like( $err, qr/Invalid session ID/, 'a hex id of 4097 characters is refused' );
    $err = tie_error( {%dead}, "\x{263a}" x 20 );
    like( $err, qr/^Invalid session ID: \?+\.\.\.$/, 'wide characters shown as ?' );

    # The store bounds the id itself (a wrapper may skip validate).
    my $store = Apache::Session::Browseable::Store::Patroni->new;
    my $ok = eval { $store->materialize( { args => {%dead}, data => { _session_id => 'f' x 5000 } } ); 1 };
    ok( !$ok, 'the store refuses an id longer than 4096 characters' );
    like( $@, qr/invalid session id: longer than 4096 characters/, '... before any connection' );
    unlike( $@, qr/f{9}/, '... without printing it' );

    is( Apache::Session::Browseable::Patroni::_id_text($hex), 'deadbeef...', 'ids shown: 8 characters' );
    is( Apache::Session::Browseable::Patroni::_id_text('abcdef'), 'abc...', 'never more than half' );
    is( Apache::Session::Browseable::Patroni::_id_text("\x{e9}\tb\x7fcdef"), "??b?...", "control characters and non-ASCII as ?" );
}

# ---- with a database ----------------------------------------------------------
my ( $avail, $why ) = PgServer::available();
my $pg = $avail ? eval { PgServer->new } : undef;
$why = "cannot start PostgreSQL: $@" if $avail && !$pg;
if ( !$pg && PgServer::required() ) {
    fail("PostgreSQL is required here (ASBP_REQUIRE_DB set): $why");
    done_testing;
    exit 1;
}
SKIP: {
    skip "needs a PostgreSQL server: $why", 16 unless $pg;
    my %base = ( $pg->options, FailoverTimeout => 2 );
    my $rows = sub { $pg->psql("SELECT count(*) FROM sessions") };

    # A rule key with a NUL would have dropped the 'not' group: more rows
    # deleted than asked.  It is refused, and nothing is deleted.
    for my $i ( 1 .. 4 ) {
        tie my %s, $C, undef, {%base};
        $s{_utime} = 100;
        $s{uid}    = $i == 1 ? 'keep' : "u$i";
        untie %s;
    }
    is( $rows->(), 4, 'four old sessions' );
    my $ok = eval { $C->deleteIfLowerThan( {%base}, { or => { _utime => 1000 }, "not\0" => { uid => 'keep' } } ) };
    ok( !$ok, 'deleteIfLowerThan with "not\0": refused' );
    is( $rows->(), 4, '... nothing deleted' );
    my @r = $C->deleteIfLowerThan( {%base}, { or => { _utime => 1000 }, not => { uid => 'keep' } } );
    is( $r[1], 3, 'with "not": three deleted, the kept one left' );
    $pg->psql("DELETE FROM sessions");

    # A table whose name is not ASCII, given in both forms.
    $pg->create_table(qq{"sess\xc3\xa9"});
    my $down = "sess\xe9";
    my $up   = $down;
    utf8::upgrade($up);
    my ( $id, $v );
    my $ok_w = eval {
        tie my %s, $C, undef, { %base, TableName => $down };
        $id = $s{_session_id};
        $s{v} = "caf\x{e9}";
        untie %s;
        1;
    };
    ok( $ok_w, 'written through the downgraded name' ) or diag($@);
    is( $pg->psql(qq{SELECT count(*) FROM "sess\xc3\xa9"}), 1, '... into the table of that name' );
    my $ok_r = eval {
        tie my %s, $C, $id, { %base, TableName => $up };
        $v = $s{v};
        untie %s;
        1;
    };
    ok( $ok_r, 'read back through the upgraded name' ) or diag($@);
    is( $v, "caf\x{e9}", '... the same session' );

    # Ids in messages: a prefix only, no control characters.
    my $missing = 'c0ffee' x 10;
    my $err = tie_error( {%base}, $missing );
    like( $err, qr/Object does not exist/, 'a missing session' );
    unlike( $err, qr/c0ffeec0ff/, '... its id not in full' );

    my $long  = 'b0b0' x 16;
    my $ctl   = "zz\nFAKE LOG LINE \e[2J" . 'e' x 20;
    $pg->psql("INSERT INTO sessions VALUES ('$long', NULL)");
    $pg->psql( "INSERT INTO sessions VALUES (E'" . ( $ctl =~ s/\n/\\n/r =~ s/\e/\\x1b/r ) . "', 'null')" );
    my ($out) = BrowseData::capture_stderr( sub { $C->get_key_from_all_sessions( {%base} ) } );
    like( $out, qr/^Error in session b0b0b0b0\.\.\.: Session could not be unserialized/m,
        'a row that is not a session: reported by a prefix of its id' );
    unlike( $out, qr/b0b0b0b0b/, '... never its id in full' );
    like( $out, qr/^Error in session zz\?FAKE \.\.\.: /m, 'an id with control characters: shown as ?' );
    unlike( $out, qr/^FAKE LOG LINE/m, '... no line forged in the log' );
    unlike( $out, qr/\e/, '... no escape sequence' );
    my ($out2) = BrowseData::capture_stderr(
        sub { $C->get_key_from_all_sessions( {%base}, sub { die "boom\n" } ) } );
    unlike( $out2, qr/b0b0b0b0b|\e/, 'exceptions in the code reference: ids shortened too' );
}
done_testing;
