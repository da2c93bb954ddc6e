# Secrets in the inputs a review found printed (issue 12, item 4): a
# DataSource key that holds a secret without being spelt "password"
# (sslpassword, MyPassword, a misspelt pasword, an unknown key), in a valid
# DataSource and in one that does not parse; a ',' inside a PatroniUrl
# password (the list was split there, printing half of it unmasked); a user
# name alone in a URL (a token).  Each goes through the public API: the
# tie's error, status(), and the operator tool.  Everything the module
# shows is collected (the exception, warnings, STDERR at the
# file-descriptor level, the tool's output) and no secret may appear in it,
# nor any 5 characters of one, nor a part of one cut at the ','.
# No PostgreSQL is needed: the DataSource points at a port where nothing
# listens, and the Patroni API is a local fake.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Fd2Capture;
use FakePatroni;
use PgServer ();
use Apache::Session::Browseable::Patroni;
use JSON::PP ();

my $SSLPW    = 'Sk3+Wq_8vN';      # sslpassword=
my $MYPW     = 'My4-Ut_7dE';      # MyPassword= (a key containing "password")
my $MISSPELT = 'Mz5!Rb_2cQ';      # pasword= (misspelt)
my $UNKNOWN  = 'Uk6~Hf_3pL';      # frobnicate= (an unknown key)
my $COMMA    = 'Cm8,Jx4_Pe9';     # a URL password with a comma
my $TOKEN    = 'Tk9Yb2Qw7xRe';    # a URL user name alone: a token
my $SPACED   = 'Sw2q Qk8_Rn6';    # an unquoted password with a space
my $API_USER = 'apiuser';

my @secrets = ( $SSLPW, $MYPW, $MISSPELT, $UNKNOWN, $COMMA, $TOKEN, $SPACED );
my @forbidden;
for my $s (@secrets) {
    ( my $enc = $s ) =~ s/([^A-Za-z0-9\-._~])/sprintf '%%%02X', ord $1/ge;
    push @forbidden, $s, $enc;
    for my $f ( $s, $enc ) {
        push @forbidden, substr( $f, $_, 5 ) for 0 .. length($f) - 5;
    }
}
push @forbidden, split( /,/, $COMMA ), split( / /, $SPACED );    # the halves
my %seen;
@forbidden = grep { length >= 3 && !$seen{$_}++ } @forbidden;

my $C    = 'Apache::Session::Browseable::Patroni';
my $dead = PgServer::free_port();
my $ds   = "dbi:Pg:dbname=sessions;host=127.0.0.1;port=$dead";
my %base = ( DataSource => $ds, UserName => 'llng', FailoverTimeout => 0.5, ConnectTimeout => 0.5,
    PatroniTimeout => 0.5 );

# STDERR (fd 2) to a private file for the whole test; Test::More keeps the real one.
my $fd2 = Fd2Capture->start;
my @warnings;
$SIG{__WARN__} = sub { push @warnings, $_[0]; print STDERR "WARN: $_[0]" };
sub new_log { $fd2->new_text }

my $all = '';
my $n_paths = 0;

