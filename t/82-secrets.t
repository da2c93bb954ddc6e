# No secret in any output: every error path we can provoke, with a known
# password in the Password option, another in the DataSource
# (password=...), and API credentials in PatroniUrl (user:pass@host).
# Everything the module can show is collected: exceptions, warnings, and
# STDERR at the file-descriptor level (the module logs there; libpq or
# libcurl could too).  No secret may appear in it: not as given, not
# URL-encoded or decoded, not any 6 characters of it, not in an HTTP
# Basic authorization value.  The same with ASBP_TRACE=1 (connection
# labels, Patroni URLs and SQL in the trace), in a child perl.
use strict;
use File::Temp ();
use warnings;
use Test::More;
use lib 't/lib';
use Fd2Capture;
use PgServer;
use FakePatroni;
use TestCA ();
use Apache::Session::Browseable::Patroni;
use MIME::Base64 ();
use JSON::PP ();

# The secrets: unusual enough that no other text contains them, with
# characters that URL encoding changes.
my $PW      = 'Pw7!kq#Zr2';                 # Password option (the real one)
my $DSN_PW  = 'Dz4+Tw_9xV';                 # password=... in the DataSource
my $DSN_PWQ = 'Qx8; Lm!3o';                 # the same, quoted: 'Qx8; Lm!3o'
my $API_USER = 'apiuser';
my $API_PW   = 'Ap9!Yt%Hn4';                # decoded form
( my $API_PW_URL = $API_PW ) =~ s/([^A-Za-z0-9\-._~])/sprintf '%%%02X', ord $1/ge;

my $pg = PgServer->start_or_skip( password => $PW );
my $C  = 'Apache::Session::Browseable::Patroni';
my $ds = $pg->dsn;
my $dead = PgServer::free_port();
my $dead_ds = "dbi:Pg:dbname=sessions;host=127.0.0.1;port=$dead";
my %base = ( $pg->options, FailoverTimeout => 1, ConnectTimeout => 1 );

sub api_url {
    my ( $srv, %o ) = @_;
    my $scheme = $o{tls} ? 'https' : 'http';
    my $port   = ref $srv ? $srv->port : $srv;
    return "$scheme://$API_USER:$API_PW_URL\@127.0.0.1:$port/cluster";
}

# Every form a secret could leak in.
my @forbidden;
for my $s ( $PW, $DSN_PW, $DSN_PWQ, $API_PW, $API_PW_URL ) {
    ( my $enc = $s ) =~ s/([^A-Za-z0-9\-._~])/sprintf '%%%02X', ord $1/ge;
    ( my $plus = $enc ) =~ s/%20/+/g;
    push @forbidden, $s, $enc, $plus;
    # Any part of 6 characters: the start, the end, the middle.
    for my $f ( $s, $enc ) {
        push @forbidden, substr( $f, $_, 6 ) for 0 .. length($f) - 6;
    }
}
push @forbidden, MIME::Base64::encode_base64( "$API_USER:$API_PW", '' ),
  substr( MIME::Base64::encode_base64( "$API_USER:$API_PW", '' ), 0, 12 );
my %seen;
@forbidden = grep { !$seen{$_}++ } @forbidden;

# STDERR (fd 2) to a private file for the whole test; Test::More keeps the real one.
my $fd2 = Fd2Capture->start;
my @warnings;
$SIG{__WARN__} = sub { push @warnings, $_[0]; print STDERR "WARN: $_[0]" };
sub new_log { $fd2->new_text }

my $all = '';
my $n_paths = 0;

