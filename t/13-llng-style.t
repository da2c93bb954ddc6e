# LemonLDAP::NG ties its own wrapper class and calls only our populate:
# $obj->Apache::Session::Browseable::Patroni::populate() must fill the six
# slots and return $self; nothing else of our session class runs.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use PgServer;

package My::Wrapper;    # what Lemonldap::NG::Common::Apache::Session does
use parent 'Apache::Session';
our $called_ours = 0;
sub populate {
    my $self    = shift;
    my $backend = $self->{args}{backend};
    eval "require $backend" or die $@;
    no strict 'refs';
    my $m = "${backend}::populate";
    $self = $self->$m();
    return $self;
}

package main;

my $pg   = PgServer->start_or_skip;
my $args = { $pg->options, backend => 'Apache::Session::Browseable::Patroni',
    localStorage => undef, localStorageOptions => undef };

# populate on a foreign object
{
    my $obj = bless { args => $args, data => {} }, 'Some::Other::Session';
    require Apache::Session::Browseable::Patroni;
    my $ret = $obj->Apache::Session::Browseable::Patroni::populate();
    is( $ret, $obj, 'populate returns $self' );
    is( ref $ret, 'Some::Other::Session', 'the object keeps its class' );
    isa_ok( $ret->{object_store}, 'Apache::Session::Browseable::Store::Patroni' );
    isa_ok( $ret->{lock_manager}, 'Apache::Session::Lock::Null' );
    is( ref $ret->{$_}, 'CODE', "$_ is a code reference" ) for qw(generate validate serialize unserialize);
}

# a full create / read / update / delete through the wrapper class
tie my %s, 'My::Wrapper', undef, {%$args};
is( ref tied(%s), 'My::Wrapper', 'tied through the wrapper class' );
$s{_session_kind} = 'SSO';
$s{uid}           = 'dwho';
my $id = $s{_session_id};
like( $id, qr/^[0-9a-f]{64}\z/, 'our generate ran' );
untie %s;

tie %s, 'My::Wrapper', $id, {%$args};
is( $s{uid}, 'dwho', 'read through the wrapper' );
$s{uid} = undef;
delete $s{uid};
$s{mail} = 'x@y';
untie %s;

tie %s, 'My::Wrapper', $id, {%$args};
ok( !exists $s{uid}, 'key removed through the wrapper' );
is( $s{mail}, 'x@y', 'update through the wrapper' );
tied(%s)->delete;
untie %s;
eval { tie %s, 'My::Wrapper', $id, {%$args} };
like( $@, qr/Object does not exist/, 'deleted through the wrapper' );

eval { tie %s, 'My::Wrapper', 'not-hex!', {%$args} };
like( $@, qr/Invalid session ID/, 'our validate ran through the wrapper' );

# creation with a given id (LL::NG's setId replaces generate and validate)
{
    my $given = 'a' x 32;
    tie my %t, 'My::Wrapper', undef, {%$args};
    # emulate setId: LL::NG sets generate to use the given id
    untie %t;
    package My::SetId;
    use parent -norequire, 'My::Wrapper';
    sub populate {
        my $self = shift->SUPER::populate(@_);
        my $id = $self->{args}{setId};
        $self->{generate} = sub { $_[0]{data}{_session_id} = $id };
        $self->{validate} = sub { 1 };
        return $self;
    }
    package main;
    tie %t, 'My::SetId', undef, { %$args, setId => $given };
    $t{_session_kind} = 'Persistent';
    untie %t;
    tie %t, 'My::Wrapper', $given, {%$args};
    is( $t{_session_kind}, 'Persistent', 'session created with a given id' );
    untie %t;
}

done_testing;
