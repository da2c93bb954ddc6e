# searchOn, searchOnExpr and get_key_from_all_sessions on a real
# PostgreSQL: every result is compared with what the test computes itself
# from the sessions it generated (t/lib/BrowseData.pm): with and without
# fields, mixed-case names, _session_id as a field, missing keys, nested
# values, numbers, UTF-8; the scalar and array forms, the code reference
# form (and ties made from inside it), rows that are not sessions, the
# cursor object, fork safety, and the return of connections to the pool.
use strict;
use warnings;
use utf8;
use Test::More;
use lib 't/lib';
use PgServer;
use BrowseData qw();
use Apache::Session::Browseable::Patroni;

binmode Test::More->builder->$_, ':encoding(UTF-8)' for qw(output failure_output todo_output);

my $pg   = PgServer->start_or_skip;
my $args = { $pg->options, ConnectTimeout => 10, FailoverTimeout => 20 };    # generous: valgrind, busy machines
my $C    = 'Apache::Session::Browseable::Patroni';
my $N    = 3000;
my @all  = ( 0 .. $N - 1 );
BrowseData::load( $pg, \@all );
is( $pg->psql('SELECT count(*) FROM sessions'), $N, "$N sessions loaded" );

# A session id as messages show it: a prefix of at most 8 characters and
# at most half the id, then "..." (an id is a bearer token).
sub shown {
    my ($id) = @_;
    my $n = int( length($id) / 2 );
    $n = 8 if $n > 8;
    return substr( $id, 0, $n ) . '...';
}
sub ids_where { my ($test) = @_; [ grep { $test->( BrowseData::session($_) ) } @all ] }

my @F = qw(_httpSessionType MixedCase _session_id missingKey nested _utime cn half nothing list ctrl mail);

# ---- searchOn -------------------------------------------------------------
{
    my $want = ids_where( sub { $_[0]{_whatToTrace} eq 'user7' } );
    is( scalar @$want, 3, 'three sessions of user7 in the data' );
    my $got = $C->searchOn( $args, '_whatToTrace', 'user7' );
    is_deeply( $got, BrowseData::sessions_of($want), 'searchOn without fields: whole decoded sessions' );
    $got = $C->searchOn( $args, '_whatToTrace', 'user7', @F );
    is_deeply( $got, BrowseData::fields_of( $want, @F ),
        'searchOn with fields: ->> text under the caller\'s names, id, missing keys undef' );
    my $one = $got->{ BrowseData::id( $want->[0] ) };
    ok( exists $one->{missingKey} && !defined $one->{missingKey}, 'a missing key is present and undef' );
    is( $one->{nested}, BrowseData::jsonb_text( BrowseData::session( $want->[0] )->{nested} ),
        'a nested value comes back as JSON text' );
    like( $one->{_utime}, qr/^17000000\d\d$/, 'a number comes back as text' );
    is( $one->{_session_id}, $one->{id}, '_session_id can be asked for like any field' );

    # UTF-8 value, number value, a value nobody has, a field nobody has
    my $n = 1234;
    $want = ids_where( sub { $_[0]{cn} eq "Éléonore 会话 🔐 $n" } );
    is_deeply( $C->searchOn( $args, 'cn', "Éléonore 会话 🔐 $n", 'cn', 'MixedCase' ),
        BrowseData::fields_of( $want, 'cn', 'MixedCase' ), 'UTF-8 value searched and returned' );
    $want = ids_where( sub { $_[0]{_utime} == 1700000000 + $n } );
    is_deeply( $C->searchOn( $args, '_utime', 1700000000 + $n ), BrowseData::sessions_of($want),
        'a number searched by its text' );
    is_deeply( $C->searchOn( $args, '_whatToTrace', 'nobody' ), {}, 'no match: empty hash' );
    is_deeply( $C->searchOn( $args, 'noSuchField', 'x', 'cn' ), {}, 'unknown field: empty hash' );
    is_deeply( $C->searchOn( $args, '_whatToTrace', undef ), {}, 'undef value matches nothing' );
    $want = ids_where( sub { $_[0]{_httpSessionType} eq '' } );
    is( scalar keys %{ $C->searchOn( $args, '_httpSessionType', '', '_session_id' ) }, scalar @$want,
        'the empty string is a value like another' );
    $want = ids_where( sub { $_[0]{_2fDevices} eq '[{"type":"TOTP","name":"phone"}]' } );
    is( scalar keys %{ $C->searchOn( $args, '_2fDevices', '[{"type":"TOTP","name":"phone"}]', 'id' ) },
        scalar @$want, 'a string value that looks like JSON is a string' );

    # the manager's listing: a whole-table searchOn with fields
    my @listing = qw(_httpSessionType ipAddr _whatToTrace _utime _session_kind);
    $want = ids_where( sub { $_[0]{_session_kind} eq 'SSO' } );
    is_deeply( $C->searchOn( $args, '_session_kind', 'SSO', @listing ),
        BrowseData::fields_of( $want, @listing ), 'listing: ' . scalar(@$want) . ' SSO sessions with 5 fields' );
    $want = ids_where( sub { $_[0]{_session_kind} eq 'Persistent' } );
    is_deeply( $C->searchOn( $args, '_session_kind', 'Persistent' ), BrowseData::sessions_of($want),
        'all persistent sessions, whole' );
    my @dup = qw(cn _httpSessionType cn id empty _session_kind empty _httpSessionType);
    is_deeply( $C->searchOn( $args, '_session_kind', 'Persistent', @dup ), BrowseData::fields_of( $want, @dup ),
        'a field list with repeated names, "id", and values repeated from row to row' );
}

