# The store (tie: create, read, update, delete), the class methods
# (searchOn, searchOnExpr, get_key_from_all_sessions) and the purge
# (deleteIfLowerThan) through PgBouncer (t/lib/PgBouncer.pm, Debian's
# pgbouncer) in session and in transaction pooling mode.
#
# Between two operations the bouncer is told to RECONNECT: its server
# connections are replaced as soon as they are released, so every
# operation runs on a server connection that has prepared nothing, as it
# happens in transaction pooling whenever a client's next transaction goes
# to another server connection.  In session mode a client keeps its
# server connection until it disconnects: everything works with the
# default PreparedStatements.  In transaction mode the default (named
# statements prepared once per connection) fails with "prepared statement
# ... does not exist"; PreparedStatements => 0 works.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use PgServer;
use PgBouncer;
use FakePatroni;
use JSON::PP;
use Apache::Session::Browseable::Patroni;

my $pg  = PgServer->start_or_skip;
my $C   = 'Apache::Session::Browseable::Patroni';
my $seq = 0;

sub row_of {
    my ($id) = @_;
    return $pg->psql("SELECT a_session->>'uid' FROM sessions WHERE id = '$id'");
}

# Every operation, each on a fresh server connection (RECONNECT before it).
# Returns the number of operations that worked; dies (with the failing
# step's name) on the first error.
sub exercise {
    my ( $pgb, $args, $label ) = @_;
    my $fresh = sub { $pgb->admin_raw('RECONNECT') };
    my $user  = 'bouncer' . ++$seq;
    my ( %s, $id );

    $fresh->();
    tie %s, $C, undef, $args;
    $id = $s{_session_id};
    @s{qw(uid _whatToTrace _session_kind _utime)} = ( 'dwho', $user, 'SSO', 1000 + $seq );
    untie %s;
    is( row_of($id), 'dwho', "$label: create" );

    $fresh->();
    tie %s, $C, $id, $args;
    is( $s{_whatToTrace}, $user, "$label: read" );
    untie %s;

    $fresh->();
    tie %s, $C, $id, $args;
    $s{uid} = 'rtyler';
    untie %s;
    is( row_of($id), 'rtyler', "$label: update" );

    for my $round ( 1, 2 ) {    # twice: a statement prepared the first time
        $fresh->();
        my $r = $C->searchOn( $args, '_whatToTrace', $user, 'uid' );
        is_deeply( [ keys %$r ], [$id], "$label: searchOn ($round) finds the session" );
        is( $r->{$id}{uid}, 'rtyler', "$label: searchOn ($round) with its field" );
    }

    $fresh->();
    my $r = $C->searchOnExpr( $args, '_whatToTrace', "$user*", 'uid' );
    is_deeply( [ keys %$r ], [$id], "$label: searchOnExpr" );

    $fresh->();
    my $all = $C->get_key_from_all_sessions( $args, sub { $_[0]{_whatToTrace} } );
    is( $all->{$id}, $user, "$label: get_key_from_all_sessions" );

    $fresh->();
    tie %s, $C, $id, $args;
    tied(%s)->delete;
    untie %s;
    is( $pg->psql("SELECT count(*) FROM sessions WHERE id = '$id'"), 0, "$label: delete" );

    # the purge: one old session goes, a recent one stays
    my @ids;
    for my $t ( 10, 5000 ) {
        $fresh->();
        tie %s, $C, undef, $args;
        @s{qw(_session_kind _utime)} = ( 'SSO', $t );
        push @ids, $s{_session_id};
        untie %s;
    }
    $fresh->();
    my @p = $C->deleteIfLowerThan( $args, { and => { _utime => 100 } } );
    is_deeply( \@p, [ 1, 1 ], "$label: deleteIfLowerThan deleted one row" );
    is( $pg->psql("SELECT count(*) FROM sessions WHERE id IN ('$ids[0]','$ids[1]')"), 1,
        "$label: the recent session is left" );
    $pg->psql('DELETE FROM sessions');
}

# The server connections pgbouncer opened (SHOW SERVERS, SHOW POOLS).
sub shows_servers {
    my ( $pgb, $label ) = @_;
    my $pool = $pgb->pool;
    ok( $pool && $pool->{pool_mode} eq $pgb->pool_mode, "$label: SHOW POOLS names the pool" );
    ok( scalar( $pgb->servers ) >= 1, "$label: SHOW SERVERS lists a server connection" );
}

