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

# The session's data hash, or undef (reported: an error, or a warning when
# called from a destructor) when it has none.
sub _data {
    my $d = $_[0]->{data};
    return $d if ref $d eq 'HASH' or ( Scalar::Util::reftype($d) // '' ) eq 'HASH';
    _report('the session has no data: not saved');
    return undef;
}

sub insert {
    my ( $self, $session ) = @_;
    my $d = _data($session) // return;
    _write( $self, $session->{args}, $d->{_session_id}, $session->{serialized}, 0 );
}

sub update {
    my ( $self, $session ) = @_;
    my $d = _data($session) // return;
    _write( $self, $session->{args}, $d->{_session_id}, $session->{serialized}, 1 );
}

sub materialize {
    my ( $self, $session ) = @_;
    my $d = _data($session) // return;
    $session->{serialized} = _materialize( $self, $session->{args}, $d->{_session_id} ) // return;
}

sub remove {
    my ( $self, $session ) = @_;
    my $d = _data($session) // return;
    _remove( $self, $session->{args}, $d->{_session_id} );
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

=back

=head1 SEE ALSO

L<Apache::Session::Browseable::Patroni>

=cut
