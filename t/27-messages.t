# The module's messages (see MESSAGES in its POD) reach Perl's warn, so a
# $SIG{__WARN__} handler or LL::NG's logger takes them, or the code given
# to logger(); nothing of theirs is written to fd 2 directly.  A handler
# or logger that dies does not change the operation's outcome.  A line
# whose number changes is still rate-limited.
#
# Part 1 needs no PostgreSQL (a dead DataSource and a fake Patroni API
# answering HTTP 500); part 2 provokes a reconnection on a real server.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Fd2Capture;
use FakePatroni;
use PgServer;
use Time::HiRes ();
use Apache::Session::Browseable::Patroni;

my $C   = 'Apache::Session::Browseable::Patroni';
my $PFX = quotemeta($C) . "\\[$$\\] ";    # the prefix of a line

# fd 2 goes to a private file for the whole test (as in t/82): whatever
# the C side printed there directly would land in it.  Test::More's own
# diagnostics keep the real STDERR.
my $fd2 = Fd2Capture->start;
sub new_fd2 { $fd2->new_text }

my @w;
$SIG{__WARN__} = sub { push @w, $_[0] };

my $dead = PgServer::free_port();
sub dead_args {
    my ( $api, $name, %o ) = @_;
    return {
        DataSource                 => "dbi:Pg:dbname=sessions;host=127.0.0.1;port=$dead;application_name=$name",
        UserName                   => 'u',
        Password                   => 'p',
        PatroniUrl                 => $api->url,
        FailoverTimeout            => 0.6,
        PatroniCircuitBreakerDelay => 30,
        %o,
    };
}
sub search { my ($a) = @_; eval { $C->searchOn( $a, 'f', 'v' ); 1 } ? '' : $@ }