# ---- searchOnExpr ---------------------------------------------------------
{
    for my $case (
        [ 'user1*',   qr/\Auser1/ ],
        [ '*9',       qr/9\z/ ],
        [ 'us*r1*7',  qr/\Aus.*r1.*7\z/s ],
        [ 'user42',   qr/\Auser42\z/ ],
        [ '*',        qr/\A/ ],
        [ 'USER1*',   qr/\AUSER1/ ],
      )
    {
        my ( $pat, $re ) = @$case;
        my $want = ids_where( sub { $_[0]{_whatToTrace} =~ $re } );
        is_deeply( $C->searchOnExpr( $args, '_whatToTrace', $pat, 'MixedCase', '_session_id', 'mail' ),
            BrowseData::fields_of( $want, 'MixedCase', '_session_id', 'mail' ),
            "searchOnExpr '$pat' with fields: " . scalar(@$want) . ' sessions' );
    }
    my $want = ids_where( sub { $_[0]{_whatToTrace} =~ /\Auser99/ } );
    is_deeply( $C->searchOnExpr( $args, '_whatToTrace', 'user99*' ), BrowseData::sessions_of($want),
        'searchOnExpr without fields: whole sessions' );
    $want = ids_where( sub { $_[0]{cn} =~ /\AÉléonore 会话 🔐 12/ } );
    is_deeply( $C->searchOnExpr( $args, 'cn', 'Éléonore 会话 🔐 12*', 'cn' ), BrowseData::fields_of( $want, 'cn' ),
        'UTF-8 pattern' );
    $want = ids_where( sub { defined $_[0]{mail} and $_[0]{mail} =~ /\Auser1.*\@example\.com\z/ } );
    is( scalar keys %{ $C->searchOnExpr( $args, 'mail', 'user1*@example.com', 'id' ) }, scalar @$want,
        'a missing key never matches (even *)' );
    is( scalar keys %{ $C->searchOnExpr( $args, 'mail', '*', 'id' ) }, scalar @{ ids_where( sub { defined $_[0]{mail} } ) },
        '* matches every session that has the key' );
}

