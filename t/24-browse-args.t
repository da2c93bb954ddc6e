# The class methods as LemonLDAP::NG calls them: $args carries its own keys
# (backend, localStorage, ...), which are ignored; TableName is honoured
# (default "sessions"); calls through LL::NG's wrapper class reach ours.
# Interoperability: the same results, in the same shapes, as Debian's
# pure-Perl Apache::Session::Browseable::PgJSON (1.3.11) on the same table,
# where that version works: searchOn and searchOnExpr with and without
# fields, get_key_from_all_sessions without arguments and with a code
# reference.  (1.3.11 fails get_key_from_all_sessions with an array of
# fields, "Field 'id' does not exist": checked as such, not compared.)
use strict;
use warnings;
use utf8;
use Test::More;
use lib 't/lib';
use PgServer;
use BrowseData qw();
use Apache::Session::Browseable::Patroni;

binmode Test::More->builder->$_, ':encoding(UTF-8)' for qw(output failure_output todo_output);

my $pg = PgServer->start_or_skip;
my $C  = 'Apache::Session::Browseable::Patroni';
my $N  = 600;
my @all = ( 0 .. $N - 1 );
BrowseData::load( $pg, \@all );
$pg->create_table('llng_sessions');
BrowseData::load( $pg, [ 1000 .. 1099 ], table => 'llng_sessions' );

# what LL::NG hands to a backend (llng-usage.md section 3)
my %llng = (
    backend             => $C,
    localStorage        => 'Cache::FileCache',
    localStorageOptions => { namespace => 'lemonldap-ng-sessions', default_expires_in => 600 },
    object_store        => 'Some::Store',
    lock_manager        => 'Some::Lock',
    setId               => 'abc',
    noCache             => 1,
    updateCache         => 2,
    timeout             => 5,
    Index               => '_whatToTrace ipAddr',
    Commit              => 1,
    generateModule      => 'Lemonldap::NG::Common::Apache::Session::Generate::SHA256',
    kind                => 'SSO',
);
my $args = { $pg->options, %llng };

sub ids_where { my ($t) = @_; [ grep { $t->( BrowseData::session($_) ) } @_ > 1 ? @{ $_[1] } : @all ] }

{
    my $want = ids_where( sub { $_[0]{_whatToTrace} eq 'user9' } );
    is_deeply( $C->searchOn( $args, '_whatToTrace', 'user9' ), BrowseData::sessions_of($want), 'searchOn with LL::NG\'s keys' );
    is_deeply( $C->searchOnExpr( $args, '_whatToTrace', 'user9*', 'cn' ),
        BrowseData::fields_of( ids_where( sub { $_[0]{_whatToTrace} =~ /^user9/ } ), 'cn' ), 'searchOnExpr with LL::NG\'s keys' );
    is_deeply( $C->get_key_from_all_sessions( $args, ['_utime'] ), BrowseData::fields_of( \@all, '_utime' ),
        'get_key_from_all_sessions with LL::NG\'s keys: default table "sessions"' );
    my $t = { %$args, TableName => 'llng_sessions' };
    is_deeply( $C->get_key_from_all_sessions( $t, ['_utime'] ), BrowseData::fields_of( [ 1000 .. 1099 ], '_utime' ),
        'TableName honoured' );
    is_deeply( [ $C->deleteIfLowerThan( $t, { or => { _utime => 1700001050 }, not => { _session_kind => 'Persistent' } } ) ],
        [ 1, scalar grep { $_ % 10 } 1000 .. 1049 ], 'deleteIfLowerThan with LL::NG\'s keys, on TableName' );
    is( $pg->psql('SELECT count(*) FROM sessions'), $N, '... the default table untouched' );
    ok( !exists $args->{TableName}, 'the caller\'s hash is not modified' );
    is_deeply( [ sort keys %$args ], [ sort( keys %llng, qw(DataSource UserName Password) ) ], '... at all' );
}

