# deleteIfLowerThan: the purge rule LemonLDAP::NG uses, and the other
# shapes (and, or with and, several not, not with undef), against a model
# of the rows computed here; return values in list and scalar context,
# empty rules, database failures.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use PgServer;
use BrowseData qw();
use Apache::Session::Browseable::Patroni;

my $pg   = PgServer->start_or_skip;
my $args = { $pg->options, backend => 'Apache::Session::Browseable::Patroni' };
my $C    = 'Apache::Session::Browseable::Patroni';
my $N    = 2000;
my $T0   = 1700000000;

sub row {
    my $n = 0 + shift;
    my %s = ( _session_id => BrowseData::id($n), uid => "u$n" );
    $s{_session_kind} =
        $n % 17 == 0 ? undef
      : $n % 23 == 0 ? 'Other'
      : $n % 10 == 0 ? 'Persistent'
      :                'SSO';
    delete $s{_session_kind} if $n % 34 == 0;    # absent, not only null
    $s{_utime} = $T0 + $n unless $n % 13 == 0;
    $s{_utime} = "" . ( $T0 + $n ) if $n % 31 == 0;    # a number stored as a JSON string
    $s{_utime} = 99999999999 if $n == 1001;
    $s{_lastSeen} = $T0 + ( $n * 7 ) % $N if $n % 3;
    $s{_httpSessionType} = $n % 5 ? '' : 'OIDC';
    return \%s;
}
my %model;

sub reload {
    $pg->psql('TRUNCATE sessions');
    BrowseData::load( $pg, [ 0 .. $N - 1 ], make => \&row );
    %model = map { ( BrowseData::id($_) => row($_) ) } 0 .. $N - 1;
}
sub left { [ sort split /,/, $pg->psql(q{SELECT string_agg(id, ',') FROM sessions}) ] }

# Applies a rule to the model: returns the ids it deletes.
sub model_delete {
    my ($rule) = @_;
    my $lt = sub { my ( $s, $f, $t ) = @_; defined $s->{$f} && $s->{$f} < $t };
    my @del;
    for my $id ( keys %model ) {
        my $s  = $model{$id};
        my $ok = 1;
        if ( my $or = $rule->{or} ) {
            $ok &&= grep { $lt->( $s, $_, $or->{$_} ) } keys %$or;
        }
        if ( my $and = $rule->{and} ) {
            $ok &&= !grep { !$lt->( $s, $_, $and->{$_} ) } keys %$and;
        }
        if ( my $not = $rule->{not} ) {
            for my $f ( keys %$not ) {
                my ( $v, $x ) = ( $s->{$f}, $not->{$f} );
                # IS DISTINCT FROM: differ, one of them NULL but not both
                $ok &&= ( defined $v xor defined $x ) || ( defined $v && $v ne $x );
            }
        }
        push @del, $id if $ok;
    }
    delete @model{@del};
    return scalar @del;
}

my ( $T, $T2 ) = ( $T0 + 1000, $T0 + 500 );
my $llng = { not => { _session_kind => 'Persistent' }, or => { _utime => $T, _lastSeen => $T2 } };

