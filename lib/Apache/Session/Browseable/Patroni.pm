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

=head1 SEE ALSO

L<Apache::Session>, L<Apache::Session::Browseable>, L<http://lemonldap-ng.org>

=head1 COPYRIGHT AND LICENSE

This library is free software; you can redistribute it and/or modify it
under the same terms as Perl itself.

=cut