# through LemonLDAP::NG's wrapper class, which delegates to args->{backend}
SKIP: {
    skip 'Lemonldap::NG::Common::Apache::Session not installed', 4
      unless eval { require Lemonldap::NG::Common::Apache::Session; 1 };
    my $L    = 'Lemonldap::NG::Common::Apache::Session';
    my $want = ids_where( sub { $_[0]{_whatToTrace} eq 'user9' } );
    is_deeply( $L->searchOn( $args, '_whatToTrace', 'user9', '_session_kind', 'ipAddr' ),
        BrowseData::fields_of( $want, '_session_kind', 'ipAddr' ), 'LL::NG wrapper: searchOn reaches ours' );
    is_deeply( $L->searchOnExpr( $args, '_whatToTrace', 'user1*' ),
        BrowseData::sessions_of( ids_where( sub { $_[0]{_whatToTrace} =~ /^user1/ } ) ), 'LL::NG wrapper: searchOnExpr' );
    my %ids;
    $L->get_key_from_all_sessions( $args, sub { $ids{ $_[1] } = $_[0]{_session_id}; undef } );
    is_deeply( \%ids, { map { ( BrowseData::id($_) => BrowseData::id($_) ) } @all }, 'LL::NG wrapper: get_key_from_all_sessions' );
    is_deeply( $L->get_key_from_all_sessions( $args, ['_session_id'] ), BrowseData::fields_of( \@all, '_session_id' ),
        'LL::NG wrapper: --idonly shape' );
}

# the same results as Debian's pure-Perl PgJSON on the same table
SKIP: {
    skip 'needs Apache::Session::Browseable::PgJSON and DBD::Pg', 1
      unless eval { require Apache::Session::Browseable::PgJSON; require DBD::Pg; 1 };
    my $P = 'Apache::Session::Browseable::PgJSON';
    my $p = { $pg->options };
    diag("comparing with Apache::Session::Browseable::PgJSON (module \$VERSION $Apache::Session::Browseable::PgJSON::VERSION, "
          . "Debian's libapache-session-browseable-perl 1.3.11)");
    # PgJSON strips quotes from the caller's field list in place: give copies
    my @fields = qw(_httpSessionType MixedCase _session_id missingKey nested _utime cn half nothing list ctrl _2fDevices mail);
    for my $c (
        [ 'searchOn', '_whatToTrace', 'user42' ],
        [ 'searchOn', '_session_kind', 'Persistent' ],
        [ 'searchOn', 'cn', 'Éléonore 会话 🔐 77' ],
        [ 'searchOn', '_whatToTrace', 'nobody' ],
        [ 'searchOnExpr', '_whatToTrace', 'user1*' ],
        [ 'searchOnExpr', 'cn', '*会话*7' ],
        [ 'searchOnExpr', '_whatToTrace', '*' ],
      )
    {
        my ( $m, $f, $v ) = @$c;
        my $theirs = $P->$m( $p, $f, $v );
        ok( scalar keys %$theirs || $v eq 'nobody', "$m($f, $v): PgJSON finds " . scalar( keys %$theirs ) );
        is_deeply( $C->$m( $p, $f, $v ), $theirs, "$m($f, $v) without fields: same as PgJSON" );
        is_deeply( $C->$m( $p, $f, $v, @fields ), $P->$m( $p, $f, $v, my @copy = @fields ),
            "$m($f, $v) with mixed-case fields: same as PgJSON" );
    }
    is_deeply( $C->get_key_from_all_sessions($p), $P->get_key_from_all_sessions($p),
        'get_key_from_all_sessions(): same as PgJSON' );
    my $code = sub { my ( $s, $id ) = @_; $s->{_utime} % 3 ? "$id:$s->{cn}" : undef };
    is_deeply( $C->get_key_from_all_sessions( $p, $code ), $P->get_key_from_all_sessions( $p, $code ),
        'get_key_from_all_sessions(code): same as PgJSON' );
    eval { local $SIG{__WARN__} = sub { }; $P->get_key_from_all_sessions( $p, ['_utime'] ) };
    like( $@, qr/Field 'id' does not exist/, 'PgJSON 1.3.11 fails the array form (not compared; ours: t/20-browse.t)' );

    # the purge on two copies of a table where every session has a kind
    # (1.3.11 writes "kind <> 'Persistent'", which also keeps the rows
    # without a kind; and its "and" branch is broken: not compared)
    for my $t (qw(purge_ours purge_theirs)) {
        $pg->create_table($t);
        BrowseData::load( $pg, \@all, table => $t );
    }
    my $rule = { not => { _session_kind => 'Persistent' }, or => { _utime => 1700000300 } };
    my @o = $C->deleteIfLowerThan( { %$p, TableName => 'purge_ours' }, $rule );
    my @t = $P->deleteIfLowerThan( { %$p, TableName => 'purge_theirs' }, $rule );
    is_deeply( \@o, \@t, "deleteIfLowerThan: the same (1, $o[1]) as PgJSON" );
    is( $pg->psql(q{SELECT count(*) FROM (SELECT id FROM purge_ours EXCEPT SELECT id FROM purge_theirs) x}), 0,
        '... and the same rows left' );
}

done_testing;
