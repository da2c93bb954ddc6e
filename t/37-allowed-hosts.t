# Allowed hosts (issue 12, DESIGN.md section 9): a Patroni answer decides
# where the password goes, so the module connects only to hosts the
# operator named (DataSource, PatroniUrl, PatroniAllowedHosts).
#
# A fake PostgreSQL server (below) listens on 127.0.0.2, on a Unix socket
# and on an abstract socket; it asks for a cleartext password and records
# every connection and what it was sent.  The fake Patroni API
# (t/lib/FakePatroni.pm, on 127.0.0.1) names it as the leader or a member.
# The DataSource points at a dead port on 127.0.0.1, so every tie goes
# through discovery.  A real PostgreSQL on 127.0.0.2 (t/lib/PgServer.pm)
# shows an allowed leader is used.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use File::Temp ();
use IO::Select;
use IO::Socket::INET;
use IO::Socket::UNIX;
use JSON::PP;
use POSIX ();
use Socket qw(SOCK_STREAM);
use FakePatroni;
use PgServer;
use Apache::Session::Browseable::Patroni;

my $C = 'Apache::Session::Browseable::Patroni';

{
    my $s = IO::Socket::INET->new( LocalAddr => '127.0.0.2', LocalPort => 0, Listen => 1,
        Proto => 'tcp' );
    plan skip_all => "cannot listen on 127.0.0.2 (not a Linux loopback?): $!" unless $s;
}

# ---- a fake PostgreSQL server -----------------------------------------------

{
    package FakePg;

    sub new {
        my ($class) = @_;
        my $dir = File::Temp::tempdir( CLEANUP => 1 );
        my %l;
        $l{tcp} = IO::Socket::INET->new( LocalAddr => '127.0.0.2', LocalPort => 0, Listen => 16,
            ReuseAddr => 1, Proto => 'tcp' ) or die "FakePg: 127.0.0.2: $!";
        my $port = $l{tcp}->sockport;
        mkdir "$dir/sock" or die "FakePg: $dir/sock: $!";
        $l{unix} = IO::Socket::UNIX->new( Type => Socket::SOCK_STREAM(),
            Local => "$dir/sock/.s.PGSQL.$port", Listen => 16 ) or die "FakePg: unix socket: $!";
        my $abstract = "asbp-t37-$$-$port";
        $l{abstract} = IO::Socket::UNIX->new( Type => Socket::SOCK_STREAM(),
            Local => "\0$abstract/.s.PGSQL.$port", Listen => 16 ) or die "FakePg: abstract socket: $!";
        my $self = bless { port => $port, sockdir => "$dir/sock", abstract => "\@$abstract",
            events => "$dir/events", owner => $$ }, $class;
        open my $fh, '>', $self->{events} or die "FakePg: $self->{events}: $!";
        close $fh;
        my $pid = fork // die "FakePg: fork: $!";
        if ( !$pid ) {
            eval { $self->serve( \%l ) };
            POSIX::_exit(0);
        }
        close $_ for values %l;
        $self->{pid} = $pid;
        return $self;
    }

    sub record {
        my ( $self, $line ) = @_;
        open my $fh, '>>', $self->{events} or return;
        print $fh "$line\n";
        close $fh;
    }

    sub serve {
        my ( $self, $l ) = @_;
        my %which = map { fileno( $l->{$_} ) => $_ } keys %$l;
        my $sel = IO::Select->new( values %$l );
        while ( kill 0, $self->{owner} ) {
            for my $s ( $sel->can_read(0.2) ) {
                my $c = $s->accept or next;
                $self->record("connect $which{ fileno $s }");
                my $pw = eval {
                    local $SIG{ALRM} = sub { die "timeout\n" };
                    alarm 3;
                    my $p = talk($c);
                    alarm 0;
                    $p;
                };
                $self->record("password $pw") if defined $pw;
                close $c;
            }
        }
    }

    sub read_n {
        my ( $c, $n ) = @_;
        my $buf = '';
        while ( length $buf < $n ) {
            my $r = sysread( $c, $buf, $n - length $buf, length $buf );
            return undef unless $r;
        }
        return $buf;
    }

    # The server side of a connection start: no TLS, no GSS, a cleartext
    # password asked for, recorded, refused.
    sub talk {
        my ($c) = @_;
        while (1) {
            my $h = read_n( $c, 4 ) // return;
            my $len = unpack 'N', $h;
            return if $len < 8 || $len > 10000;
            my $body = read_n( $c, $len - 4 ) // return;
            my $code = unpack 'N', $body;
            if ( $len == 8 && ( $code == 80877103 || $code == 80877104 ) ) {
                syswrite $c, 'N';    # SSLRequest, GSSENCRequest: no
                next;
            }
            last;                    # the startup packet
        }
        syswrite $c, 'R' . pack( 'NN', 8, 3 );    # AuthenticationCleartextPassword
        my $t = read_n( $c, 5 ) // return;
        my ( $type, $len ) = unpack 'aN', $t;
        return unless $type eq 'p' && $len >= 5 && $len < 10000;
        my $pw = read_n( $c, $len - 4 ) // return;
        $pw =~ s/\0\z//;
        my $e = "SFATAL\0C28P01\0Mpassword authentication failed (fake server)\0\0";
        syswrite $c, 'E' . pack( 'N', 4 + length $e ) . $e;
        return $pw;
    }

    sub events {
        my ($self) = @_;
        open my $fh, '<', $self->{events} or return ();
        chomp( my @l = <$fh> );
        return @l;
    }
    sub connections { my ( $self, $which ) = @_; scalar grep { /^connect \Q$which\E$/ } $_[0]->events }
    sub passwords   { map { /^password (.*)$/ ? $1 : () } $_[0]->events }
    sub port        { $_[0]{port} }
    sub sockdir     { $_[0]{sockdir} }
    sub abstract    { $_[0]{abstract} }

    sub stop {
        my ($self) = @_;
        return unless $self->{pid} and $$ == $self->{owner};
        kill 'KILL', $self->{pid};
        waitpid $self->{pid}, 0;
        delete $self->{pid};
    }
    sub DESTROY { $_[0]->stop }
}

