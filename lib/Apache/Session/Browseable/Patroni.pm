package Apache::Session::Browseable::Patroni;

use strict;
use warnings;

use Apache::Session;
use Apache::Session::Lock::Null;
use JSON::XS ();
use Scalar::Util ();

our $VERSION = '2.000';
our @ISA     = qw(Apache::Session);

require XSLoader;
XSLoader::load( __PACKAGE__, $VERSION );

require Apache::Session::Browseable::Store::Patroni;

# Same JSON meaning as Apache::Session::Serialize::JSON (JSON's to_json and
# from_json with allow_nonref): Perl character strings in and out, the
# store turns them into UTF-8 for PostgreSQL and back.
my $JSON = JSON::XS->new->allow_nonref;

# Called by Apache::Session's TIEHASH, and by LemonLDAP::NG as
# $obj->Apache::Session::Browseable::Patroni::populate() on an object of
# its own class: fill the six slots and return the object, nothing else.
sub populate {
    my $self = shift;
    $self->{object_store} = Apache::Session::Browseable::Store::Patroni->new($self);
    $self->{lock_manager} = Apache::Session::Lock::Null->new($self);
    $self->{generate}     = \&generate;
    $self->{validate}     = \&validate;
    $self->{serialize}    = \&serialize;
    $self->{unserialize}  = \&unserialize;
    return $self;
}