# ---- 1. warn, no direct write; the rate limit across changing numbers ----
{
    my $api = FakePatroni->new( status => 500, body => 'oops' );
    my $a   = dead_args( $api, 'warn' );
    my $err = search($a);
    like( $err, qr/no writable leader within FailoverTimeout/, 'the operation failed as expected' );
    my @bad = grep { /Bad response from/ } @w;
    is( scalar @bad, 1, 'the Bad response line reached the __WARN__ handler once' );
    like( $bad[0] // '', qr/^${PFX}warning: Bad response from \S+: HTTP 500\n\z/,
        'with the usual prefix, pid, level and text, one line' );
    ok( ( grep { /^${PFX}warning: Patroni API unavailable for DataSource/ } @w ),
        'the other lines too' );
    is( new_fd2(), '', 'nothing written to fd 2 directly' );

    # The breaker line: "Circuit breaker active (Patroni API not asked for
    # Ns more)", N falling by the second.  Printed once (in the first or
    # second call), then not again within 10 s although N changed.
    search($a);
    my @brk = grep { /Circuit breaker active/ } @w;
    is( scalar @brk, 1, 'the breaker line printed once in two calls' );
    my ($n1) = ( $brk[0] // '' ) =~ /not asked for (\d+)s more/;
    ok( $n1, "with its number (${\ ( $n1 // '?' ) } s)" );
    Time::HiRes::sleep(1.2);
    my $skips = $C->status($a)->{counters}{breaker_skips};
    @w = ();
    search($a);
    cmp_ok( $C->status($a)->{counters}{breaker_skips}, '>', $skips,
        'a third call, over a second later, went past the breaker again' );
    is( join( '', grep { /Circuit breaker active/ } @w ), '',
        'its line (with a smaller number) was suppressed: the limit ignores the number' );
    is( new_fd2(), '', 'still nothing on fd 2' );
}

# ---- 2. logger(): the code gets (level, text) instead of warn ------------
{
    my $api = FakePatroni->new( status => 500, body => 'oops' );
    my $a   = dead_args( $api, 'logger' );
    my @got;
    is( $C->logger( sub { push @got, [@_] } ) && ref $C->logger, 'CODE', 'logger set' );
    @w = ();
    search($a);
    my ($bad) = grep { $_->[1] =~ /^Bad response from / } @got;
    ok( $bad, 'the logger got the Bad response line' );
    is( $bad->[0], 'warn', 'at level warn' );
    like( $bad->[1], qr/^Bad response from \S+: HTTP 500\z/, 'the bare text: no prefix, no newline' );
    is( join( '', @w ), '', 'warn was not called' );
    is( new_fd2(), '', 'nothing on fd 2' );
    $C->logger(undef);
    ok( !defined $C->logger, 'logger(undef): back to warn' );
    ok( !eval { $C->logger('print'); 1 }, 'a logger that is not code is refused' );
    like( $@, qr/expects a code reference/, 'with a reason' );
}

# ---- 3. a __WARN__ handler (or a logger) that dies -----------------------
# Contained: the operation's result or error is its own, $@ is kept, and
# the message goes to fd 2 directly with the handler's error.
{
    my $api = FakePatroni->new( status => 500, body => 'oops' );
    my $a   = dead_args( $api, 'dies' );
    {
        local $SIG{__WARN__} = sub { die "handler died\n" };
        my $err = search($a);
        like( $err, qr/no writable leader within FailoverTimeout/, 'dying handler: the operation reports its own error' );
        unlike( $err, qr/handler died/, 'not the handler\'s' );
    }
    my $fd2 = new_fd2();
    like( $fd2, qr/^${PFX}warning: Bad response from \S+: HTTP 500\n/m, 'the message went to fd 2 instead' );
    like( $fd2, qr/^${PFX}error: the message above could not go through warn or the logger, which died: handler died$/m,
        'followed by the handler\'s error' );

    my $api2 = FakePatroni->new( status => 500, body => 'oops' );
    my $res;
    {
        local $SIG{__WARN__} = sub { die "handler died\n" };
        eval { die "mine\n" };
        $res = eval { Apache::Session::Browseable::Patroni::_discover_now( dead_args( $api2, 'dies2' ) ) };
        is( $@, '', 'a call that succeeds does not die because its handler did' );
    }
    is( ref $res && $res->{outcome}, 'failed', 'and returns its result' );
    {
        local $SIG{__WARN__} = sub { die "handler died\n" };
        eval { die "mine\n" };
        $C->logger( sub { die "logger died\n" } );
        my $api3 = FakePatroni->new( status => 500, body => 'oops' );
        Apache::Session::Browseable::Patroni::_discover_now( dead_args( $api3, 'dies3' ) );
        $C->logger(undef);
        is( $@, "mine\n", '$@ is kept' );
    }
    like( new_fd2(), qr/which died: logger died$/m, 'a dying logger: the same' );
}

# ---- 4. a real reconnection ---------------------------------------------
SKIP: {
    my ( $ok, $why ) = PgServer::available();
    my $pg = $ok ? eval { PgServer->new } : undef;
    $why = "cannot start PostgreSQL: $@" if $ok && !$pg;
    unless ($pg) {
        fail("PostgreSQL is required here (ASBP_REQUIRE_DB): $why") if $ENV{ASBP_REQUIRE_DB};
        skip "needs a PostgreSQL server: $why", 9;
    }
    # one DataSource per step (application_name): each step's line is new
    # to the rate limit
    my %o = $pg->options;
    my $step = sub { return +{ %o, DataSource => "$o{DataSource};application_name=$_[0]", FailoverTimeout => 5 } };
    my $args = $step->('warn');
    my $kill = sub {
        $pg->psql_super( "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
              . "WHERE usename = '" . $pg->user . "' AND pid <> pg_backend_pid()" );
    };
    tie my %s, $C, undef, $args;
    $s{v} = 'zero';
    my $id = $s{_session_id};
    untie %s;
    new_fd2();
    @w = ();
    # killed while the session is tied: the save at untie (in a
    # destructor) is redone on a new connection, and says so
    tie %s, $C, $id, $args;
    $s{v} = 'one';
    $kill->();
    untie %s;
    tie %s, $C, $id, $args;
    is( $s{v}, 'one', 'saved after the backend was killed' );
    untie %s;
    my @rec = grep { /reconnected to/ } @w;
    is( scalar @rec, 1, 'the reconnection line reached the __WARN__ handler' );
    like( $rec[0] // '', qr/^${PFX}info: DataSource \S+: reconnected to 127\.0\.0\.1:\d+, operation succeeded after \d+ ms \(first error: .+\)\n\z/,
        'as info, with its text' );
    is( new_fd2(), '', 'nothing on fd 2' );

    # The same with a handler that dies: the session is saved all the same.
    $args = $step->('dies');
    tie %s, $C, $id, $args;
    $s{v} = 'two';
    $kill->();
    my $untie_err;
    {
        local $SIG{__WARN__} = sub { die "handler died\n" };
        $untie_err = eval { untie %s; 1 } ? '' : $@;
    }
    is( $untie_err, '', 'untie did not die' );
    like( new_fd2(), qr/which died: handler died$/m, 'the message went to fd 2 with the reason' );
    tie %s, $C, $id, $args;
    is( $s{v}, 'two', 'the session was saved' );
    untie %s;
    $args = $step->('logger');
    tie %s, $C, $id, $args;
    $s{v} = 'three';
    $kill->();
    @w = ();
    $C->logger( sub { push @w, "@_" } );
    untie %s;
    $C->logger(undef);
    tie %s, $C, $id, $args;
    is( $s{v}, 'three', 'saved through a logger' );
    untie %s;
    ok( ( grep { /^info DataSource \S+: reconnected to/ } @w ), 'the logger got the reconnection line' );
}

done_testing;