for my $auth (qw(scram-sha-256 md5)) {
    my $pgb = PgBouncer->start_or_skip( server => $pg, pool_mode => 'session', auth_type => $auth );
    my %base = ( $pgb->options, ConnectTimeout => 10, FailoverTimeout => 5 );

    # session pooling: the defaults work
    exercise( $pgb, {%base}, "session, $auth" );
    shows_servers( $pgb, "session, $auth" );
    exercise( $pgb, { %base, PreparedStatements => 0 }, "session, $auth, PreparedStatements 0" );
    $pgb->stop;
}

{
    my $pgb = PgBouncer->start_or_skip( server => $pg, pool_mode => 'transaction',
        default_pool_size => 4, max_client_conn => 50 );
    my %base = ( $pgb->options, ConnectTimeout => 10, FailoverTimeout => 5 );

    # transaction pooling, PreparedStatements => 0: everything works
    exercise( $pgb, { %base, PreparedStatements => 0 }, 'transaction, PreparedStatements 0' );
    shows_servers( $pgb, 'transaction' );
    is( $pgb->pool->{pool_mode}, 'transaction', 'the pool is in transaction mode' );

    # transaction pooling, the default: the second use of a named statement
    # lands on a server connection that never prepared it
    my $args = { %base, PreparedStatements => 1 };
    my $err;
    {
        local $SIG{__WARN__} = sub { };
        eval { exercise( $pgb, $args, 'transaction, default' ); 1 } or $err = $@;
    }
    ok( defined $err, 'transaction pooling with named prepared statements fails' );
    like( $err // '', qr/prepared statement "asbp_[0-9a-f]{16}(?:_\d+)?" does not exist/,
        'with PostgreSQL\'s "prepared statement ... does not exist"' );
    note( "the error: $err" ) if defined $err;

    # the same store object, same pooled connections: turning the option off
    # for the same DataSource works at once
    exercise( $pgb, { %base, PreparedStatements => 0 }, 'transaction, PreparedStatements 0 again' );
    $pgb->stop;
}

# PatroniLeaderPort: the API names the leader at PostgreSQL's port; with a
# bouncer on the node the module must reach the leader at the bouncer's
# port.  The DataSource points at a dead port: only discovery can work.
{
    my $pgb = PgBouncer->start_or_skip( server => $pg, pool_mode => 'transaction' );
    my $dead = PgServer::free_port();
    my $api = FakePatroni->new( body => encode_json( { members => [
        { name => 'node1', role => 'leader', state => 'running', host => '127.0.0.1',
          port => $pg->port, api_url => 'http://127.0.0.1:1/patroni', timeline => 1 } ] } ) );
    my %args = ( DataSource => "dbi:Pg:dbname=sessions;host=127.0.0.1;port=$dead",
        UserName => $pg->user, Password => $pg->password, PatroniUrl => $api->url,
        PatroniLeaderPort => $pgb->port, PreparedStatements => 0, FailoverTimeout => 5 );
    my $before = grep { $_->{user} eq $pg->user } $pgb->admin('SHOW CLIENTS');
    is( $before, 0, 'PatroniLeaderPort: no client of the bouncer before' );
    tie my %s, $C, undef, {%args};
    $s{uid} = 'leader-port';
    my $id = $s{_session_id};
    untie %s;
    is( row_of($id), 'leader-port', 'PatroniLeaderPort: the session was written' );
    my @ports = map { ( split /:/, $_->[0] )[1] }
      Apache::Session::Browseable::Patroni::_pool_conns();
    ok( ( grep { $_ == $pgb->port } @ports ), 'the pooled connection is the bouncer\'s port' );
    ok( !( grep { $_ == $pg->port } @ports ), 'not PostgreSQL\'s, which the API gave' );
    my $after = grep { $_->{user} eq $pg->user } $pgb->admin('SHOW CLIENTS');
    cmp_ok( $after, '>=', 1, 'SHOW CLIENTS: the module is a client of the bouncer' );
    is( $C->searchOn( {%args}, 'uid', 'leader-port' )->{$id}{uid}, 'leader-port',
        'PatroniLeaderPort: searchOn through the bouncer' );
    my $bad = eval { $C->searchOn( { %args, PatroniLeaderPort => 'x' }, 'uid', 'a' ); 1 } ? '' : $@;
    like( $bad, qr/invalid PatroniLeaderPort 'x': expected a TCP port number/,
        'a bad PatroniLeaderPort is refused, the message names the option' );
    $api->stop;
    $pgb->stop;
}

done_testing;
