package Apache::Session::Browseable::Store::Patroni;

use strict;
use warnings;

# close, DESTROY and server are XSUBs (xs/Patroni.xs), and so are _write,
# _materialize, _remove and _report, loaded with
# Apache::Session::Browseable::Patroni.  The methods below know the session
# object's layout (Apache::Session's: args, data, serialized) and hand
# those XSUBs plain values.
use Apache::Session::Browseable::Patroni ();
use Scalar::Util ();

# An error raised here while Apache::Session's DESTROY saves the session
# (a bad option value, say) becomes Perl's "(in cleanup)" warning only
# where the 'misc' warnings are on; Apache/Session.pm, which called the
# XSUBs directly before these methods existed, does not turn them on.
# Errors the store must not hide are printed by the XSUBs themselves.
no warnings 'misc';

our $VERSION = '2.000';

sub new {
    my ($class) = @_;
    return bless {}, $class;
}

# Each method ($self, $session) takes the session's data hash and reports
# a session without one (an error, or a warning when called from a
# destructor).  They run on every tie: @_ is used as it is, and a plain
# hash needs no call.
sub _is_hash { ( Scalar::Util::reftype( $_[0] ) // '' ) eq 'HASH' }
sub _no_data { _report('the session has no data: not saved'); return }

sub insert {
    my $d = $_[1]{data};
    ref $d eq 'HASH' or _is_hash($d) or return _no_data();
    _write( $_[0], $_[1]{args}, $d->{_session_id}, $_[1]{serialized}, 0 );
}

sub update {
    my $d = $_[1]{data};
    ref $d eq 'HASH' or _is_hash($d) or return _no_data();
    _write( $_[0], $_[1]{args}, $d->{_session_id}, $_[1]{serialized}, 1 );
}

sub materialize {
    my $d = $_[1]{data};
    ref $d eq 'HASH' or _is_hash($d) or return _no_data();
    # undef: no id (reported); the text, a temporary, is not copied
    $_[1]{serialized} = _materialize( $_[0], $_[1]{args}, $d->{_session_id} ) // return;
}

sub remove {
    my $d = $_[1]{data};
    ref $d eq 'HASH' or _is_hash($d) or return _no_data();
    _remove( $_[0], $_[1]{args}, $d->{_session_id} );
}

1;
__END__

=head1 NAME

Apache::Session::Browseable::Store::Patroni - session store of
Apache::Session::Browseable::Patroni (libpq, Patroni-aware)

=head1 SYNOPSIS

Not used directly: L<Apache::Session::Browseable::Patroni>'s C<populate>
creates one store per tied session.

=head1 DESCRIPTION

The store implements Apache::Session's storage interface:

=over 4

=item new($session)

A store for one tied session (Apache::Session's C<populate> passes the
session object, which the store does not keep).  It holds no connection
yet: the first of the methods below takes one from the process's pool,
for the DataSource of the session's options.

=item insert($session), update($session), materialize($session), remove($session)

C<INSERT>, C<UPDATE>, C<SELECT ... FOR UPDATE> and C<DELETE> of the row
whose C<id> is C<< $session->{data}{_session_id} >>, all inside one
transaction that the first of them opens on a connection taken from the
process's pool.  C<materialize> dies with "Object does not exist in the data
store" when there is no such row.

=item close

Ends the transaction: C<COMMIT> when something was written and the
C<Commit> option is true (the default), C<ROLLBACK> otherwise, and gives the
connection back to the pool.  C<DESTROY> does the same.

=item server

The server (C<host:port>) that holds this store's open transaction, or
C<undef> when none is open: the node a session was just read from or
written to, after any failover (L<asbp-patroni> prints it for its check).

=back

=head1 SEE ALSO

L<Apache::Session::Browseable::Patroni>

=cut
