package Apache::Session::Browseable::Store::Patroni;

use strict;
use warnings;

# The methods insert, update, materialize, remove, close and DESTROY are
# XSUBs (xs/Patroni.xs), loaded with Apache::Session::Browseable::Patroni.
use Apache::Session::Browseable::Patroni ();

our $VERSION = '2.000';

sub new {
    my ($class) = @_;
    return bless {}, $class;
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