reload();
{
    my @r    = $C->deleteIfLowerThan( $args, $llng );
    my $want = model_delete($llng);
    ok( $want > 500, "LL::NG's rule deletes $want of $N rows in the model" );
    is_deeply( \@r, [ 1, $want ], 'list context: (1, number of rows deleted)' );
    is_deeply( left(), [ sort keys %model ], 'exactly the right rows are gone' );
    is( $pg->psql(q{SELECT count(*) FROM sessions WHERE a_session ->> '_session_kind' = 'Persistent'}),
        scalar( grep { ( row($_)->{_session_kind} // '' ) eq 'Persistent' } 0 .. $N - 1 ), 'every persistent session kept' );
    is_deeply( [ $C->deleteIfLowerThan( $args, $llng ) ], [ 1, 0 ], 'run again: (1, 0)' );
}

reload();
{
    my $r = $C->deleteIfLowerThan( $args, $llng );
    model_delete($llng);
    is( $r, 1, 'scalar context: 1' );
    is_deeply( left(), [ sort keys %model ], '... and the rows are gone' );
}

reload();
for my $empty ( {}, { not => { _session_kind => 'Persistent' } }, { or => {} }, { and => {} }, { or => undef },
    { or => {}, not => { a => 'b' } } )
{
    is( scalar $C->deleteIfLowerThan( $args, $empty ), 0, 'empty rule: 0 in scalar context' );
    is_deeply( [ $C->deleteIfLowerThan( $args, $empty ) ], [0], '... 0 in list context (LL::NG falls back)' );
}
is( scalar @{ left() }, $N, 'empty rules deleted nothing' );

for my $rule (
    { and => { _utime => $T, _lastSeen => $T2 } },
    { and => { _utime => $T }, not => { _session_kind => 'Persistent', _httpSessionType => 'OIDC' } },
    { or => { _utime => $T0 + 1500, _lastSeen => $T2 }, and => { _lastSeen => $T0 + 1800 } },
    { or => { _utime => $T }, not => { _session_kind => undef } },
    { or => { _utime => $T0 + 100 }, not => { _session_kind => 'SSO' } },
    { or => { _utime => 0 } },
    { or => { _utime => 100000000000 } },
  )
{
    reload();
    my $name = join '; ', map {
        my $g = $_;
        "$g: " . join ',', map { "$_=" . ( $rule->{$g}{$_} // 'undef' ) } sort keys %{ $rule->{$g} }
    } sort keys %$rule;
    my @r    = $C->deleteIfLowerThan( $args, $rule );
    my $want = model_delete($rule);
    is_deeply( \@r, [ 1, $want ], "{ $name }: (1, $want)" );
    is_deeply( left(), [ sort keys %model ], '... exactly those rows' );
}

# failures: 0, a message on STDERR, nothing deleted
{
    my ( $err, @r ) = BrowseData::capture_stderr(
        sub { $C->deleteIfLowerThan( { %$args, TableName => 'nosuchtable' }, $llng ) } );
    is_deeply( \@r, [0], 'missing table: 0' );
    like( $err, qr/deleteIfLowerThan failed: .*relation "nosuchtable" does not exist.*SQLSTATE 42P01/, '... and why on STDERR' );

    # With the recommended index on cast(_utime as bigint) such a row
    # cannot be stored at all; without it, the DELETE fails as a whole.
    reload();
    eval { $pg->psql(q{UPDATE sessions SET a_session = jsonb_set(a_session, '{_utime}', '"soon"') WHERE id = '} . BrowseData::id(9) . q{'}) };
    like( $@, qr/invalid input syntax for type bigint/, 'the _utime index refuses a _utime that is not a number' );
    $pg->psql(q{CREATE TABLE noindex AS SELECT * FROM sessions});
    $pg->psql(q{UPDATE noindex SET a_session = jsonb_set(a_session, '{_utime}', '"soon"') WHERE id = '} . BrowseData::id(9) . q{'});
    ( $err, @r ) = BrowseData::capture_stderr( sub { $C->deleteIfLowerThan( { %$args, TableName => 'noindex' }, $llng ) } );
    is_deeply( \@r, [0], 'without that index, a _utime that is not a number: 0 (the statement fails as a whole)' );
    like( $err, qr/invalid input syntax for type bigint: "soon".*SQLSTATE 22P02/, '... with the reason' );
    is( $pg->psql('SELECT count(*) FROM noindex'), $N, '... and nothing was deleted' );

    my ($r);
    ( $err, $r ) = BrowseData::capture_stderr(
        sub {
            scalar $C->deleteIfLowerThan( { %$args, DataSource => 'dbi:Pg:dbname=x;host=127.0.0.1;port=' . PgServer::free_port(),
                    FailoverTimeout => 0.5, ConnectTimeout => 0.2 }, $llng );
        }
    );
    is( $r, 0, 'no server: 0' );
    like( $err, qr/deleteIfLowerThan failed: table sessions: no writable leader within FailoverTimeout .*Connection refused/,
        '... after the failover budget, with the reason' );
}

done_testing;