# Runs one scenario: the code dies (or not), the exception and what was
# logged meanwhile are checked; $expect says which error path was taken.
sub scenario {
    my ( $name, $expect, $code ) = @_;
    my $w0  = @warnings;
    my $ok  = eval { $code->(); 1 };
    my $err = $ok ? '' : "$@";
    my $out = $err . new_log() . join( '', @warnings[ $w0 .. $#warnings ] );
    $all .= $out;
    $n_paths++;
    like( $out, $expect, "$name: the expected error path was taken" )
      or diag( "got: " . substr( $out, 0, 600 ) );
    my @found = grep { index( $out, $_ ) >= 0 } @forbidden;
    ok( !@found, "$name: no secret in the exception, warnings or STDERR" )
      or diag( "found '" . join( "', '", @found ) . "' in: " . substr( $out, 0, 800 ) );
}

sub tie_once {
    my ( $args, $id ) = @_;
    tie( my %s, $C, $id, $args );
    $s{x} = 1;
    untie %s;
}

# ---- DataSource and options ---------------------------------------------
for my $bad (
    "dbi:Pg:dbname=x;password=$DSN_PW;oops",
    "dbi:mysql:dbname=x;password=$DSN_PW",
    "dbi:Pg:password='$DSN_PWQ",
    "dbi:Pg:dbname='a'password=$DSN_PW;oops",
    "dbi:Pg:application_name='x password=y'password='$DSN_PWQ';oops",
    "dbi:Pg:PASSWORD = '$DSN_PWQ' dbname=x =y",
    "DBI:Pg(RaiseError=>1):password=$DSN_PW;;port",
  )
{
    ( my $shown = $bad ) =~ s/\Q$DSN_PW\E|\Q$DSN_PWQ\E/SECRET/g;
    scenario( "bad DataSource $shown", qr/Invalid DataSource/,
        sub { tie_once( { %base, DataSource => $bad } ) } );
}
scenario( 'unknown connection parameter', qr/unknown connection parameter 'frobnicate'/,
    sub { tie_once( { %base, DataSource => "$ds;password=$DSN_PW;frobnicate=1" } ) } );
scenario( 'bad option value', qr/invalid PatroniTimeout/,
    sub { tie_once( { %base, DataSource => "$ds;password=$DSN_PW", PatroniTimeout => 'soon',
        PatroniUrl => api_url(1) } ) } );
scenario( 'bad TableName', qr/Invalid TableName/,
    sub { tie_once( { %base, DataSource => "$ds;password=$DSN_PW", TableName => "x;$PW" =~ s/\W//gr . '"' } ) } );

# ---- the server refuses ---------------------------------------------------
scenario( 'wrong Password', qr/password authentication failed/,
    sub { tie_once( { %base, Password => $PW . 'x' } ) } );
scenario( 'wrong DataSource password', qr/password authentication failed/,
    sub { tie_once( { %base, Password => undef, DataSource => "$ds;password=$DSN_PW" } ) } );
scenario( 'wrong quoted DataSource password', qr/password authentication failed/,
    sub { tie_once( { %base, Password => undef, DataSource => "$ds;password='$DSN_PWQ'" } ) } );
scenario( 'no password at all', qr/password|authentication/i,
    sub { tie_once( { %base, Password => undef } ) } );
scenario( 'unknown database', qr/nosuchdb/,
    sub { tie_once( { %base, DataSource => ( $ds =~ s/dbname=sessions/dbname=nosuchdb/r ) . ";password=$DSN_PW" } ) } );
scenario( 'missing table', qr/nosuchtable/,
    sub { tie_once( { %base, DataSource => "$ds;password=$DSN_PW", TableName => 'nosuchtable' } ) } );
scenario( 'missing id', qr/Object does not exist/,
    sub { tie_once( { %base, DataSource => "$ds;password=$DSN_PW" }, 'ab' x 32 ) } );
scenario( 'dead server', qr/cannot connect to DataSource|FailoverTimeout/,
    sub { tie_once( { %base, DataSource => "$dead_ds;password=$DSN_PW", FailoverTimeout => 0.5 } ) } );
scenario( 'dead server, a quoted value that looks like a password', qr/cannot connect to DataSource|FailoverTimeout/,
    sub { tie_once( { %base, DataSource => "$dead_ds;application_name='x password=y'password='$DSN_PWQ'",
        FailoverTimeout => 0.5 } ) } );
scenario( 'dead server, quoted password', qr/cannot connect to DataSource|FailoverTimeout/,
    sub { tie_once( { %base, DataSource => "$dead_ds;password='$DSN_PWQ';application_name=q", FailoverTimeout => 0.5 } ) } );

# ---- bad Patroni API answers (the DataSource is dead: discovery runs) ------
sub cluster_json {
    my (%o) = @_;
    my @m = map { { name => "n$_", role => 'replica', state => 'running', host => '127.0.0.1', port => $dead } } 1 .. 2;
    unshift @m, { name => 'n0', role => 'leader', state => $o{state} // 'running', host => '127.0.0.1',
        port => $o{port} // $pg->port } if $o{leader};
    return JSON::PP::encode_json( { members => \@m } );
}
my %api_args = ( %base, FailoverTimeout => 1, PatroniTimeout => 0.5 );
my $app = 0;
sub api_scenario {
    my ( $name, $expect, $url, %o ) = @_;
    # A DataSource of its own per scenario: no cache, no breaker from before.
    my $dsx = "$dead_ds;password=$DSN_PW;application_name=s" . ++$app;
    scenario( "API: $name", $expect,
        sub { tie_once( { %api_args, DataSource => $dsx, PatroniUrl => $url, %o } ) } );
}
{
    my $s500 = FakePatroni->new( status => 500, body => "error for $API_USER" );
    api_scenario( 'HTTP 500', qr/Patroni API unavailable|Bad response|500/, api_url($s500) );
    my $garbage = FakePatroni->new( body => "<html>garbage</html>" );
    api_scenario( 'garbage', qr/Patroni API unavailable|Bad response|bad JSON|not a \/cluster/, api_url($garbage) );
    my $noleader = FakePatroni->new( body => cluster_json() );
    api_scenario( 'no leader', qr/No leader found/, api_url($noleader) );
    my $stopping = FakePatroni->new( body => cluster_json( leader => 1, state => 'stopping' ) );
    api_scenario( 'leader not running', qr/not in running state/, api_url($stopping) );
    my $nohost = FakePatroni->new( body => '{"members":[{"role":"leader","host":"","port":0}]}' );
    api_scenario( 'leader without address', qr/missing host or port/, api_url($nohost) );
    my $hang = FakePatroni->new( mode => 'hang' );
    api_scenario( 'hanging API', qr/Patroni API unavailable|timed? ?out|Timeout/i, api_url($hang) );
    my $close = FakePatroni->new( mode => 'close' );
    api_scenario( 'API closes the connection', qr/Patroni API unavailable|Bad response|empty/i, api_url($close) );
    my $redirect = FakePatroni->new( status => 301, body => '',
        headers => { Location => "http://$API_USER:$API_PW_URL\@127.0.0.1:1/x" } );
    api_scenario( 'redirect', qr/Patroni API unavailable|Bad response|301/, api_url($redirect) );
    api_scenario( 'refused', qr/Patroni API unavailable|refused|connect/i, api_url( FakePatroni::refused_url() =~ m{:(\d+)/} ? $1 : 1 ) );
    api_scenario( 'two endpoints, both bad', qr/Patroni API unavailable/,
        join( ', ', api_url($s500), api_url($hang) ) );
    api_scenario( 'odd URL', qr/Patroni|URL|unsupported|protocol/i,
        "ftp://$API_USER:$API_PW_URL\@127.0.0.1:1/cluster" );
    api_scenario( 'URL with a raw @ in the password', qr/Patroni|refused|connect/i,
        "http://$API_USER:$API_PW\@x\@127.0.0.1:1/cluster" );

    # A leader that answers but is a dead port: "reconnected" never comes,
    # the connection error names the DataSource.
    my $deadleader = FakePatroni->new( body => cluster_json( leader => 1, port => $dead ) );
    api_scenario( 'leader unreachable', qr/cannot connect|FailoverTimeout/, api_url($deadleader) );

    # Discovery that works: the recovery is logged with the first error
    # (which names the DataSource).
    my $good = FakePatroni->new( body => cluster_json( leader => 1 ) );
    api_scenario( 'discovery succeeds', qr/reconnected to 127\.0\.0\.1:${\ $pg->port }/, api_url($good) );

    # Circuit breaker: the API fails once, the next attempt does not ask it.
    my $dsb = "$dead_ds;password=$DSN_PW;application_name=breaker";
    my %b = ( %api_args, DataSource => $dsb, PatroniUrl => api_url($s500), PatroniCircuitBreakerDelay => 30 );
    scenario( 'breaker trips', qr/Patroni API unavailable|Bad response/, sub { tie_once( {%b} ) } );
    # The breaker's line is printed once per 10 s (numbers aside) and the
    # scenario before printed it: the counter shows this one's path.
    my $skipped = sub {
        my ($a) = @_;
        my $k = $C->status($a)->{counters}{breaker_skips};
        my $e = eval { tie_once($a); 1 } ? '' : $@;
        die $e . ( $C->status($a)->{counters}{breaker_skips} > $k ? "(breaker skipped the API)\n" : '' );
    };
    scenario( 'breaker active', qr/Circuit breaker active|breaker skipped the API/, sub { $skipped->( {%b} ) } );

    # Cached leader: learnt from a good answer; then the API fails and the
    # server goes away: the cached leader is tried (and fails).
    my $flip = FakePatroni->new( body => cluster_json( leader => 1 ) );
    my %c = ( %api_args, DataSource => "$dead_ds;password=$DSN_PW;application_name=cache",
        PatroniUrl => api_url($flip), PatroniCircuitBreakerDelay => 30, PatroniCacheTTL => 60 );
    scenario( 'cache: first discovery', qr/reconnected/, sub { tie_once( {%c} ) } );
    $flip->set_answer( 'oops', 500 );
    $pg->stop;
    scenario( 'cache: API down, cached leader down', qr/using cached leader/, sub { tie_once( {%c} ) } );
    scenario( 'cache: breaker active, cached leader down', qr/Circuit breaker active|breaker skipped the API/,
        sub { $skipped->( {%c} ) } );
    $pg->start;
}

# ---- TLS -----------------------------------------------------------------
SKIP: {
    TestCA::skip_unless_available( 16, https => 1 );    # 8 scenarios, 2 tests each
    my $pki = FakePatroni::pki();
    my $tls = FakePatroni->new( body => cluster_json( leader => 1 ),
        tls => { cert => $pki->{server_crt}, key => $pki->{server_key} } );
    api_scenario( 'TLS: unknown CA', qr/Patroni API unavailable|certificate|SSL/i, api_url( $tls, tls => 1 ) );
    my $self = FakePatroni->new( body => cluster_json( leader => 1 ),
        tls => { cert => $pki->{self_crt}, key => $pki->{self_key} } );
    api_scenario( 'TLS: self-signed', qr/Patroni API unavailable|certificate|SSL/i, api_url( $self, tls => 1 ),
        PatroniSSLCAFile => $pki->{ca_crt} );
    my $wrong = FakePatroni->new( body => cluster_json( leader => 1 ),
        tls => { cert => $pki->{wrong_crt}, key => $pki->{wrong_key} } );
    api_scenario( 'TLS: wrong host name', qr/Patroni API unavailable|certificate|SSL|host/i,
        api_url( $wrong, tls => 1 ), PatroniSSLCAFile => $pki->{ca_crt} );
    my $mtls = FakePatroni->new( body => cluster_json( leader => 1 ),
        tls => { cert => $pki->{server_crt}, key => $pki->{server_key}, client_ca => $pki->{client_ca_crt} } );
    api_scenario( 'TLS: client certificate required, none given', qr/Patroni API unavailable|SSL|alert|certificate/i,
        api_url( $mtls, tls => 1 ), PatroniSSLCAFile => $pki->{ca_crt} );
    api_scenario( 'TLS: verification off (warned)', qr/PatroniVerifySSL is off/,
        api_url( $tls, tls => 1 ), PatroniVerifySSL => 0 );
    api_scenario( 'TLS: missing CA file', qr/Patroni API unavailable|CA|certificate|SSL/i,
        api_url( $tls, tls => 1 ), PatroniSSLCAFile => "/nonexistent/$API_PW_URL.pem" );
    api_scenario( 'plain HTTP to a TLS port', qr/Patroni API unavailable|Bad response|empty|reset|closed/i,
        api_url($tls) );
    api_scenario( 'TLS to a plain HTTP port', qr/Patroni API unavailable|SSL|TLS|wrong version/i,
        api_url( FakePatroni->new( body => cluster_json( leader => 1 ) ), tls => 1 ) );
}

# ---- class methods ----------------------------------------------------------
scenario( 'searchOn: wrong password', qr/password authentication failed/,
    sub { my $r = $C->searchOn( { %base, Password => $PW . 'x' }, 'uid', 'x' );
          die "searchOn: no error\n" if $r && %$r } );
{
    # searchOn itself, not a tie: the DataSource is dead, the API answers 500.
    my $s500 = FakePatroni->new( status => 500, body => "error for $API_USER" );
    my $dsx  = "$dead_ds;password=$DSN_PW;application_name=s" . ++$app;
    # It dies with the connection error and logs the API failure (with the
    # URL masked) on STDERR.
    my $masked = "http://$API_USER:***\@127.0.0.1:" . $s500->port . '/cluster';
    my $died   = qr/\AApache::Session::Browseable::Patroni: no writable leader within FailoverTimeout .*cannot connect to DataSource.*\n/;
    my $logged = qr/.*\Q] warning: Bad response from $masked: HTTP 500\E\n.*Patroni API unavailable for DataSource/s;
    scenario( 'searchOn through a failing API', qr/$died$logged/,
        sub { $C->searchOn( { %api_args, DataSource => $dsx, PatroniUrl => api_url($s500) }, 'uid', 'x' );
              die "searchOn: no error\n" } );
}

# ---- with ASBP_TRACE=1 ------------------------------------------------------
# The trace prints connection labels, URLs and SQL.  It is read once, when
# the module is loaded, so the cases run in a child perl with ASBP_TRACE=1
# in its environment; everything it prints (STDOUT and STDERR) is checked.
{
    my $good  = FakePatroni->new( body => cluster_json( leader => 1 ) );
    my $bad   = FakePatroni->new( status => 500, body => "error for $API_USER" );
    my %viaapi = ( %api_args, Password => $PW );
    my @cases = (
        [ 'direct tie', 'tie', { %base }, 'ok' ],
        [ 'wrong DataSource password', 'tie', { %base, Password => undef, DataSource => "$ds;password=$DSN_PW" },
          'password authentication failed' ],
        [ 'wrong quoted DataSource password', 'tie', { %base, Password => undef, DataSource => "$ds;password='$DSN_PWQ'" },
          'password authentication failed' ],
        [ 'tie through the API', 'tie', { %viaapi, DataSource => "$dead_ds;application_name=t1", PatroniUrl => api_url($good) },
          'ok' ],
        [ 'searchOn through the API', 'searchOn',
          { %viaapi, DataSource => "$dead_ds;application_name=t2", PatroniUrl => api_url($good) }, 'ok' ],
        [ 'searchOn through a failing API', 'searchOn',
          { %viaapi, DataSource => "$dead_ds;password=$DSN_PW;application_name=t3", PatroniUrl => api_url($bad) },
          'no writable leader within FailoverTimeout' ],
        [ 'purge', 'purge', { %base }, 'ok' ],
    );
    my $script_tmp = File::Temp->new( TEMPLATE => 'asbp-secrets-trace-XXXXXXXX', SUFFIX => '.pl', TMPDIR => 1 );
    my $script = $script_tmp->filename;
    open my $fh, '>', $script or die "$script: $!";
    print $fh <<'CHILD';
use strict; use warnings; use JSON::PP (); use Apache::Session::Browseable::Patroni;
my $C = 'Apache::Session::Browseable::Patroni';
$SIG{__WARN__} = sub { print STDERR "WARN: $_[0]" };
for my $case ( @{ JSON::PP::decode_json( $ENV{ASBP_T_CASES} ) } ) {
    my ( $name, $what, $args ) = @$case;
    my $ok = eval {
        if ( $what eq 'tie' ) {
            tie my %s, $C, undef, $args; $s{x} = 1; my $id = $s{_session_id}; untie %s;
            tie %s, $C, $id, $args; tied(%s)->delete; untie %s;
        }
        elsif ( $what eq 'searchOn' ) { $C->searchOn( $args, 'uid', 'nobody' ) }
        else { $C->deleteIfLowerThan( $args, { or => { _utime => 1 } } ) or die "deleteIfLowerThan failed\n" }
        1;
    };
    print STDERR "case $name: ", ( $ok ? "ok\n" : "error: $@" );
}
CHILD
    close $fh;
    my $out = do {
        local $ENV{ASBP_TRACE}   = 1;
        local $ENV{ASBP_T_CASES} = JSON::PP::encode_json( \@cases );
        `$^X -Mblib $script 2>&1`;
    };
    my $status = $?;
    unlink $script;
    $all .= $out;
    $n_paths++;
    is( $status, 0, 'ASBP_TRACE=1: the child perl ran every case' ) or diag( substr( $out, -800 ) );
    for (@cases) {
        my ( $name, $expect ) = @$_[ 0, 3 ];
        my $re = $expect eq 'ok' ? qr/^case \Q$name\E: ok$/m : qr/^case \Q$name\E: error: .*\Q$expect\E/m;
        like( $out, $re, "ASBP_TRACE=1, $name: $expect" );
    }
    # the trace did print what could carry a secret
    like( $out, qr/trace: pid \d+: PQconnectStartParams DataSource dbi:Pg:/, 'the trace printed connection labels' );
    like( $out, qr/trace: pid \d+: PQconnectStartParams DataSource [^\n]*;password=\*\*\*/,
        '... among them DataSources with a password (masked)' );
    like( $out, qr/trace: pid \d+: discovery: GET https?:\/\/\Q$API_USER\E:\*\*\*\@/, '... Patroni URLs with credentials (masked)' );
    like( $out, qr/trace: pid \d+: discovery: \S+ finished: curl \d+, HTTP 500/, '... the failing API\'s answer' );
    like( $out, qr/trace: pid \d+: pipeline of \d+ to \S+: (BEGIN|SELECT|INSERT|UPDATE|DELETE)/, '... tie SQL' );
    like( $out, qr/trace: pid \d+: browse on \S+: SELECT /,            '... browse SQL' );
    like( $out, qr/trace: pid \d+: deleteIfLowerThan on \S+: DELETE /, '... purge SQL' );
    my @found = grep { index( $out, $_ ) >= 0 } @forbidden;
    ok( !@found, 'ASBP_TRACE=1: no secret in ' . ( () = $out =~ /trace:/g ) . ' trace lines' )
      or diag( "found '" . join( "', '", @found ) . "'" );
}

# Everything at once, and the count of paths (a scenario list that
# shrinks by accident shows here).
my @found = grep { index( $all, $_ ) >= 0 } @forbidden;
ok( !@found, "no secret anywhere in $n_paths error paths (" . length($all) . " bytes of output)" )
  or diag("found: @found");
cmp_ok( $n_paths, '>=', 40, 'every error path ran' );
if ( $ENV{ASBP_KEEP_LOGS} ) {
    my $keep = File::Temp->new( TEMPLATE => 'asbp-secrets-output-XXXXXXXX', SUFFIX => '.txt', TMPDIR => 1, UNLINK => 0 );
    my $f = $keep->filename;
    open my $fh, '>', $f or die "$f: $!";
    print $fh $all;
    diag("all output kept in $f");
}
done_testing;
