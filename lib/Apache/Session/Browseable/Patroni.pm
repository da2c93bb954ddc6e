package Apache::Session::Browseable::Patroni;

use strict;
use warnings;

use Apache::Session;
use Apache::Session::Lock::Null;
use JSON::XS ();

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
        die "Invalid IDLength '" . ( $length // 'undef' ) . "': expected a whole number from 1 to 4096\n"
          unless defined $length and $length =~ /^[0-9]+$/ and $length >= 1 and $length <= 4096;
    }
    $session->{data}->{_session_id} = _random_hex($length);
}

# Ids must be hex (checked before any SQL runs).
sub validate {
    my $session = shift;
    my $id      = $session->{data}->{_session_id};
    if ( defined $id and $id =~ /^([a-fA-F0-9]+)\z/ ) {
        $session->{data}->{_session_id} = $1;
    }
    else {
        die "Invalid session ID: " . ( defined $id ? $id : 'undef' ) . "\n";
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
    $session->{data} = $data;
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

sub deleteIfLowerThan {
    my ( $class, $args, $rule ) = @_;
    my ( $rows, $error ) = _browse_delete( $args, $rule );
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
(Apache-Session-Browseable 1.3.19): same options, same C<tie> behaviour,
same JSONB rows, whose hot paths run in a C core (libpq, libcurl, yajl).
See the README for the table, the indexes and the LemonLDAP::NG
configuration.

=head1 OPTIONS

=over 4

=item DataSource

A C<dbi:Pg:> DataSource (C<key=value> pairs separated by C<;>; C<db> and
C<database> mean C<dbname>; every other key is handed to libpq).

=item UserName, Password

=item Commit

Commit the transaction of a tied session when it ends (default 1).

=item TableName

Default C<sessions>; may be schema-qualified.

=item IDLength

Length of generated ids (default 64 hex digits).

=item ConnectTimeout (2 s), FailoverTimeout (4 s), QueryTimeout (30 s)

=item PatroniUrl, PatroniTimeout (3 s), PatroniCacheTTL (60 s), PatroniCircuitBreakerDelay (30 s), PatroniVerifySSL (1), PatroniSSLCAFile, PatroniSSLCAPath, PatroniSSLCertFile, PatroniSSLKeyFile

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
$id: ...> and the iteration goes on, as with the pure-Perl module.

=back

A row that is not a session is skipped, with C<Error in session $id:
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

=head1 SEE ALSO

L<Apache::Session>, L<Apache::Session::Browseable>, L<http://lemonldap-ng.org>

=head1 COPYRIGHT AND LICENSE

This library is free software; you can redistribute it and/or modify it
under the same terms as Perl itself.

=cut