# ---- get_key_from_all_sessions --------------------------------------------
{
    is_deeply( $C->get_key_from_all_sessions($args), BrowseData::sessions_of( \@all ),
        'undef: every session, whole' );
    is_deeply( $C->get_key_from_all_sessions( $args, '' ), BrowseData::sessions_of( \@all ),
        'empty string: like undef' );
    is_deeply( $C->get_key_from_all_sessions( $args, [@F] ), BrowseData::fields_of( \@all, @F ),
        'array of fields: { id => { id, fields } }' );
    is_deeply( $C->get_key_from_all_sessions( $args, 'MixedCase' ),
        BrowseData::fields_of( \@all, 'MixedCase' ), 'a plain scalar is treated as [scalar]' );
    is_deeply( $C->get_key_from_all_sessions( $args, [] ), BrowseData::fields_of( \@all ),
        'empty array: ids only' );

    my ( %calls, $bad );
    my $got = $C->get_key_from_all_sessions(
        $args,
        sub {
            my ( $s, $id ) = @_;
            $calls{$id}++;
            $bad++ unless ref $s eq 'HASH' and $s->{_session_id} eq $id and @_ == 2;
            return $s->{_utime} % 2 ? "odd $s->{MixedCase}" : undef;
        }
    );
    is( scalar keys %calls, $N, 'code reference called once per session' );
    ok( !grep( { $_ != 1 } values %calls ), '... exactly once each' );
    ok( !$bad, '... with ($session_hashref, $id)' );
    is_deeply( $got,
        { map { ( BrowseData::id($_) => "odd Mixed $_" ) } grep { ( 1700000000 + $_ ) % 2 } @all },
        'defined results kept, undef dropped' );

    # the code reference may use the module itself: ties and searches take
    # other connections from the pool while the stream holds its own
    my ( $n, $ok ) = ( 0, 0 );
    $C->get_key_from_all_sessions(
        $args,
        sub {
            my ( $s, $id ) = @_;
            return undef if $n++ >= 5;
            tie my %t, $C, $id, {%$args};
            $ok++ if $t{MixedCase} eq $s->{MixedCase};
            $t{touched} = 1;
            untie %t;
            $ok++ if exists $C->searchOn( $args, '_whatToTrace', $s->{_whatToTrace} )->{$id};
            return undef;
        }
    );
    is( $ok, 10, 'ties and searchOn from inside the code reference work' );
    is( $pg->psql(q{SELECT count(*) FROM sessions WHERE a_session ? 'touched'}), 5,
        '... and the ties wrote their sessions' );
    $pg->psql(q{UPDATE sessions SET a_session = a_session - 'touched'});

    # an exception in the code is reported and the iteration goes on
    my $die_id = BrowseData::id(17);
    my $count  = 0;
    my ($err) = BrowseData::capture_stderr(
        sub {
            $C->get_key_from_all_sessions( $args, sub { $count++; die "boom\n" if $_[1] eq $die_id; undef } );
        }
    );
    like( $err, qr/^Error in session \Q${\ shown($die_id)}\E: boom$/m,
        'exception in the code reference: "Error in session <id prefix>...: ..." on STDERR' );
    unlike( $err, qr/\Q$die_id\E/, '... the id shortened (a bearer token)' );
    is( $count, $N, '... and every session was still passed' );

    eval { $C->get_key_from_all_sessions( $args, { a => 1 } ) };
    like( $@, qr/expects undef, a field name, an array of field names or a code reference/,
        'a hash reference is refused with a clear message' );
}

# ---- rows that are not sessions -------------------------------------------
# A jsonb column always holds valid JSON, but not always a session: an SQL
# NULL, a JSON null (our unserialize rejects it: "Session could not be
# unserialized"), or a JSON value that is not an object (a string, an
# array: no session is).  Those rows are skipped with a message, in every
# form that decodes whole sessions; the field forms return their id with
# undef fields (nothing is decoded there).
{
    $pg->psql(q{INSERT INTO sessions VALUES ('zz-sqlnull', NULL), ('zz-jsonnull', 'null'),
        ('zz-array', '[1, 2]'), ('zz-string', '"a string"'), ('zz-number', '42')});
    my @bad = qw(zz-sqlnull zz-jsonnull zz-array zz-string zz-number);
    my ( $err, $got ) = BrowseData::capture_stderr( sub { $C->get_key_from_all_sessions($args) } );
    is_deeply( $got, BrowseData::sessions_of( \@all ), 'undef form: non-session rows skipped' );
    for my $id (@bad) {
        like( $err, qr/^Error in session \Q${\ shown($id)}\E: Session could not be unserialized \(.+\)$/m,
            "... $id reported on STDERR (by a prefix)" );
        unlike( $err, qr/\Q$id\E/, "... $id never in full" );
    }
    my $seen = 0;
    ( $err, $got ) = BrowseData::capture_stderr(
        sub { $C->get_key_from_all_sessions( $args, sub { $seen++; $_[1] } ) } );
    is( $seen, $N, 'code reference form: never called for them' );
    like( $err, qr/^Error in session zz-a\.\.\.: Session could not be unserialized \(not a JSON object\)$/m,
        '... and they are reported' );
    $got = $C->get_key_from_all_sessions( $args, ['cn'] );
    is_deeply( [ map { $got->{$_} } @bad ], [ map { { id => $_, cn => undef } } @bad ],
        'field form: their id, undef fields' );
    $pg->psql(q{DELETE FROM sessions WHERE id LIKE 'zz-%'});
}

