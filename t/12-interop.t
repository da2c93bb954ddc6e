# Rows written by Debian's pure-Perl Apache::Session::Browseable::PgJSON are
# read by ours, and the other way round, on the same table.
use strict;
use warnings;
use utf8;
use Test::More;
use lib 't/lib';
use PgServer;
use Apache::Session::Browseable::Patroni;
use B ();

binmode Test::More->builder->$_, ':encoding(UTF-8)' for qw(output failure_output todo_output);

unless ( eval { require Apache::Session::Browseable::PgJSON; require DBD::Pg; 1 } ) {
    my $why = 'needs Apache::Session::Browseable::PgJSON and DBD::Pg (Debian: libapache-session-browseable-perl libdbd-pg-perl)';
    if ( PgServer::required() ) { plan tests => 1; fail("required here: $why"); exit 1 }
    plan skip_all => $why;
}
my $pg   = PgServer->start_or_skip;
my $args = { $pg->options, Commit => 1 };
my ( $OURS, $THEIRS ) = ( 'Apache::Session::Browseable::Patroni', 'Apache::Session::Browseable::PgJSON' );

my %data = (
    uid      => 'dwho',
    cn       => 'Éléonore 会话 🔐',
    n        => 42,
    s        => '42',
    f        => 0.5,
    nested   => { groups => [ 'admins', 'users' ], attrs => { 'clé' => 'välue' } },
    nothing  => undef,
    _utime   => 1700000000,
);

sub is_number { my $f = B::svref_2object( \$_[0] )->FLAGS; ( $f & ( B::SVp_IOK | B::SVp_NOK ) ) && !( $f & B::SVp_POK ) }

sub write_with {
    my ($class) = @_;
    tie my %s, $class, undef, {%$args};
    $s{$_} = $data{$_} for keys %data;
    my $id = $s{_session_id};
    untie %s;
    return $id;
}

sub read_with {
    my ( $class, $id ) = @_;
    tie my %s, $class, $id, {%$args};
    my %copy = %s;
    untie %s;
    return \%copy;
}

for my $dir ( [ $OURS, $THEIRS ], [ $THEIRS, $OURS ] ) {
    my ( $w, $r ) = @$dir;
    my $id  = write_with($w);
    my $got = read_with( $r, $id );
    my $tag = "written by " . ( $w eq $OURS ? 'ours' : 'PgJSON' ) . ", read by " . ( $r eq $OURS ? 'ours' : 'PgJSON' );
    delete $got->{_session_id};
    is_deeply( $got, \%data, "$tag: same data" );
    ok( is_number( $got->{n} ),  "$tag: number stays a number" );
    ok( !is_number( $got->{s} ), "$tag: string stays a string" );
    is( length $got->{cn}, length $data{cn}, "$tag: UTF-8 text as characters" );

    # the other one updates, the first one reads the update
    tie my %s, $r, $id, {%$args};
    $s{added} = "ajouté par l'autre";
    untie %s;
    my $again = read_with( $w, $id );
    is( $again->{added}, "ajouté par l'autre", "$tag: update by the other one visible" );

    # and deletes
    tie %s, $r, $id, {%$args};
    tied(%s)->delete;
    untie %s;
    eval { read_with( $w, $id ) };
    like( $@, qr/Object does not exist/, "$tag: delete by the other one seen" );
}

# the stored rows are the same JSON whoever wrote them
my $a = write_with($OURS);
my $b = write_with($THEIRS);
is( $pg->psql("SELECT (SELECT a_session - '_session_id' FROM sessions WHERE id = '$a') = (SELECT a_session - '_session_id' FROM sessions WHERE id = '$b')"),
    't', 'identical JSONB rows from both modules' );

done_testing;