# Runs code; what it died with, returned (as text), warned and logged must
# match $expect and hold no secret.
sub scenario {
    my ( $name, $expect, $code ) = @_;
    my $w0  = @warnings;
    my $ret = eval { $code->() };
    my $out = ( defined $ret ? "$ret\n" : '' ) . ( $@ // '' ) . new_log()
      . join( '', @warnings[ $w0 .. $#warnings ] );
    $all .= $out;
    $n_paths++;
    like( $out, $expect, "$name: the expected path was taken" )
      or diag( "got: " . substr( $out, 0, 600 ) );
    my @found = grep { index( $out, $_ ) >= 0 } @forbidden;
    ok( !@found, "$name: no secret in the exception, warnings or STDERR" )
      or diag( "found '" . join( "', '", @found ) . "' in: " . substr( $out, 0, 800 ) );
}

sub tie_once {
    my (%o) = @_;
    tie( my %s, $C, undef, { %base, %o } );
    $s{x} = 1;
    untie %s;
    return;
}

# status() as text (canonical JSON).
sub status_text {
    my (%o) = @_;
    return JSON::PP->new->canonical->allow_nonref->encode( $C->status( { %base, %o } ) );
}

# ---- DataSource keys that hold a secret -------------------------------------
scenario( 'unknown key next to sslpassword', qr/unknown connection parameter 'frobnicate'/,
    sub { tie_once( DataSource => "$ds;sslpassword=$SSLPW;frobnicate=$UNKNOWN" ) } );
scenario( 'misspelt pasword', qr/unknown connection parameter 'pasword'/,
    sub { tie_once( DataSource => "$ds;pasword=$MISSPELT" ) } );
scenario( 'misspelt pasword, quoted, upper case', qr/unknown connection parameter 'pasword'/,
    sub { tie_once( DataSource => "$ds;PASWORD = '$MISSPELT'" ) } );
scenario( 'a key containing Password', qr/unknown connection parameter 'mypassword'/,
    sub { tie_once( DataSource => "$ds;MyPassword=$MYPW" ) } );
scenario( 'misspelt pasword, then a syntax error', qr/Invalid DataSource.*key=value/,
    sub { tie_once( DataSource => "$ds;pasword=$MISSPELT;oops" ) } );
scenario( 'a syntax error, then an unterminated sslpassword', qr/Invalid DataSource/,
    sub { tie_once( DataSource => "$ds;oops sslpassword='$SSLPW" ) } );
scenario( 'another driver, misspelt', qr/Invalid DataSource.*dbi:Pg:/,
    sub { tie_once( DataSource => "dbi:mysql:dbname=x;pasword=$MISSPELT" ) } );
scenario( 'an unquoted password with a space', qr/Invalid DataSource.*key=value/,
    sub { tie_once( DataSource => "$ds;password=$SPACED;application_name=x" ) } );
scenario( 'the same after a syntax error', qr/Invalid DataSource.*key=value/,
    sub { tie_once( DataSource => "$ds;oops sslpassword=$SPACED" ) } );
scenario( 'sslpassword on a dead server', qr/cannot connect to DataSource|FailoverTimeout/,
    sub { tie_once( DataSource => "$ds;sslpassword=$SSLPW" ) } );
scenario( 'sslpassword in status()', qr/"datasource":"dbi:Pg:[^"]*sslpassword=\*\*\*/,
    sub { status_text( DataSource => "$ds;sslpassword='$SSLPW';application_name=st" ) } );

# ---- PatroniUrl -------------------------------------------------------------
my $s500  = FakePatroni->new( status => 500, body => 'no' );
my $port  = $s500->port;
my $comma = "http://$API_USER:$COMMA\@127.0.0.1:$port/cluster";
my $token = "http://$TOKEN\@127.0.0.1:$port/cluster";
my $app   = 0;
sub api {
    my ( $name, $expect, $urls ) = @_;
    my $dsx = "$ds;application_name=u" . ++$app;    # no cache, no breaker from before
    scenario( "API: $name", $expect, sub { tie_once( DataSource => $dsx, PatroniUrl => $urls ) } );
}
api( 'a comma in the password', qr/Bad response from http:\/\/$API_USER:\*\*\*\@127/, $comma );
api( 'a token as user name', qr/Bad response from http:\/\/\*\*\*\@127/, $token );
# Other ports: the module prints a given line at most once per 10 s.
for my $sep ( ', ', ',' ) {
    my @srv = map { FakePatroni->new( status => 500, body => 'no' ) } 1 .. 2;
    my ( $p2, $p3 ) = map { $_->port } @srv;
    api( "both, in a list separated by '$sep'",
        qr/Bad response from http:\/\/$API_USER:\*\*\*\@127.0.0.1:$p2\/cluster: HTTP 500.*Bad response from http:\/\/\*\*\*\@127.0.0.1:$p3\/cluster: HTTP 500/s,
        "http://$API_USER:$COMMA\@127.0.0.1:$p2/cluster${sep}http://$TOKEN\@127.0.0.1:$p3/cluster" );
}

my $st;
scenario( 'status(): a comma in the password', qr/\*\*\*/, sub {
    $st = $C->status( { %base, DataSource => "$ds;application_name=s1", PatroniUrl => "$comma , $token" } );
    JSON::PP->new->canonical->encode($st);
} );
is_deeply( $st->{patroni_urls},
    [ "http://$API_USER:***\@127.0.0.1:$port/cluster", "http://***\@127.0.0.1:$port/cluster" ],
    'status(): two URLs, not three: the list is not split inside the password' );
$st = $C->status( { %base, DataSource => "$ds;application_name=s2",
    PatroniUrl => "http://a:8008/cluster,http://b:8008/cluster  https://c:8008/cluster" } );
is_deeply( $st->{patroni_urls}, [ 'http://a:8008/cluster', 'http://b:8008/cluster', 'https://c:8008/cluster' ],
    'status(): URLs without credentials are still split at commas and spaces' );
$st = $C->status( { %base, DataSource => "$ds;application_name=s3", PatroniUrl => 'a:8008, b:8008' } );
is_deeply( $st->{patroni_urls}, [ 'a:8008', 'b:8008' ], 'status(): and so are URLs without a scheme' );

# ---- the operator tool ------------------------------------------------------
sub tool {
    my ( $name, $expect, @set ) = @_;
    my @a = ( '--no-check', map { ( '--set', $_ ) } 'UserName=llng', 'FailoverTimeout=0.5',
        'ConnectTimeout=0.5', 'PatroniTimeout=0.5', @set );
    scenario( "tool: $name", $expect, sub {
        local $ENV{ASBP_PASSWORD} = 'x';
        my $out = `$^X -Mblib bin/asbp-patroni @{[ map { quotemeta } @a ]} 2>&1`;
        "exit " . ( $? >> 8 ) . "\n$out";
    } );
}
tool( 'misspelt pasword', qr/exit [1-9].*unknown connection parameter 'pasword'/s,
    "DataSource=$ds;pasword=$MISSPELT" );
tool( 'sslpassword, comma and token URLs', qr/exit [1-9]/,
    "DataSource=$ds;sslpassword=$SSLPW", "PatroniUrl=$comma $token" );

my @found = grep { index( $all, $_ ) >= 0 } @forbidden;
ok( !@found, "no secret anywhere in $n_paths paths (" . length($all) . " bytes of output)" )
  or diag("found: @found");
done_testing;