# ---- the cursor object ----------------------------------------------------
{
    my $it = Apache::Session::Browseable::Patroni::_browse_open( $args, 'eq', '_whatToTrace', 'user5', [ 'cn', 'nothing' ] );
    isa_ok( $it, 'Apache::Session::Browseable::Patroni::Cursor' );
    my ( $sql, @p ) = $it->sql;
    is( $sql, q{SELECT id, a_session ->> 'cn', a_session ->> 'nothing' FROM "sessions" WHERE a_session ->> '_whatToTrace' = $1},
        'SQL text: field names as literals, value as $1' );
    is_deeply( \@p, ['user5'], 'parameters' );
    my %rows;
    while ( my ( $id, @cols ) = $it->next ) { $rows{$id} = \@cols }
    is_deeply( \%rows, { map { ( BrowseData::id($_) => [ "Éléonore 会话 🔐 $_", undef ] ) } 15, 16, 17 },
        'rows as (id, columns), SQL NULL as undef' );
    is( $it->count, 3, 'count' );
    is_deeply( [ $it->next ], [], 'after the end: empty' );

    my $idle = Apache::Session::Browseable::Patroni::_pool_idle();
    $it = Apache::Session::Browseable::Patroni::_browse_open( $args, 'all', undef, undef, undef );
    my @first = $it->next;
    is( scalar @first, 2, 'whole form: (id, JSON text)' );
    is( Apache::Session::Browseable::Patroni::_pool_idle(), $idle - 1 < 0 ? 0 : $idle - 1,
        'a stream holds its connection' );
    undef $it;    # abandoned in the middle: its connection is closed, not reused
    is_deeply( $C->searchOn( $args, '_whatToTrace', 'user7', 'id' ), BrowseData::fields_of( [ 21, 22, 23 ], 'id' ),
        'the next query works after an abandoned stream' );
    $it = Apache::Session::Browseable::Patroni::_browse_open( $args, 'like', 'cn', '*', undef );
    1 while $it->next;
    ok( Apache::Session::Browseable::Patroni::_pool_idle() >= 1, 'a finished stream gives its connection back' );

    # a stream opened before fork() is not read by the child
    $it = Apache::Session::Browseable::Patroni::_browse_open( $args, 'all', undef, undef, ['cn'] );
    $it->next;
    my $pid = fork // die "fork: $!";
    if ( !$pid ) {
        my $ok = !eval { $it->next; 1 } && $@ =~ /started by another process/ ? 0 : 1;
        # and the child can run its own queries
        $ok ||= keys %{ $C->searchOn( $args, '_whatToTrace', 'user1', 'id' ) } == 3 ? 0 : 2;
        POSIX::_exit($ok);
    }
    waitpid $pid, 0;
    is( $? >> 8, 0, 'child: the inherited stream refuses to read, its own queries work' );
    my $n = 1;
    $n++ while $it->next;
    is( $n, $N, 'parent: the stream goes on untouched' );
}

# ---- errors ---------------------------------------------------------------
{
    eval { $C->searchOn( $args, undef, 'x' ) };
    like( $@, qr/no field name given/, 'undefined field refused' );
    eval { $C->searchOn( $args, "a\0b", 'x' ) };
    like( $@, qr/NUL character/, 'NUL in a field name refused' );
    eval { $C->searchOn( $args, 'a', "x\0y" ) };
    like( $@, qr/NUL character/, 'NUL in a value refused' );
    eval { $C->searchOn( $args, 'a', 'x', 'cn', undef ) };
    like( $@, qr/field name 2 of the list is undefined/, 'undefined name in the field list refused' );
    eval { $C->searchOn( 'not a hash', 'a', 'x' ) };
    like( $@, qr/must be a hash reference/, 'options must be a hash' );
    eval { $C->searchOn( { $pg->options, TableName => 'nosuchtable' }, 'a', 'x' ) };
    like( $@, qr/relation "nosuchtable" does not exist.*SQLSTATE 42P01/, 'missing table: the server\'s error' );
    is_deeply( $C->searchOn( $args, '_whatToTrace', 'user7', 'id' ), BrowseData::fields_of( [ 21, 22, 23 ], 'id' ),
        'queries work after an error' );
}

use POSIX ();
done_testing;
