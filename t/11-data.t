# What goes in comes out: UTF-8 text, nested data, numbers and numeric
# strings, undef values, a 1 MiB session.
use strict;
use warnings;
use utf8;
use Test::More;
use lib 't/lib';
use PgServer;
use Apache::Session::Browseable::Patroni;
use B ();

binmode Test::More->builder->$_, ':encoding(UTF-8)' for qw(output failure_output todo_output);

my $pg   = PgServer->start_or_skip;
my $args = { $pg->options };
my $C    = 'Apache::Session::Browseable::Patroni';

sub roundtrip {
    my (%data) = @_;
    tie my %s, $C, undef, $args;
    $s{$_} = $data{$_} for keys %data;
    my $id = $s{_session_id};
    untie %s;
    tie %s, $C, $id, $args;
    my %copy = %s;
    untie %s;
    return ( $id, \%copy );
}

sub is_number { my $f = B::svref_2object( \$_[0] )->FLAGS; ( $f & ( B::SVp_IOK | B::SVp_NOK ) ) && !( $f & B::SVp_POK ) }

my %text = (
    accents => 'Éléonore à l’œuvre, naïve façade',
    cjk     => '会话存储 セッション 세션',
    emoji   => '🔐👩🏽‍💻 ok',
    mixed   => "tab\tnewline\nquote\"backslash\\",
    latin1  => "caf\x{e9}",          # a Latin-1 string without the UTF8 flag
);
utf8::downgrade( $text{latin1} );
my ( $id, $got ) = roundtrip(%text);
is( $got->{$_}, $text{$_}, "text kept: $_" ) for sort keys %text;
for my $k (qw(accents cjk emoji)) {
    my $len = $pg->psql("SELECT length(a_session->>'$k') FROM sessions WHERE id = '$id'");
    is( $len, length $text{$k}, "stored as characters, not bytes: $k" );
}
is( $pg->psql("SELECT a_session->>'latin1' = 'caf' || chr(233) FROM sessions WHERE id = '$id'"),
    't', 'a Latin-1 string is stored as the right characters' );

my %nested = (
    h     => { a => { b => { c => [ 1, { d => 'e' } ] } } },
    a     => [ [], {}, [ [ 'deep' ] ] ],
    empty => '',
);
( $id, $got ) = roundtrip(%nested);
is_deeply( $got->{$_}, $nested{$_}, "nested data kept: $_" ) for sort keys %nested;

my ( $n, $s, $f, $neg, $big ) = ( 42, '42', 3.25, -7, 1700000000 );
( $id, $got ) = roundtrip( n => $n, s => $s, f => $f, neg => $neg, big => $big, zero => '0', lead => '007' );
is( $pg->psql("SELECT jsonb_typeof(a_session->'n') FROM sessions WHERE id = '$id'"), 'number', 'number stored as a JSON number' );
is( $pg->psql("SELECT jsonb_typeof(a_session->'s') FROM sessions WHERE id = '$id'"), 'string', 'numeric string stored as a JSON string' );
ok( is_number( $got->{n} ), 'number comes back as a number' );
ok( !is_number( $got->{s} ), 'numeric string comes back as a string' );
is( $got->{f},    3.25,       'float' );
is( $got->{neg},  -7,         'negative' );
is( $got->{big},  1700000000, 'timestamp-sized integer' );
is( $got->{lead}, '007',      'leading zeros kept in a string' );

( $id, $got ) = roundtrip( u => undef, defined => 1 );
ok( exists $got->{u} && !defined $got->{u}, 'undef value kept as undef (JSON null)' );
is( $pg->psql("SELECT jsonb_typeof(a_session->'u') FROM sessions WHERE id = '$id'"), 'null', 'stored as null' );

# a 1 MiB session
my $blob = join '', map { chr( 0x41 + $_ % 26 ) } 1 .. 1024 * 1024;
( $id, $got ) = roundtrip( blob => $blob, tail => 'é' );
is( length $got->{blob}, length $blob, '1 MiB value kept (length)' );
ok( $got->{blob} eq $blob, '1 MiB value kept (content)' );
is( $got->{tail}, 'é', 'and the small key next to it' );

# keys: unicode and odd characters
( $id, $got ) = roundtrip( 'clé' => 1, 'a.b' => 2, "qu'ote" => 3, '' => 4 );
is( $got->{'clé'},    1, 'unicode key' );
is( $got->{'a.b'},    2, 'dotted key' );
is( $got->{"qu'ote"}, 3, 'quote in key' );
is( $got->{''},       4, 'empty key' );

# A row written by other means, without _session_id in its JSON: it reads,
# and it saves (the id it was read by is kept).
{
    my $id = 'ab' x 32;
    $pg->psql(qq{INSERT INTO sessions VALUES ('$id', '{"uid":"imported"}')});
    my @w;
    local $SIG{__WARN__} = sub { push @w, @_ };
    my %s;
    tie %s, $C, $id, $args;
    is( $s{uid}, 'imported', 'a row without _session_id reads' );
    is( $s{_session_id}, $id, 'and has its id' );
    $s{mail} = 'x@y';
    untie %s;
    is( join( '', @w ), '', 'saves without a warning' );
    is( $pg->psql("SELECT a_session->>'mail' FROM sessions WHERE id = '$id'"), 'x@y', 'the change is stored' );
}

done_testing;
