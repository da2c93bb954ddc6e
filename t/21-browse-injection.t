# Hostile strings as field names, values, patterns, rule keys and rule
# values of the class methods: each one is searched for (and found) as
# plain data, nothing else happens; afterwards both tables are intact and
# only the rows the test means to delete are gone.  Literal %, _ and \ in
# searchOnExpr patterns match themselves; thresholds that are not integers
# are refused before anything runs.
use strict;
use warnings;
use utf8;
use Test::More;
use lib 't/lib';
use PgServer;
use BrowseData qw();
use File::Temp ();
use JSON::XS ();
use Apache::Session::Browseable::Patroni;

binmode Test::More->builder->$_, ':encoding(UTF-8)' for qw(output failure_output todo_output);

my $pg   = PgServer->start_or_skip;
my $args = { $pg->options };
my $C    = 'Apache::Session::Browseable::Patroni';

my @corpus = (
    q{'}, q{''}, q{"}, q{\\}, q{\\'}, q{'\\}, q{\\\\''},
    q{;DROP TABLE sessions;--}, q{';DROP TABLE sessions;--}, q{x'); DELETE FROM sessions; --},
    q{/* */}, q{*/ 1 /*}, q{--}, q{-- comment}, q{%}, q{_}, q{%_\\}, q{a%b}, q{a_b},
    q{E'\\x41'}, q{E'\\''}, q{$1}, q{$2::text}, q{$$}, q{$tag$ x $tag$}, q{' OR '1'='1},
    q{') OR 1=1 --}, q{'::jsonb}, q{a_session}, q{id}, q{ID}, q{_session_id},
    "\x{202E}rtl\x{202C}", "\x{FEFF}bom", "line\x{2028}sep", "emoji \x{1F600}", "e\x{0301}",
    "tab\tnewline\ncr\r", "\x7fdel", "\x01\x02ctl", "\\u0000", 'x' x 3000, "long'\\" x 700,
    'null', 'true', '{}', '[]', ' ', '', '*', '**', 'a*b',
);
my %seen;
@corpus = grep { !$seen{$_}++ } @corpus;
my $K = @corpus;

# sessions: row inj$i holds { corpus[i] => corpus[i], val => corpus[i], name => "n$i" }
# (a corpus string named "id" or "_session_id" is both key and value there)
sub inj {
    my ($i) = @_;
    my $s = $corpus[$i];
    my %d = ( val => $s, name => "n$i" );
    $d{$s} = $s;
    $d{_session_id} = "inj$i" unless $s eq '_session_id';
    return \%d;
}
my %data = map { ( "inj$_" => inj($_) ) } 0 .. $#corpus;
$data{ BrowseData::id($_) } = BrowseData::session($_) for 0 .. 49;
{
    my $f = File::Temp->new( DIR => '/tmp', SUFFIX => '.sql' );
    binmode $f;
    my $json = JSON::XS->new->utf8->canonical;
    print $f "COPY sessions (id, a_session) FROM STDIN;\n";
    for my $id ( sort keys %data ) {
        ( my $j = $json->encode( $data{$id} ) ) =~ s/\\/\\\\/g;
        print $f "$id\t$j\n";
    }
    print $f "\\.\n";
    close $f;
    chmod 0644, $f->filename;
    $pg->psql_super( "\\i " . $f->filename );
}
my $rows = keys %data;
is( $pg->psql('SELECT count(*) FROM sessions'), $rows, "$rows rows: $K hostile ones, 50 ordinary ones" );
my $sum_sql = q{SELECT md5(string_agg(id || ':' || a_session::text, ',' ORDER BY id)) FROM sessions};
my $sum     = $pg->psql($sum_sql);
my $tables  = $pg->psql(q{SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'});

# the model: ->> and the * wildcard, computed here
sub arrow { my ( $d, $f ) = @_; BrowseData::arrow( $d, $f ) }
sub like_re {
    my ($p) = @_;
    my $re = join '.*', map { quotemeta } split /\*/, $p, -1;
    return qr/\A$re\z/s;
}
sub expect {
    my ( $match, @f ) = @_;
    my %r;
    for my $id ( keys %data ) {
        next unless $match->( $data{$id} );
        $r{$id} = @f ? { id => $id, map { $_ => arrow( $data{$id}, $_ ) } grep { $_ ne 'id' } @f } : $data{$id};
    }
    return \%r;
}
sub show { my $s = shift; $s = substr( $s, 0, 40 ) . '...' if length $s > 40; $s =~ s/([^\x20-\x7e])/sprintf '\\x{%x}', ord $1/ge; "'$s'" }

for my $i ( 0 .. $#corpus ) {
    my $s = $corpus[$i];
    my $t = show($s);
    is_deeply( $C->searchOn( $args, $s, $s ), expect( sub { my $v = arrow( $_[0], $s ); defined $v and $v eq $s } ),
        "searchOn field = value = $t" );
    is_deeply( $C->searchOn( $args, 'val', $s, $s, 'name' ),
        expect( sub { my $v = arrow( $_[0], 'val' ); defined $v and $v eq $s }, $s, 'name' ),
        "searchOn value $t, fields ($t, name)" );
    my $re = like_re($s);
    is_deeply( $C->searchOnExpr( $args, 'val', $s, 'name' ),
        expect( sub { my $v = arrow( $_[0], 'val' ); defined $v and $v =~ $re }, 'name' ),
        "searchOnExpr pattern $t" );
    is_deeply( $C->searchOnExpr( $args, $s, '*', $s ), expect( sub { defined arrow( $_[0], $s ) }, $s ),
        "searchOnExpr field $t, pattern *" );
}
is_deeply( $C->get_key_from_all_sessions( $args, [ @corpus, 'name' ] ), expect( sub { 1 }, @corpus, 'name' ),
    'get_key_from_all_sessions with every hostile name as a field' );

# literal %, _ and \ in patterns
{
    my @v = ( 'a%b', 'axb', 'a_b', 'a\\b', 'a\\\\b', 'ab', 'a%', 'a%%b', 'a\\%b', 'A%B' );
    my $f = File::Temp->new( DIR => '/tmp', SUFFIX => '.sql' );
    binmode $f;
    print $f "COPY sessions (id, a_session) FROM STDIN;\n";
    for my $j ( 0 .. $#v ) {
        ( my $js = JSON::XS->new->utf8->encode( { _whatToTrace => $v[$j] } ) ) =~ s/\\/\\\\/g;
        print $f "lit$j\t$js\n";
    }
    print $f "\\.\n";
    close $f;
    chmod 0644, $f->filename;
    $pg->psql_super( "\\i " . $f->filename );
    my %lit = map { ( "lit$_" => $v[$_] ) } 0 .. $#v;
    for my $case (
        [ 'a%b'    => ['a%b'] ],
        [ 'a_b'    => ['a_b'] ],
        [ 'a\\b'   => ['a\\b'] ],
        [ 'a\\\\b' => ['a\\\\b'] ],
        [ 'a\\%b'  => ['a\\%b'] ],
        [ '%'      => [] ],
        [ '_'      => [] ],
        [ 'a%*'    => [ 'a%b', 'a%', 'a%%b' ] ],
        [ 'a*b'    => [ 'a%b', 'axb', 'a_b', 'a\\b', 'a\\\\b', 'ab', 'a%%b', 'a\\%b' ] ],
        [ 'a_*'    => ['a_b'] ],
      )
    {
        my ( $p, $want ) = @$case;
        my $got = $C->searchOnExpr( $args, '_whatToTrace', $p, '_whatToTrace' );
        is_deeply( [ sort map { $_->{_whatToTrace} } values %$got ], [ sort @$want ], 'pattern ' . show($p) . ' matches ' . scalar(@$want) );
        my $re = like_re($p);
        is_deeply( [ sort map { $_->{_whatToTrace} } values %$got ], [ sort grep { $_ =~ $re } values %lit ],
            '... as the model says' );
    }
    $pg->psql(q{DELETE FROM sessions WHERE id LIKE 'lit%'});
}

is( $pg->psql($sum_sql), $sum, 'sessions: every row as it was' );
is( $pg->psql('SELECT count(*) FROM sessions'), $rows, "sessions: still $rows rows" );

# deleteIfLowerThan: hostile rule keys and rule values, on a table of its own
{
    $pg->psql('CREATE TABLE purge_inj (id varchar(64) PRIMARY KEY, a_session jsonb)');
    my $pargs = { %$args, TableName => 'purge_inj' };
    my $f     = File::Temp->new( DIR => '/tmp', SUFFIX => '.sql' );
    binmode $f;
    print $f "COPY purge_inj (id, a_session) FROM STDIN;\n";
    for my $i ( 0 .. $#corpus ) {
        ( my $js = JSON::XS->new->utf8->encode( { $corpus[$i] => $i + 0, tag => $corpus[$i], n => 5 } ) ) =~ s/\\/\\\\/g;
        print $f "p$i\t$js\n";
    }
    print $f "\\.\n";
    close $f;
    chmod 0644, $f->filename;
    $pg->psql_super( "\\i " . $f->filename );
    my %left = map { ( "p$_" => 1 ) } 0 .. $#corpus;
    my $left = sub { [ sort split /,/, $pg->psql(q{SELECT string_agg(id, ',') FROM purge_inj}) ] };

    for my $i ( 0 .. $#corpus ) {
        my $s = $corpus[$i];
        my $t = show($s);
        # rows where key s < 1e9: only p$i has that key (others hold a
        # number only under their own key), unless s is "tag" or "n"
        my @r = $C->deleteIfLowerThan( $pargs, { or => { $s => 1_000_000_000 }, not => { tag => $s } } );
        is_deeply( \@r, [ 1, 0 ], "rule key $t, not => { tag => $t }: nothing deleted" );
        @r = $C->deleteIfLowerThan( $pargs, { and => { $s => $i + 1, n => 6 }, not => { tag => "$s other" } } );
        is_deeply( \@r, [ 1, 1 ], "and => { $t => i+1, n => 6 }: its row deleted" );
        delete $left{"p$i"};
        is_deeply( $left->(), [ sort keys %left ], '... and only that one' );
    }
    is( $pg->psql('SELECT count(*) FROM purge_inj'), 0, 'purge table: every row deleted, one at a time' );

    # thresholds that are not integers are refused before anything runs
    $pg->psql(q{INSERT INTO purge_inj VALUES ('q1', '{"_utime": 1}'), ('q2', '{"_utime": -10}')});
    for my $bad ( '10; DROP TABLE purge_inj', '1e3', '', undef, ' 5', '5 ', '5.5', '0x10', '+5', '--5', '1 OR 1=1',
        '9223372036854775808', [5], { 5 => 5 }, \5, "5\n" )
    {
        my $t = defined $bad ? show("$bad") : 'undef';
        for my $g (qw(or and)) {
            my @r = eval { $C->deleteIfLowerThan( $pargs, { $g => { _utime => $bad } } ) };
            like( $@, qr/deleteIfLowerThan: the threshold of '_utime' in '$g' must be an integer/,
                "$g threshold $t refused with a clear error" );
        }
    }
    is( $pg->psql('SELECT count(*) FROM purge_inj'), 2, 'nothing was deleted by the refused rules' );
    is_deeply( [ $C->deleteIfLowerThan( $pargs, { or => { _utime => -5 } } ) ], [ 1, 1 ], 'a negative threshold is an integer' );
    is_deeply( [ $C->deleteIfLowerThan( $pargs, { or => { _utime => '-9223372036854775808' } } ) ], [ 1, 0 ],
        'the smallest bigint is accepted' );
    eval { $C->deleteIfLowerThan( $pargs, { or => { _utime => 5 }, nto => { _session_kind => 'Persistent' } } ) };
    like( $@, qr/unknown rule key 'nto'/, 'a misspelt rule key is refused (it would purge persistent sessions)' );
    eval { $C->deleteIfLowerThan( $pargs, { or => [ _utime => 5 ] } ) };
    like( $@, qr/'or' must be a hash reference/, 'a rule group must be a hash' );
    eval { $C->deleteIfLowerThan( $pargs, 'DELETE FROM purge_inj' ) };
    like( $@, qr/rule must be a hash reference/, 'the rule must be a hash' );
    eval { $C->deleteIfLowerThan( { %$args, TableName => 'purge_inj; DROP TABLE sessions' }, { or => { a => 1 } } ) };
    like( $@, qr/Invalid TableName/, 'a hostile TableName is refused' );
    is( $pg->psql('SELECT count(*) FROM purge_inj'), 1, 'purge table: the one row left' );
}

is( $pg->psql($sum_sql), $sum, 'sessions: untouched by everything above' );
is( $pg->psql(q{SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'}),
    "purge_inj,$tables", 'no table dropped or created by the queries' );

done_testing;