# ---- helpers -------------------------------------------------------------------

my $PW   = 'the-secret-of-llng';
my $dead = PgServer::free_port();

sub member {
    my ( $role, $host, $port ) = @_;
    return { name => "n-$role-$port", role => $role, state => 'running', host => $host,
        port => $port, api_url => 'http://127.0.0.1:1/patroni', timeline => 1 };
}
sub cluster_json { encode_json( { members => [@_] } ) }

# The options of a source: tag makes its own DataSource (its own cluster
# state in the process).
sub args {
    my ( $tag, $api, %o ) = @_;
    $tag =~ s/\W/_/g;
    return { DataSource => "dbi:Pg:dbname=sessions;host=127.0.0.1;port=$dead;application_name=$tag",
        UserName => 'llng', Password => $PW, PatroniUrl => $api->url, FailoverTimeout => 1,
        ConnectTimeout => 1, %o };
}

# STDERR (the module's messages) of code, with what it died of.
sub run_logged {
    my ($code) = @_;
    my ( undef, $f ) = File::Temp::tempfile( 'asbp-t37-XXXXXX', TMPDIR => 1, UNLINK => 1 );
    open my $save, '>&', \*STDERR or die;
    open STDERR, '>', $f or die;
    my $ok = eval { $code->(); 1 };
    my $err = $ok ? '' : "$@";
    open STDERR, '>&', $save or die;
    open my $fh, '<', $f or die;
    local $/;
    my $log = <$fh> // '';
    close $fh;
    unlink $f;
    return ( $err, $log );
}

# Stores a new session and reads it back (connects at the save).
sub store {
    my ($a) = @_;
    tie my %s, $C, undef, {%$a};
    $s{probe} = 'allowed';
    my $id = $s{_session_id};
    untie %s;
    return $id;
}

# Reads a session (connects at the tie).
sub fetch {
    my ( $a, $id ) = @_;
    tie my %s, $C, $id, {%$a};
    my $v = $s{probe};
    untie %s;
    return $v;
}

my $some_id = 'ab' x 32;
my $fake = FakePg->new;
my $fport = $fake->port;

# ---- 1. a leader on a host nobody named ---------------------------------------

