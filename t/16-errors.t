# Errors an operator can act on: they name the DataSource and the server,
# never show the password, and do not wait for the failover budget when
# waiting cannot help (wrong password, unknown database, missing table).
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use PgServer;
use ToolCheck;
use Apache::Session::Browseable::Patroni;
use Time::HiRes qw(time);

my $pg  = PgServer->start_or_skip;
my $C   = 'Apache::Session::Browseable::Patroni';
my $PW  = 'S3cr3t-pa55word';
my %ok  = $pg->options;
$pg->psql_super("ALTER ROLE llng PASSWORD '$PW'");
$ok{Password} = $PW;

# Time bounds: stretched under valgrind or a sanitizer (and budgets with
# them, so that "at once" still means "before the budget").
my $SLOW = ToolCheck::slow();

my @warnings;
$SIG{__WARN__} = sub { push @warnings, @_ };

sub attempt {
    my ( $args, $id ) = @_;
    my $t0 = time;
    my $ok = eval { tie( my %s, $C, $id, $args ); $s{x} = 1; untie %s; 1 };
    return ( $ok ? '' : $@, time - $t0 );
}

sub no_secret {
    my ( $what, $text ) = @_;
    unlike( $text, qr/\Q$PW\E/, "$what: no password in the message" );
}

# bad DataSource
for my $ds ( "dbi:mysql:dbname=x;password=$PW", "dbi:Pg:dbname=x;password=$PW;oops",
    "dbi:Pg:password='$PW" )
{
    my ($err) = attempt( { %ok, DataSource => $ds } );
    like( $err, qr/Invalid DataSource/, "bad DataSource refused: " . ( $ds =~ s/\Q$PW\E/***/r ) );
    no_secret( 'bad DataSource', $err );
}
{
    my ($err) = attempt( { %ok, DataSource => undef } );
    like( $err, qr/No DataSource given/, 'missing DataSource' );
}

# an unknown libpq parameter
{
    my ( $err, $dt ) = attempt( { %ok, DataSource => $ok{DataSource} . ";password=$PW;frobnicate=1" } );
    like( $err, qr/unknown connection parameter 'frobnicate'/, 'unknown connection parameter named' );
    cmp_ok( $dt, '<', 1.0 * $SLOW, 'reported at once' );
    no_secret( 'unknown parameter', $err );
}

# wrong password: reported at once, not retried for the whole budget
{
    my ( $err, $dt ) = attempt( { %ok, Password => 'wrong-' . $PW, FailoverTimeout => 3 * $SLOW } );
    like( $err, qr/password authentication failed/, 'wrong password: libpq says so' );
    like( $err, qr/DataSource dbi:Pg:dbname=sessions;host=127\.0\.0\.1;port=\d+/, 'names the DataSource' );
    like( $err, qr/SQLSTATE 28P01/, 'carries the SQLSTATE' );
    no_secret( 'wrong password', $err );
    cmp_ok( $dt, '<', 1.0 * $SLOW, 'reported without waiting for FailoverTimeout' );
}

# unknown database: reported at once
{
    my $ds = $ok{DataSource} =~ s/dbname=sessions/dbname=nosuchdb/r;
    my ( $err, $dt ) = attempt( { %ok, DataSource => $ds, FailoverTimeout => 3 * $SLOW } );
    like( $err, qr/nosuchdb.*does not exist|does not exist.*nosuchdb/, 'unknown database named' );
    cmp_ok( $dt, '<', 1.0 * $SLOW, 'reported without waiting' );
}

# missing table: the SQL error with its SQLSTATE and the table
{
    my ( $err, $dt ) = attempt( { %ok, TableName => 'nosuchtable' } );
    like( $err, qr/relation "nosuchtable" does not exist/, 'missing table named' );
    like( $err, qr/42P01/, 'SQLSTATE 42P01' );
    cmp_ok( $dt, '<', 1.0 * $SLOW, 'reported at once' );
}

# dead server: bounded by FailoverTimeout, names the DataSource
{
    my $port = PgServer::free_port();
    my ( $err, $dt ) = attempt( { %ok, DataSource => "dbi:Pg:dbname=x;host=127.0.0.1;port=$port;password=$PW",
        FailoverTimeout => 0.8 } );
    like( $err, qr/cannot connect to DataSource dbi:Pg:dbname=x;host=127\.0\.0\.1;port=$port;password=\*\*\*/,
        'dead server: DataSource named, password masked' );
    like( $err, qr/Connection refused/, 'says why' );
    no_secret( 'dead server', $err );
    cmp_ok( $dt, '>=', 0.7, 'kept trying for the budget' );
    cmp_ok( $dt, '<', 2.0 * $SLOW, 'and no longer' );
}

# a duplicate id (creation with a given id that exists) is a clear SQL error
{
    tie my %s, $C, undef, {%ok};
    my $id = $s{_session_id};
    untie %s;
    package Dup;
    use parent -norequire, 'Apache::Session::Browseable::Patroni';
    sub populate { my $self = shift->SUPER::populate(@_); my $id = $self->{args}{setId};
        $self->{generate} = sub { $_[0]{data}{_session_id} = $id }; $self }
    package main;
    my $err = eval { tie my %t, 'Dup', undef, { %ok, setId => $id }; 1 } ? '' : $@;
    like( $err, qr/duplicate key value/, 'duplicate id reported' );
    like( $err, qr/23505/, 'with SQLSTATE 23505' );
}

no_secret( 'warnings', join '', @warnings );
done_testing;