# A new id: IDLength (default 64) hex digits from the kernel's secure
# random generator.
sub generate {
    my $session = shift;
    my $length  = 64;
    if ( exists $session->{args}->{IDLength} ) {
        $length = $session->{args}->{IDLength};
        unless ( defined $length and $length =~ /^[0-9]+$/ and $length >= 1 and $length <= 4096 ) {
            # The tie fails: nothing for DESTROY to save.
            $session->{status} &= ~Apache::Session::NEW();
            die "Invalid IDLength '" . ( $length // 'undef' ) . "': expected a whole number from 1 to 4096\n";
        }
    }
    $session->{data}->{_session_id} = _random_hex($length);
}

# Ids must be hex, at most as long as the longest IDLength (checked before
# any SQL runs, the length before the pattern: a forged cookie of a
# megabyte is refused at once).  An id is a bearer token, and a refused one
# comes from a cookie: the message shows a short prefix, control
# characters as '?' (_id_text).
sub validate {
    my $session = shift;
    my $id      = $session->{data}->{_session_id};
    if ( defined $id and length $id <= 4096 and $id =~ /^([a-fA-F0-9]+)\z/ ) {
        $session->{data}->{_session_id} = $1;
    }
    else {
        die "Invalid session ID: " . _id_text($id)
          . ( defined $id && length $id > 4096 ? ' (longer than 4096 characters)' : '' ) . "\n";
    }
}

sub serialize {
    my $session = shift;
    $session->{serialized} = $JSON->encode( $session->{data} );
}

sub unserialize {
    my $session = shift;
    my $data = eval { $JSON->decode( $session->{serialized} ) };
    die "Session could not be unserialized\n" unless defined $data;
    # A row written by other means may lack its id: keep the one it was
    # read by, or the session could not be saved again.
    $data->{_session_id} //= $session->{data}{_session_id}
      if ref $data eq 'HASH' and ref $session->{data} eq 'HASH';
    $session->{data} = $data;
}

# ---- messages (see POD: MESSAGES) ------------------------------------------
# The XS calls _emit(level, text) for each of the core's messages once the
# core call has returned, inside an eval (a handler or logger that dies is
# contained there).  $LOGGER: the program's code reference, or undef for warn.

my $LOGGER;
my %WORD = ( error => 'error', warn => 'warning', info => 'info' );

sub logger {
    my $class = shift;
    if (@_) {
        my $code = shift;
        die __PACKAGE__ . "->logger expects a code reference or undef\n"
          if defined $code and ref $code ne 'CODE';
        $LOGGER = $code;
    }
    return $LOGGER;
}

sub _emit {
    my ( $level, $text ) = @_;
    return $LOGGER->( $level, $text ) if $LOGGER;
    warn __PACKAGE__ . "[$$] " . ( $WORD{$level} // $level ) . ": $text\n";
}

# This process's view of the DataSource of $args (see POD: status).
sub status {
    my ( $class, $args ) = @_;
    return _status($args);
}

# ---- class methods: browse and purge ------------------------------------
# The SQL and the streaming of rows are in the C core (c_src/asbp_browse.c);
# the loops that build the results are XSUBs (xs/Patroni.xs).  Rows are
# decoded with the JSON object unserialize uses.

sub searchOn {
    my ( $class, $args, $field, $value, @fields ) = @_;
    return _browse_collect( $args, 'eq', $field, $value, @fields ? \@fields : undef, $JSON );
}

sub searchOnExpr {
    my ( $class, $args, $field, $pattern, @fields ) = @_;
    return _browse_collect( $args, 'like', $field, $pattern, @fields ? \@fields : undef, $JSON );
}

sub get_key_from_all_sessions {
    my ( $class, $args, $data ) = @_;
    return _browse_each( $args, $data, $JSON ) if ref $data eq 'CODE';
    my $fields;
    if ( ref $data eq 'ARRAY' ) {
        $fields = $data;
    }
    elsif ( ref $data ) {
        die __PACKAGE__ . ": get_key_from_all_sessions expects undef, a field name, "
          . "an array of field names or a code reference, not " . ref($data) . "\n";
    }
    elsif ( defined $data and length $data ) {
        $fields = [$data];
    }
    return _browse_collect( $args, 'all', undef, undef, $fields, $JSON );
}

# A rule is { or => {...}, and => {...}, not => {...} }; any other key is
# refused: a misspelt 'not' would purge what it was meant to keep.
sub deleteIfLowerThan {
    my ( $class, $args, $rule ) = @_;
    die __PACKAGE__ . ": deleteIfLowerThan's rule must be a hash reference"
      unless ( Scalar::Util::reftype($rule) // '' ) eq 'HASH';
    # (eq compares whole strings: "not\0" is not 'not'; the key is shown
    # with its control characters escaped.)
    for my $k ( sort keys %$rule ) {
        next if $k eq 'or' or $k eq 'and' or $k eq 'not';
        ( my $shown = $k ) =~ s/([^\x20-\x7e])/sprintf '\\x{%x}', ord $1/ge;
        die __PACKAGE__ . ": deleteIfLowerThan: unknown rule key '$shown' (expected 'or', 'and' and 'not')";
    }
    my ( $rows, $error ) = _browse_delete( $args, $rule->{or}, $rule->{and}, $rule->{not} );
    unless ( defined $rows ) {
        print STDERR __PACKAGE__ . ": deleteIfLowerThan failed: $error\n" if defined $error;
        return 0;
    }
    return wantarray ? ( 1, $rows ) : 1;
}

1;
__END__

=encoding utf8

=head1 NAME

Apache::Session::Browseable::Patroni - fast, failover-aware PostgreSQL/Patroni
session backend for LemonLDAP::NG (libpq core)

=head1 SYNOPSIS

  use Apache::Session::Browseable::Patroni;

  my $args = {
      DataSource => 'dbi:Pg:dbname=sessions;host=10.0.0.1;port=5432',
      UserName   => 'llng',
      Password   => 'secret',
      Commit     => 1,
      PatroniUrl => 'http://10.0.0.1:8008/cluster, http://10.0.0.2:8008/cluster',
  };

  # create
  tie my %session, 'Apache::Session::Browseable::Patroni', undef, $args;
  $session{uid} = 'dwho';
  my $id = $session{_session_id};
  untie %session;

  # read, update, delete
  tie %session, 'Apache::Session::Browseable::Patroni', $id, $args;
  $session{mail} = 'dwho@example.com';
  untie %session;
  tie %session, 'Apache::Session::Browseable::Patroni', $id, $args;
  tied(%session)->delete;
  untie %session;

=head1 DESCRIPTION

A drop-in replacement for the pure-Perl module of the same name
(Apache-Session-Browseable 1.3.19): same class name, same options, same
C<tie> behaviour, same class methods, same rows -- rows written by either
module are read by the other -- whose hot paths run in a C core (libpq,
libcurl, yajl).  It keeps sessions in PostgreSQL run by Patroni and follows
the leader when it changes.

Each tied session takes a connection from a per-process pool (connections
stay open: no connection per tie), opens a transaction, reads with
C<SELECT ... FOR UPDATE>, writes, and ends the transaction when the session
object goes (untie): C<COMMIT> when something was written and C<Commit> is
true, C<ROLLBACK> otherwise.

The table is C<CREATE TABLE sessions (id varchar(64) NOT NULL PRIMARY KEY,
a_session jsonb)>, LOGGED (an UNLOGGED table is not replicated: a failover
would empty it), with expression indexes on the fields searched;
L<asbp-patroni> creates them (C<asbp-patroni schema --kind global>).

The administrator's manual, L<Apache::Session::Browseable::Patroni::Manual>,
says how to configure LemonLDAP::NG (the manager and F<lemonldap-ng.ini>)
for every storage, which tables to create, what high availability asks of
Patroni, how to migrate from and back to the pure-Perl module, how to
monitor the store, and what each message means.  This page is the
reference of the options and methods.

=head1 OPTIONS

Seconds may be fractional.  Unknown options are ignored (LemonLDAP::NG adds
C<backend>, C<localStorage> and others).

=over 4

=item DataSource (required)

A DBD::Pg DataSource: C<dbi:Pg:> followed by C<key=value> pairs separated by
C<;>.  C<db> and C<database> mean C<dbname>; every other key must be a libpq
connection parameter (C<host>, C<port>, C<sslmode>, C<connect_timeout>,
C<application_name>, C<target_session_attrs>, ...).  The connection is made
with C<target_session_attrs=read-write> unless the DataSource says
otherwise, and always with C<client_encoding=UTF8>.

=item UserName, Password

=item Commit (default 1)

Commit the transaction of a tied session when it ends.  With C<0> nothing a
tie writes is kept.

=item TableName (default C<sessions>)

An identifier, optionally schema-qualified (C<sso.sessions>); plain parts
mean what they mean in SQL (folded to lower case), parts in double quotes
are kept as they are.  Anything else is refused.

=item IDLength (default 64)

Hex digits of a new session id, from the kernel's secure random generator.

=item ConnectTimeout (default 2)

The longest one connection attempt may take.

=item FailoverTimeout (default 4)

The longest one operation (one step of a tie, or the connection of a class
method) spends reconnecting, discovering the leader and retrying before it
reports an error.  Kept under LemonLDAP::NG's 5-second alarm around a tie,
which cannot interrupt C code.

=item QueryTimeout (default 30)

Class methods: the longest wait for data from the server.

=item PoolMaxIdle (default 8)

How many idle connections each process keeps open for later, per pool key
(the connection parameters: DataSource, user and password, and the leader
it reaches; the storages of LemonLDAP::NG that differ only in TableName
share one key).  A process holds one connection per tie in progress
(nested ties, a browse during a tie: more) and gives it back when the tie
ends; what it keeps idle is what it used at once, up to this number: a
single-threaded worker rarely keeps more than one or two.  C<0> keeps
none: every tie opens a connection and closes it at the end, as the
pure-Perl module does (a connection set-up, with its authentication, per
tie).  From 0 to 1000.

=item PoolIdleTimeout (default 300)

Seconds an idle connection is kept: one idle longer is closed, and
replaced when needed, by the next operation of the process on any
DataSource (there is no timer: a process that does nothing keeps its
connections until it does something, or exits).  C<0>: kept for ever.
The default frees the server slots of workers that have gone quiet, and
replaces a connection before most firewalls and NAT tables forget an idle
TCP connection (often after 15 minutes to an hour), which would otherwise
cost the next operation a wait until C<FailoverTimeout>; reconnecting once
in five minutes costs a few milliseconds.  To free the slots of workers
that get no request at all, let the server end their connections:
C<ALTER ROLE llng SET idle_session_timeout = '10min'> (PostgreSQL 14 and
later), longer than this option; such a connection is replaced silently
when the worker is used again (see L</FAILOVER>).

Two option sets sharing a pool key (see C<PoolMaxIdle>) each apply their
own C<PoolMaxIdle> and C<PoolIdleTimeout> to the connections they give
back: the key keeps at most the C<PoolMaxIdle> of the last one to give a
connection back (the oldest are closed), and each connection is kept for
the C<PoolIdleTimeout> of the option set that used it last.  Give every
storage on one DataSource the same values.

=item PatroniUrl (or patroniUrl)

The Patroni REST API endpoints (C<http(s)://host:8008/cluster>), separated by
commas or spaces, preferred (local) first.  Without it the module only
reconnects to the DataSource as configured.

=item PatroniAllowedHosts

The hosts, besides those of C<DataSource> (its C<host> and C<hostaddr>) and
of the C<PatroniUrl> endpoints, that a Patroni answer may name as the leader
or as a member: host names, IPv4 and IPv6 addresses and CIDR ranges
(C<10.0.0.0/8>, C<2001:db8::/32>), separated by commas or spaces.  For
deployments whose API and PostgreSQL addresses differ, e.g.
C<< PatroniAllowedHosts => 'pg1.example.org pg2.example.org 10.1.2.0/24' >>.

An API answer decides where the password is sent: the module never
connects, for a leader, a promotion watch or a member last seen, to a host
that is not allowed.  An answer naming such a leader is a bad answer: it is
not used (nor its members), it counts as an API failure, and the operation
fails after C<FailoverTimeout> with a message naming the host, the endpoint
and this option; members on such hosts are left out, with a message.  The
C<DataSource> itself is always used as written (without a host: libpq's
default socket).

Hosts are compared as written, without DNS (a name resolved there would be
no stronger than the answer it checks): names without regard to case,
addresses in any spelling (C<::1> is C<0:0:0:0:0:0:0:1>, an IPv4-mapped
IPv6 address is the IPv4 address), and a name never matches an address.  A
Unix-socket directory (C</run/postgresql>) or an abstract socket
(C<@name>) is allowed only when listed here, as written: libpq never uses
TLS on a socket.  A malformed entry (C<10.0.0.1/33>, C<host:5432>,
C<*.example.org>, bits set past a CIDR prefix) is refused when the options
are read.  Hosts that only a C<service> file names are not known: list
them here.

=item PatroniTimeout (default 3)

The deadline of one discovery round: every endpoint is asked at once.

=item PatroniCacheTTL (default 60)

How long a discovered leader is used as the fallback when the API fails.

=item PatroniCircuitBreakerDelay (default 30)

After the API failed (no endpoint gave a valid answer), it is not asked
again for this long.

=item PatroniVerifySSL (default 1), PatroniSSLCAFile, PatroniSSLCAPath

TLS verification of C<https> endpoints.  C<PatroniVerifySSL =E<gt> 0> turns it
off, with a warning.

=item PatroniSSLCertFile, PatroniSSLKeyFile

A client certificate and key (PEM), for APIs configured with
C<verify_client: required>.

=item BrowseFromStandby (default 0)

With C<1> (and a C<PatroniUrl>), the read-only class methods
(C<searchOn>, C<searchOnExpr>, C<get_key_from_all_sessions>) read from the
synchronous standby, sparing the leader the whole-table reads of the
manager and the command line tools.  The standby is the member the Patroni
API names with role C<sync_standby> (state C<running> or C<streaming>), so
Patroni must run with C<synchronous_mode: true>: that standby has flushed
every acknowledged commit.  Asynchronous replicas are never used.  Its
host must be allowed (see C<PatroniAllowedHosts>).  The API is asked at
most once per C<PatroniCacheTTL> for it (an answer the failover of a
write gets teaches it too).

C<deleteIfLowerThan> and every tie (reads included) always go to the
leader.  When no synchronous standby is known, or it cannot be reached
within half of C<FailoverTimeout> (C<ConnectTimeout> for the connection),
or fails during the read (before any row reached a code reference: rows
handed over cannot be taken back, as on the leader), the leader serves the
read: never an error for that reason, one C<info> line (repeats of a line are suppressed for 10 s),
and a standby that failed is left alone until the API is asked again.
An error the leader would give as well (a bad field name, C<QueryTimeout>)
is reported as usual.

=item PreparedStatements (default 1)

With 1, the store's statements and C<searchOn>'s are prepared once per
connection (named prepared statements) and then only executed.  Behind
PgBouncer in transaction pooling mode (C<pool_mode = transaction>; Debian
12's PgBouncer 1.18 does not track prepared statements) a connection's next
transaction may run on another server connection, which never prepared
them: the operation fails with C<prepared statement "asbp_..." does not
exist> (SQLSTATE 26000).  C<< PreparedStatements => 0 >>: no named
prepared statement at all; every statement is sent unnamed with its
parameters (parsed and planned each time), which is safe in transaction
pooling.  In session pooling mode, or directly to PostgreSQL, keep the
default.

=item PatroniLeaderPort (default: the port the API gives)

The port at which the leader the Patroni API names, and the members used
when the API cannot answer (the promotion watches, the members last seen),
are reached, instead of the port the API gives (PostgreSQL's): for
PgBouncer running on every database node, e.g.
C<< PatroniLeaderPort => 6432 >>.  The hosts stay those the API gives.  The
C<DataSource>'s own host and port are used as written (point it at a
bouncer too).  An integer from 1 to 65535; 0 or an empty string: the
default.

=back

The C<Handle> option of Apache::Session::Store::DBI (an open DBI handle) is
refused: this module opens its own libpq connections.

=head1 FAILOVER

An operation that fails in a way that means "wrong node or no node" (the
connection is lost; SQLSTATE class 08, 57P01, 57P02, 57P03; 25006, a
replica or a demoted leader) fails over: every C<PatroniUrl> endpoint is
asked at once (the first valid answer wins; endpoints naming different
leaders are refused), the operation is retried on the leader, and a tied
session's transaction is redone there.  While the cluster has no leader (a
switchover or a crash in progress) it keeps trying, with a short backoff
and watching the members for a promotion, until C<FailoverTimeout>, then
dies with a message that says so.  A planned switchover thus costs a delay,
not an error.  When the API fails, the cached leader is used
(C<PatroniCacheTTL>), the API is not asked again for
C<PatroniCircuitBreakerDelay>, and once the cache has expired the members
last seen are tried, libpq picking the writable one.  A valid answer without
a leader is a cluster in transition and does not open the breaker.
Serialization failures, deadlocks and "too many connections" are retried on
the same node (three times); other errors are reported at once.

A pooled connection that the server ended while it was idle
(C<pg_terminate_backend>, C<idle_session_timeout>, a restart) is replaced
on its next use, silently: found closed when it leaves the pool, or lost on
its first statement (the server's goodbye still on its way, a host that
rebooted), the operation is redone once on a new connection to the same
server, before and without any failover (no Patroni request, no counter,
no message but in C<ASBP_TRACE>).  A second loss in the same operation
fails over as above.

"Too many connections" (SQLSTATE 53300: the server's C<max_connections>,
or the C<CONNECTION LIMIT> of the role or the database) is not a wrong
node: no discovery, no breaker.  After the retries the error says so (see
L</MESSAGES>).

One tie gets one failover budget: when a step gave up, the rest of the tie
reports the same error at once.  An error while a tied session is saved at
C<untie> is printed as an C<(in cleanup)> warning (Perl would hide it unless
warnings are enabled where it happened).

=head1 MESSAGES

The module's messages go through Perl's C<warn>, one line each, as

  Apache::Session::Browseable::Patroni[PID] LEVEL: message

(LEVEL: C<error>, C<warning> or C<info>), so they reach STDERR by default,
or a C<$SIG{__WARN__}> handler (LemonLDAP::NG's logger, a test) when one
is installed.  The C core never calls Perl while it works: it queues its
messages (the last 64, the number of older ones dropped is reported) and
the module emits them once the call has returned, before an error is
raised.

A line is printed at most once per 10 seconds per process, then with the
number of repeats; the numbers that change from one occurrence to the
next (counts and durations: C<29s more>, C<3s old>, C<after 96 ms>) do not
make it a new line, while names and addresses (C<10.0.0.1:5432>,
C<port=5432>) do.

=over 4

=item Apache::Session::Browseable::Patroni->logger(sub { my ($level, $text) = @_; ... })

Sends the messages to the code instead of C<warn>: C<$level> is C<error>,
C<warn> or C<info> (the names of LemonLDAP::NG's logger methods) and
C<$text> the message alone, without the prefix, the pid or a newline:

  Apache::Session::Browseable::Patroni->logger(
      sub { my ( $level, $text ) = @_; $logger->$level("Patroni: $text") } );

C<logger(undef)> goes back to C<warn>; C<logger()> returns the code in
place.  It is per process (per interpreter with threads).

=back

A C<__WARN__> handler or a logger that dies does not change what the
operation does: its exception is caught, the message is printed on STDERR
directly, followed by a line saying that the handler died and why, and
the operation returns its result or raises its own error as if nothing
had happened; C<$@> is left as it was.  Messages from a session's save at
C<untie> come out of a destructor (Apache::Session saves there): a
C<__WARN__> handler sees them as any other warning.

Not through C<warn>: the trace that C<ASBP_TRACE=1> in the environment
turns on (every libpq and libcurl call that matters, with the time), a
debugging aid printed in bulk on STDERR directly, as it happens;
messages produced while the interpreter exits (STDERR directly); and, as
with the pure-Perl module, the C<Error in session ...> lines of the browse
methods and deleteIfLowerThan's failure (see L</CLASS METHODS>), printed
on STDERR.

=over 4

=item No leader found from URL / Leader not in running state (state=...) from URL

The cluster is changing leader: harmless during a switchover or a crash;
if it lasts, look at Patroni.

=item Leader missing host or port from URL

A member without a C<connect_address>: fix Patroni's configuration.

=item Multiple leaders detected (split-brain)

Two endpoints named different leaders; the module refuses to write until
they agree.  Look at Patroni and the DCS at once.

=item Bad response from URL: ...

One endpoint refused, timed out, answered an HTTP error, a body too large or
not JSON, or failed TLS verification.  The others are used.

=item Patroni API unavailable for DataSource ..., using cached leader H:P (Ns old)

=item Circuit breaker active (...), using cached leader H:P

=item ... trying the members last seen (...)

No endpoint answered validly: the module works without the API; fix the API.

=item DataSource ...: reconnected to H:P, operation succeeded after N ms (first error: ...)

A failover (or a reconnection after a restart) that the caller did not see.

=item no writable leader within FailoverTimeout (N ms) for DataSource ...; last error: ...

The operation failed: no writable node could be reached in time.

=item DataSource ...: the server has no connection slot left (too many connections ...) ...

Every connection slot of the server is taken (the message that follows
names the server).  Count the connections of the fleet (see the README):
raise C<max_connections> (or the role's or database's C<CONNECTION
LIMIT>), lower C<PoolMaxIdle> or C<PoolIdleTimeout>, or put PgBouncer in
front of PostgreSQL.

=item PatroniVerifySSL is off for DataSource ...

TLS certificates of the API are not verified.

=back

Passwords never appear in a message: in the DataSource, the value of any
key that may hold a secret (C<password>, C<sslpassword>, any key containing
"password", and any key that is not one of libpq's non-secret parameters,
a misspelt C<pasword> say) is shown as C<***>; so are the credentials in a
URL (C<user:***@>, or C<***@> for a user name alone, often a token).  A
comma or a space inside a URL's password does not split C<PatroniUrl>: the
list is split only before a URL with a scheme (C<http://>, C<https://>).

Session ids are bearer tokens: a message shows only a prefix, enough to
correlate (at most 8 characters and never more than half the id, then
C<...>), with any control character or non-ASCII byte shown as C<?>.  An
id that is not hexadecimal or is longer than 4096 characters (the largest
C<IDLength>) is refused before any query (C<Invalid session ID: PREFIX...>).

Option values are text: a value containing a NUL character is refused
(C<invalid TableName: its value contains a NUL character ...>), never cut
at the NUL; strings are handed to libpq as UTF-8 whatever Perl's internal
form; a timeout must be a finite number of seconds (NaN and infinities
are refused).

=head1 MONITORING

=over 4

=item Apache::Session::Browseable::Patroni->status($args)

This process's view of the DataSource of C<$args>, for monitoring from
Perl: a hash reference with C<leader> (C<host:port> last found, or undef),
C<leader_age> (seconds), C<leader_cached> (still within PatroniCacheTTL),
C<breaker_open> and C<breaker_remaining> (seconds), C<members_last_seen>,
C<counters> (C<discoveries>, C<api_failures>, C<transitions>,
C<leader_changes>, C<failovers>, C<retries>, C<breaker_skips>),
C<pool_idle>, C<cache_ttl>, C<breaker_delay>, C<datasource> (password
masked), C<table>, C<patroni_urls> (masked), C<pid>.

=back

=head1 FORK AND THREADS

Connections and cluster states belong to the process that opened them: a
forked child never uses its parent's connections (it drops them without a
word to the server, and opens its own), so pre-forking servers (FastCGI,
uWSGI, mod_perl) are safe.  Each Perl interpreter (ithread) has its own
pool and states; a session tied in one thread cannot be used in another.

=head1 METHODS CALLED BY APACHE::SESSION

Apache::Session calls these on the tied session object; applications do
not call them.  LemonLDAP::NG, which ties its own wrapper class, calls only
C<populate> (as C<< $obj->Apache::Session::Browseable::Patroni::populate() >>
on an object of that class) and then uses what it put in the object.

=over 4

=item populate

Fills the object's six slots and returns the object: C<object_store>, a
new L<Apache::Session::Browseable::Store::Patroni>; C<lock_manager>,
Apache::Session::Lock::Null (the row lock taken by C<SELECT ... FOR UPDATE>
is the lock); and C<generate>, C<validate>, C<serialize> and C<unserialize>,
the functions below.

=item generate

Sets C<_session_id> to a new id: C<IDLength> (default 64) hex digits from
the kernel's secure random generator (C<getrandom>, or F</dev/urandom>).
An C<IDLength> that is not a whole number from 1 to 4096 makes the tie die
with C<Invalid IDLength '...'>.

=item validate

Accepts a C<_session_id> made of hex digits only (either case), at most
4096 of them, and dies with C<Invalid session ID: PREFIX...> otherwise,
before any SQL runs (the message shows only a short prefix of the id:
L</MESSAGES>).

=item serialize

Puts the JSON text of the session's data in C<serialized>: the meaning of
Apache::Session::Serialize::JSON (character strings in, JSON text out),
which the store sends to PostgreSQL as UTF-8 into the C<jsonb> column.

=item unserialize

Decodes C<serialized> back into the session's data, and dies with
C<Session could not be unserialized> when the text is not JSON or is a
JSON C<null>.  A row whose JSON object has no C<_session_id> gets the id it
was read by, so that it can be saved again.

=back

=head1 CLASS METHODS

The browse and purge methods LemonLDAP::NG calls on the backend class.
C<$args> is the options hash of the tie (DataSource, UserName, Password,
TableName, the timeouts and the Patroni options); keys this module does
not know, such as LemonLDAP::NG's C<backend>, C<localStorage> and
C<localStorageOptions>, are ignored, and the hash is not modified.  They
fail over like tied sessions (see L</Failover of the class methods>).

Field names and values are Perl character strings (sent to PostgreSQL as
UTF-8; a string without the UTF-8 flag is read as Latin-1, as the tie path
reads session data).  A NUL character in a name or value is refused.  A
field name only ever reaches the SQL text as a quoted literal, so that
C<< a_session ->> 'field' >> matches expression indexes such as
C<< ((a_session ->> '_whatToTrace')) >>; values, patterns and thresholds are
always parameters.

=over 4

=item searchOn($args, $field, $value, @fields)

The sessions whose C<< a_session ->> $field >> equals C<$value> (text: a
number is found by its decimal text; an undefined value matches nothing).

Without C<@fields>: C<< { $id => $session } >>, each session decoded as a
tied session is.  With C<@fields>: C<< { $id => { id => $id, $field1 =>
$text1, ... } } >>, under the names exactly as given (mixed case kept),
each value being what C<< a_session ->> 'field' >> returns: a string as it
is, a number as its text, a nested value as JSON text, and C<undef> for a
missing key or a JSON null.  C<_session_id> can be asked for like any
field.  The C<id> key always holds the row's id: a requested field named
C<id> gives the row's id, not a key C<id> of the session.

=item searchOnExpr($args, $field, $pattern, @fields)

The same with a pattern, anchored at both ends, where C<*> stands for any
string and every other character stands for itself (C<%>, C<_> and C<\>
included: they are escaped for C<LIKE>).  A pattern with a literal prefix
(C<dup*>) can use a C<text_pattern_ops> index on the field:

  CREATE INDEX sessions_wtt_pattern ON sessions
      ((a_session ->> '_whatToTrace') text_pattern_ops);

(a plain expression index serves C<LIKE> only under the C collation).

=item get_key_from_all_sessions($args, $data)

Reads every row of the table, streaming (libpq's single-row mode: the C
side holds one row at a time).

=over 4

=item * C<$data> undefined (or an empty string): C<< { $id => $session } >>.

=item * an array reference of field names: C<< { $id => { id => $id, $field
=> $text, ... } } >>, as searchOn with fields (an empty array: ids only); a
plain string C<$f> is read as C<[$f]>.

=item * a code reference: called as C<< $code->($session, $id) >> for every
session, in no particular order; a defined return value is kept as
C<< { $id => $value } >>.  Memory stays flat whatever the size of the
table (only the kept values accumulate).  The code may use this module
(tie sessions, search): it gets other connections from the pool.  An
exception thrown by the code is printed on STDERR as C<Error in session
ID...: ...> (the id shortened, see L</MESSAGES>) and the iteration goes on,
as with the pure-Perl module.

=back

A row that is not a session is skipped, with C<Error in session ID...:
Session could not be unserialized (reason)> on STDERR: an SQL NULL, a JSON
null (which C<unserialize> refuses), or a JSON value that is not an object
(a string, a number, an array: no session is one).  This applies wherever
whole sessions are decoded (searchOn and searchOnExpr without fields
too); the field forms decode nothing and return such rows' ids with
undefined fields.

Any other hash or reference for C<$data> dies.

=item deleteIfLowerThan($args, $rule)

One C<DELETE> statement for the purge:

  { or  => { _utime => $t1, _lastSeen => $t2 },  # ANY of them below
    and => { _utime => $t1, ... },               # ALL of them below
    not => { _session_kind => 'Persistent' } }   # and not equal

A row is deleted when C<cast(a_session ->> f as bigint)> is below the
threshold for any field of C<or>, for every field of C<and> (both groups
apply when both are given), and, for each field of C<not>, its value is
distinct from the string given (a missing field is distinct from any
string; with C<undef>, only rows that have the field are deleted).  The
casts match indexes such as C<((cast(a_session ->> '_utime' as bigint)))>;
add one on C<_lastSeen> when LemonLDAP::NG's C<timeoutActivity> is used.

Returns C<1> in scalar context and C<(1, $rows_deleted)> in list context.
Returns C<0> without touching anything when neither C<or> nor C<and> has a
field (LemonLDAP::NG then falls back to get_key_from_all_sessions), and
C<0> after printing the reason on STDERR when the database fails (a
missing table, no leader within the failover budget, a row whose value
cannot be cast to bigint, which the recommended cast index prevents from
being stored at all).

Dies, before anything is sent, when a threshold is not an integer (an
optional C<-> and decimal digits within the bigint range: C<'1e3'>,
C<' 5'>, C<'5.5'>, C<'0x10'>, C<''>, C<undef> and references are refused;
negative integers are accepted), when a rule key is not C<or>, C<and> or
C<not> (a misspelt C<not> would purge persistent sessions), or when a
group is not a hash reference.

The statement runs with C<statement_timeout> set to QueryTimeout.  When
the connection is lost during the statement, it runs again on the leader
found after the failover; rows deleted by a first run that had committed
are then not counted in the second run's number.

=back

=head2 Failover of the class methods

Every method runs through the same failover loop as tied sessions: when
the node is gone, read-only or shutting down, the leader is found again
and the query runs again there, within FailoverTimeout.  A failure before
the first row of a result has arrived is retried that way, invisibly.  A
failure in the middle of a stream cannot be hidden, since rows were
already read: the methods that build a complete result (searchOn,
searchOnExpr, get_key_from_all_sessions without a code reference) discard
what they had and start again from the first row, with a new failover
budget, at most three times, logging each restart on STDERR; the code
reference form reports the error instead (the rows already passed to the
code cannot be taken back), and says how many had been.

QueryTimeout (default 30 s) bounds each wait for the server during a
stream, counted again whenever data arrives: a long read that keeps
moving is never cut, a server that stops answering is given up (and the
error reported, not retried).  The server sends rows in blocks of about
8 kB: a scan that finds few matching rows among many may leave the client
without data for a while, which QueryTimeout must allow for.

searchOn's statements are prepared once per connection (up to 64 different
ones; beyond, they run unprepared); searchOnExpr and the whole-table reads
run unprepared, so that each is planned with its pattern (a prefix can use
an index only when the planner sees it).

=head1 SECURITY: WHERE THE PASSWORD GOES

With C<PatroniUrl>, the host this module connects to, and hands the
DataSource's user name and password to, is not only the one written in the
DataSource: it is the leader named by the last valid answer of the Patroni
API, a member it listed (watched for a promotion during a failover), or,
when the API fails, a member seen in an earlier answer.  Whoever can write
or alter one API answer -- a compromised Patroni node, or anyone on the
network path when the API is asked over plain C<http://> -- chooses where
the next connection goes.  A server that asks for a cleartext password
receives it; one that asks for md5 receives material for guessing it
offline; and a server accepting the connection receives every session
written afterwards and can answer with forged ones.

Pin both ends, so that an answer can only send the module to a server that
proves it is yours and never receives the password:

=over 4

=item The API over C<https://> with verification on

C<PatroniUrl =E<gt> 'https://...'>, C<PatroniVerifySSL> left at its
default (1), and C<PatroniSSLCAFile> (or C<PatroniSSLCAPath>) naming the
private CA that signed the Patroni certificates.  A client certificate
(C<PatroniSSLCertFile>, C<PatroniSSLKeyFile>) lets the API refuse callers
it does not know (Patroni's C<restapi.verify_client: required>).

=item The hosts an answer may name

A leader, a watched member or a fallback member is connected to only when
its host is one of the hosts of the DataSource, one of the hosts of the
C<PatroniUrl> endpoints, or listed in C<PatroniAllowedHosts> (names,
addresses, CIDR ranges; a Unix socket directory only when listed there).
Hosts are compared as written, without DNS: when Patroni's
C<connect_address> uses other names or addresses than the API URLs, list
them.  An answer naming another host is refused as an invalid answer, with
a message naming the host and the option.

=item The server's certificate: C<sslmode=verify-full>

In the DataSource: C<sslmode=verify-full;sslrootcert=/path/to/ca.pem>.  The
DataSource's parameters apply to every host an answer names, and libpq
then checks that the server's certificate was signed by that CA and names
the host as the answer wrote it (Patroni's C<connect_address>: an address
needs an C<IP:> entry in the certificate's subjectAltName, a name a
C<DNS:> entry).  Use a private CA for C<sslrootcert>, not the system's
list of public ones: anybody can get a public certificate for a name of
their own.  TLS is never used on a Unix socket.

=item The authentication: C<channel_binding=require>

Also in the DataSource.  libpq then accepts nothing but SCRAM-SHA-256 with
channel binding: it refuses a server that asks for a cleartext or md5
password, or lets the client in without one (C<trust>), before sending
anything derived from the password, and SCRAM's proof is bound to the TLS
connection, so that it cannot be relayed to the real server.  With libpq 16
or later, C<require_auth=scram-sha-256> refuses any other method too (with
the libpq 15 of Debian 12 the module refuses it as an unknown connection
parameter).  On the server: C<password_encryption = scram-sha-256> (a
password set while it was md5 must be set again), C<hostssl ... scram-sha-256>
lines in F<pg_hba.conf>, C<ssl = on> with the certificate.  Even SCRAM gives
a server that is not yours enough to try guesses of the password offline:
use a long random one.

=back

Write these parameters into the DataSource itself: libpq's environment
variables (C<PGSSLMODE>, C<PGCHANNELBINDING>, ...) only fill in what the
DataSource leaves out.  A server refused by them is reported at once (the
tie dies with libpq's reason, for example C<channel binding required, but
server authenticated client without channel binding> or C<server
certificate for "x" does not match host name "y">), not retried until
C<FailoverTimeout>.

For example:

  DataSource => 'dbi:Pg:dbname=sessions;host=pg1.example.org;port=5432;'
              . 'sslmode=verify-full;sslrootcert=/etc/lemonldap-ng/pg-ca.pem;'
              . 'channel_binding=require',
  PatroniUrl => 'https://pg1.example.org:8008/cluster, '
              . 'https://pg2.example.org:8008/cluster, '
              . 'https://pg3.example.org:8008/cluster',
  PatroniSSLCAFile => '/etc/lemonldap-ng/patroni-ca.pem',

What remains trusted: the Patroni nodes and whoever holds a key of the API
certificates, who can still name any allowed host as the leader (a replica,
a stopped node: writes then fail, the password stays with your servers);
the CAs given to C<sslrootcert> and C<PatroniSSLCAFile>, and every
certificate they signed for an allowed name; the PostgreSQL servers
themselves; and the machine running the portal, where the password sits in
the LemonLDAP::NG configuration and in the process's memory.

=head1 SEE ALSO

L<Apache::Session::Browseable::Patroni::Manual> (the administrator's manual),
L<asbp-patroni>, L<Apache::Session>, L<Apache::Session::Browseable>,
L<https://lemonldap-ng.org>

=head1 COPYRIGHT AND LICENSE

Copyright (C) 2026 the Apache::Session::Browseable::Patroni developers.

This library is free software; you can redistribute it and/or modify it
under the same terms as Perl 5 itself: either the Artistic License 1.0 or
the GNU General Public License, version 1 or (at your option) any later
version.  The LICENSE file of the distribution says where the texts are.

This module replaces, under the same class name, the pure-Perl
Apache::Session::Browseable::Patroni of the Apache-Session-Browseable
distribution, and keeps its options, its behaviour towards LemonLDAP::NG
and the wording of its log messages, and those of
L<Apache::Session::Browseable::PgJSON>, so that configurations and log
alerts carry over.  Apache-Session-Browseable is by Xavier Guimard,
Clément Oudot and the LemonLDAP::NG team (L<https://lemonldap-ng.org>),
under the same Perl 5 terms; its copyright remains with them, and this
module is a separate implementation (a C core with an XS layer) that
claims none of it.

=cut