{
    my $api = FakePatroni->new( body => cluster_json( member( leader => '127.0.0.2', $fport ) ) );
    my $a = args( 'foreign', $api );
    my ( $err, $log ) = run_logged( sub { fetch( $a, $some_id ) } );
    like( $err, qr/127\.0\.0\.2:$fport/, 'foreign leader: the tie fails naming the host' );
    like( $err, qr/not allowed/, '  saying it is not allowed' );
    like( $err, qr/PatroniAllowedHosts/, '  and naming the option that would allow it' );
    like( $err, qr/\Q${\ $api->masked_url }\E/, '  and the endpoint that named it' );
    like( $log, qr/names leader 127\.0\.0\.2:$fport, a host that is not allowed/,
        '  the refusal is logged too' );
    is( $fake->connections('tcp'), 0, '  the foreign server received no connection' );
    my $st = $C->status( {%$a} );
    cmp_ok( $st->{counters}{api_failures}, '>=', 1, '  counted as a bad answer (api_failures)' );
    is( $st->{leader}, undef, '  and not remembered as the leader' );
    is( $st->{breaker_open}, 0, '  the breaker stays closed (the refusal is not hidden)' );

    # A new session is saved at untie; one left to DESTROY is saved there.
    ( $err, $log ) = run_logged( sub { store($a) } );
    like( $err, qr/127\.0\.0\.2:$fport.*PatroniAllowedHosts/s, 'untie: the save fails the same way' );
    my @warn;
    ( $err, $log ) = run_logged(
        sub {
            local $SIG{__WARN__} = sub { push @warn, @_ };
            tie my %s, $C, undef, {%$a};
            $s{probe} = 'destroy';
        }
    );
    like( join( '', @warn, $log ), qr/PatroniAllowedHosts/, 'DESTROY: the save fails the same way' );
    is( $fake->connections('tcp'), 0, '  the foreign server still received no connection' );
    is_deeply( [ $fake->passwords ], [], '  nor any password' );
    unlike( "$err$log@warn", qr/\Q$PW\E|\Q$FakePatroni::PASSWORD\E/, '  no password in any message' );

    # Allowed explicitly, by address and by range: it is used.
    for my $allow ( '127.0.0.2', '127.0.0.0/30', 'db.example.org, ::ffff:127.0.0.2' ) {
        my $before = $fake->connections('tcp');
        ( $err, $log ) = run_logged(
            sub { fetch( args( "allow-$allow", $api, PatroniAllowedHosts => $allow ), $some_id ) } );
        cmp_ok( $fake->connections('tcp'), '>', $before, "PatroniAllowedHosts => '$allow': the leader is used" );
        like( $err, qr/password authentication failed \(fake server\)/, '  (the fake server refused the login)' );
    }
    is( ( $fake->passwords )[0], $PW, '  it was sent the password: the reason for the list' );

    # Not a neighbour of it.
    my $before = $fake->connections('tcp');
    ( $err, $log ) = run_logged(
        sub { fetch( args( 'neighbour', $api, PatroniAllowedHosts => '127.0.0.3 127.0.0.4/30' ), $some_id ) } );
    like( $err, qr/127\.0\.0\.2:$fport.*not allowed/, 'a list without the host: refused' );
    is( $fake->connections('tcp'), $before, '  no connection' );
}

# ---- 2. members: promotion watches and "members last seen" ---------------------

{
    # No leader yet; the only member is on the foreign host.
    my $api = FakePatroni->new( body => cluster_json( member( replica => '127.0.0.2', $fport ) ) );
    my $a = args( 'members', $api );
    my $before = $fake->connections('tcp');
    my ( $err, $log ) = run_logged( sub { fetch( $a, $some_id ) } );
    like( $err, qr/No leader found/, 'cluster in transition: the tie fails after FailoverTimeout' );
    is( $fake->connections('tcp'), $before, '  the foreign member was not watched (no connection)' );
    like( $log, qr/lists 1 member whose host is not allowed \(127\.0\.0\.2:$fport\).*PatroniAllowedHosts/,
        '  a message names the member and the option' );

    # The API fails now: the members last seen are not tried either.
    $api->set_answer( '', 503 );
    ( $err, $log ) = run_logged( sub { fetch( $a, $some_id ) } );
    like( $log, qr/Patroni API unavailable.*no leader known: trying the DataSource as configured/,
        'API down: the foreign member is not among the members to try' );
    is( $fake->connections('tcp'), $before, '  no connection' );

    # Allowed, the member is watched.
    $api->set_answer( cluster_json( member( replica => '127.0.0.2', $fport ) ) );
    ( $err, $log ) = run_logged(
        sub { fetch( args( 'members-allowed', $api, PatroniAllowedHosts => '127.0.0.2' ), $some_id ) } );
    cmp_ok( $fake->connections('tcp'), '>', $before, 'an allowed member is watched (connected to)' );
    unlike( $log, qr/member whose host is not allowed/, '  and not reported' );
}

# ---- 3. socket paths -------------------------------------------------------------

for my $sock ( [ 'unix', $fake->sockdir ], [ 'abstract', $fake->abstract ] ) {
    my ( $kind, $host ) = @$sock;
    my $api = FakePatroni->new( body => cluster_json( member( leader => $host, $fport ) ) );
    my ( $err, $log ) = run_logged( sub { fetch( args( "sock-$kind", $api ), $some_id ) } );
    like( $err, qr/\Q$host\E:$fport.*not allowed.*PatroniAllowedHosts/s, "leader on a socket ($host): refused" );
    ( $err, $log ) = run_logged(
        sub { fetch( args( "sock-$kind-ranges", $api, PatroniAllowedHosts => '0.0.0.0/0 ::/0' ), $some_id ) } );
    like( $err, qr/not allowed/, '  also with every address allowed' );
    is( $fake->connections($kind), 0, '  no connection on the socket' );
    ( $err, $log ) = run_logged(
        sub { fetch( args( "sock-$kind-listed", $api, PatroniAllowedHosts => $host ), $some_id ) } );
    is( $fake->connections($kind), 1, '  listed in PatroniAllowedHosts: used' );
}

# ---- 4. malformed lists ------------------------------------------------------------

{
    my $api = FakePatroni->new( body => cluster_json() );
    for my $bad ( [ '10.0.0.0/33', qr/prefix length/ ], [ 'db:5432', qr/not an IPv6 address/ ],
        [ '*.example.org', qr/wildcards/ ], [ '10.0.0.1/8', qr/bits are set past the prefix/ ] )
    {
        my ( $err, $log ) = run_logged(
            sub { fetch( args( 'bad', $api, PatroniAllowedHosts => "ok.example.org $bad->[0]" ), $some_id ) } );
        like( $err, qr/invalid PatroniAllowedHosts entry '\Q$bad->[0]\E'/, "'$bad->[0]': refused, naming the entry" );
        like( $err, $bad->[1], '  and why' );
    }
    is( $api->requests, 0, 'a malformed list: nothing asked, nothing connected' );
}

# ---- 5. a real PostgreSQL on 127.0.0.2 --------------------------------------------

SKIP: {
    my ( $ok, $why ) = PgServer::available();
    my $pg = $ok ? eval { PgServer->new( listen => '127.0.0.2', password => $PW ) } : undef;
    ( $ok, $why ) = ( 0, "cannot start PostgreSQL: $@" ) if $ok && !$pg;
    if ( !$ok ) {
        fail("PostgreSQL is required here (ASBP_REQUIRE_DB set): $why") if PgServer::required();
        skip "needs a PostgreSQL server: $why", 1;
    }
    my $api = FakePatroni->new( body => cluster_json( member( leader => '127.0.0.2', $pg->port ) ) );
    for my $allow ( '127.0.0.2', '127.0.0.0/30' ) {
        my $id;
        my ( $err, $log ) = run_logged( sub { $id = store( args( 'real', $api, PatroniAllowedHosts => $allow ) ) } );
        is( $err, '', "PatroniAllowedHosts => '$allow': the session is stored" );
        is( $pg->psql("SELECT count(*) FROM sessions WHERE id = '${\ ( $id // '' ) }'"), 1,
            '  on the leader the API named' );
    }
    # Same DataSource, no list: the leader cached for the other option sets
    # is not used either.
    my ( $err, $log ) = run_logged( sub { store( args( 'real', $api ) ) } );
    like( $err, qr/127\.0\.0\.2:${\ $pg->port }.*not allowed/s,
        'same DataSource without the list: the cached leader is not used' );
}

$fake->stop;
done_testing();
