use strict;
use warnings;

# Leader discovery against real sockets: fake Patroni servers (t/lib/
# FakePatroni.pm) behind the C probe t/c/bin/discover_probe, which runs
# asbp_discover() once and prints the result.

my $probe = 't/c/bin/discover_probe';
-x $probe or do { print "1..1\nnot ok 1 - $probe not built (run make)\n"; exit 1 };

use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp qw(tempfile);
use POSIX ();
use Test::More;
use Time::HiRes ();

use FakePatroni;
use TestCA ();

my $PW = $FakePatroni::PASSWORD;

# ASBP_PROBE_WRAPPER runs the probe under a tool, e.g.
#   ASBP_PROBE_WRAPPER='valgrind -q --leak-check=full --error-exitcode=9
#   --log-file=/tmp/vg.%p' prove t/31-discovery.t
# (timing assertions may then fail: the tool slows everything down).
my @wrapper = split ' ', $ENV{ASBP_PROBE_WRAPPER} // '';

# Upper time bounds, stretched when the probe runs under such a tool.
sub ms { $_[0] * ( @wrapper ? 5 : 1 ) }

sub slurp {
    my ($f) = @_;
    open my $fh, '<', $f or die "$f: $!";
    local $/;
    return scalar <$fh>;
}

my %sample = map { $_ => slurp("t/data/patroni/patroni-3.0.2-$_.json") }
  qw(cluster cluster-sync cluster-noleader);

# One member answer with the leader's fields given.
sub answer {
    my (%leader) = @_;
    my @f = map {
        my $v = $leader{$_};
        $v =~ /^-?\d+$/ || $v =~ /^(?:true|false|null)$/ ? qq{"$_":$v} : qq{"$_":"$v"}
    } sort keys %leader;
    return '{"members":[{' . join( ',', @f ) . '},'
      . '{"name":"node2","role":"replica","state":"running","host":"127.0.0.1",'
      . '"port":15433,"timeline":1,"lag":0}]}';
}

# Runs the probe; returns a hash: outcome, leader, endpoint, elapsed_ms,
# answered, requests, members, curl_code, error, out, err, rc, wall_ms.
# Every run also checks that no output line shows the password.
sub probe {
    my (@args) = @_;
    my ( $ofh, $ofile ) = tempfile( UNLINK => 1 );
    my ( $efh, $efile ) = tempfile( UNLINK => 1 );
    my $t0  = Time::HiRes::time();
    my $pid = fork // die "fork: $!";
    if ( !$pid ) {
        open STDOUT, '>&', $ofh or POSIX::_exit(126);
        open STDERR, '>&', $efh or POSIX::_exit(126);
        exec @wrapper, $probe, @args or POSIX::_exit(127);
    }
    waitpid $pid, 0;
    my %r = ( rc => $? >> 8, wall_ms => int( ( Time::HiRes::time() - $t0 ) * 1000 ) );
    $r{out} = slurp($ofile);
    $r{err} = slurp($efile);
    my ($line) = split /\n/, $r{out};
    %r = ( %r, map { /^(\w+)=(.*)$/ ? ( $1 => $2 ) : () } split / /, $line // '' );
    $r{error} = $1 if $r{out} =~ /^error: (.*)$/m;
    unlike( "$r{out}$r{err}", qr/\Q$PW\E/, '  no output line shows the password' );
    isnt( $r{rc}, 9, '  no memory error or leak (valgrind)' ) if @wrapper;
    return \%r;
}

# Answers "arriving together" must come within the 20 ms grace window of
# each other; on a small loaded machine a fake server can miss it.  Tests
# that depend on it allow 3 attempts (a real bug fails all of them).
sub probe_together {
    my ( $want, @args ) = @_;
    my $r;
    for my $try ( 1 .. 3 ) {
        $r = probe(@args);
        return $r if $want->($r);
        diag("attempt $try: the answers did not arrive together (retrying): $r->{out}");
    }
    return $r;
}

sub explain_run {
    my ($r) = @_;
    diag("stdout: $r->{out}stderr: $r->{err}");
}

# ---- answers ------------------------------------------------------------

{
    my $s = FakePatroni->new( body => $sample{cluster} );
    my $r = probe( '--url', $s->url );
    is( $r->{outcome}, 'LEADER', 'recorded 3.0.2 answer: leader found' ) or explain_run($r);
    is( $r->{leader}, '127.0.0.1:15432', '  leader host:port' );
    is( $r->{endpoint}, $s->masked_url, '  endpoint is the masked URL' );
    is( $r->{answered}, 1, '  one valid answer' );
    is( $r->{requests}, 1, '  one request' );
    is( $r->{members}, 3, '  topology has the three members' );
    is( $r->{rc}, 0, '  exit status 0' );
    is( $s->requests, 1, '  the server got one request' );
    is_deeply( [ $s->request_paths ], ['/cluster'], '  for /cluster' );
    is( $r->{err}, '', '  nothing logged' );
}

{
    my $s = FakePatroni->new( body => $sample{'cluster-sync'} );
    my $r = probe( '--url', $s->url );
    is( $r->{outcome}, 'LEADER', 'synchronous-mode answer: leader found' );
    is( $r->{leader}, '127.0.0.1:15432', '  leader host:port' );
}

my @transition = (
    [ 'no leader (leader just died)', $sample{'cluster-noleader'}, 'No leader found from' ],
    [ 'leader without host',
        answer( name => 'n1', role => 'leader', state => 'running', port => 5432 ),
        'Leader missing host or port from' ],
    [ 'leader without port',
        answer( name => 'n1', role => 'leader', state => 'running', host => '127.0.0.1' ),
        'Leader missing host or port from' ],
    [ 'leader starting',
        answer( name => 'n1', role => 'leader', state => 'starting', host => '127.0.0.1', port => 5432 ),
        'Leader not in running state (state=starting) from' ],
    [ 'leader stopped',
        answer( name => 'n1', role => 'leader', state => 'stopped', host => '127.0.0.1', port => 5432 ),
        'Leader not in running state (state=stopped) from' ],
    [ 'only a standby_leader',
        answer( name => 'n1', role => 'standby_leader', state => 'running', host => '127.0.0.1', port => 5432 ),
        'No leader found from' ],
    [ 'two leaders in one answer',
        '{"members":[{"role":"leader","host":"127.0.0.1","port":1},'
          . '{"role":"leader","host":"127.0.0.1","port":2}]}',
        'Multiple leaders detected' ],
);
for my $t (@transition) {
    my ( $name, $body, $msg ) = @$t;
    my $s = FakePatroni->new( body => $body );
    my $r = probe( '--url', $s->url );
    is( $r->{outcome}, 'TRANSITION', "$name: TRANSITION (a valid answer, not a failing API)" )
      or explain_run($r);
    is( $r->{leader}, '-', '  no leader given' );
    is( $r->{answered}, 1, '  counted as a valid answer' );
    is( $r->{endpoint}, $s->masked_url, '  endpoint of the answer used' );
    ok( $r->{members} >= 1, '  its members are returned for a later fallback' );
    like( $r->{err}, qr/^WARN: \Q$msg\E.*\Q${\ $s->masked_url}\E/m,
        "  logged: '$msg' with the masked URL" );
}

my @bad = (
    [ 'malformed JSON', { body => '{"members": [}' }, qr/bad JSON/ ],
    [ 'truncated JSON', { body => substr( $sample{cluster}, 0, 100 ) }, qr/bad JSON: premature EOF/ ],
    [ 'non-JSON', { body => "<html><body>Bad Gateway</body></html>\n" },
        qr/bad JSON: invalid char.*answer starts with "<html><body>Bad Gateway<\/body>/ ],
    [ 'empty 200 answer', { body => '' }, qr/empty answer/ ],
    [ 'top-level array', { body => '[1,2]' }, qr/not a JSON object/ ],
    [ 'members not an array', { body => '{"members":{}}' }, qr/"members" is not an array/ ],
    [ 'member not an object', { body => '{"members":[42]}' }, qr/member 1 is not an object/ ],
    [ 'deep nesting', { body => '{"members":[],"x":' . ( '[' x 100000 ) },
        qr/nested deeper than 64 levels/ ],
    [ 'HTTP 500', { status => 500, body => $sample{cluster} }, qr/: HTTP 500$/m ],
    [ 'HTTP 503', { status => 503, body => '{"state":"stopped"}' }, qr/: HTTP 503$/m ],
    [ 'HTTP 404 with an empty body', { status => 404, body => '' }, qr/: HTTP 404$/m ],
    [ 'redirect (not followed)',
        { status => 301, body => '', headers => { Location => 'http://127.0.0.1:1/cluster' } },
        qr/: HTTP 301$/m ],
    [ '2 MiB answer with Content-Length', { mode => 'big', size => 2 * 1024 * 1024 },
        qr/answer larger than 1 MiB/ ],
    [ '2 MiB answer, chunked (no length known in advance)',
        { mode => 'big', size => 2 * 1024 * 1024, chunked => 1 }, qr/answer larger than 1 MiB/ ],
    [ 'connection closed after the request', { mode => 'close' },
        qr/connection closed without an answer/ ],
    [ 'garbage instead of HTTP', { mode => 'raw', raw => "SSH-2.0-OpenSSH_9.2\r\n" . ( 'x' x 100 ) },
        qr/Bad response from/ ],
);
for my $t (@bad) {
    my ( $name, $o, $why ) = @$t;
    my $s = FakePatroni->new(%$o);
    my $r = probe( '--url', $s->url );
    is( $r->{outcome}, 'FAILED', "$name: FAILED" ) or explain_run($r);
    is( $r->{answered}, 0, '  no valid answer' );
    is( $r->{endpoint}, '-', '  no endpoint used' );
    my $m = $s->masked_url;
    like( $r->{err}, qr/^WARN: Bad response from \Q$m\E: /m, '  logged: Bad response from <masked url>' );
    like( $r->{err}, $why, '  ... saying why' ) or explain_run($r);
    like( $r->{error}, qr/^Patroni API unavailable: no valid answer from 1 endpoint: \Q$m\E: /,
        '  error summary names the endpoint and why' );
    unlike( $r->{err}, qr/[\x00-\x08\x0b-\x1f\x7f]/, '  no control characters in the log' );
    ok( $r->{elapsed_ms} < ms(2500), "  within the timeout ($r->{elapsed_ms} ms)" );
}

# ---- endpoints that do not answer ----------------------------------------

{
    my $url = FakePatroni->refused_url;
    ( my $m = $url ) =~ s/:\Q$PW\E\@/:***\@/;
    my $r = probe( '--url', $url );
    is( $r->{outcome}, 'FAILED', 'connection refused: FAILED' );
    like( $r->{err}, qr/^WARN: Bad response from \Q$m\E: connection refused$/m,
        '  logged as connection refused, URL masked' );
    is( $r->{curl_code}, 7, '  curl code recorded (CURLE_COULDNT_CONNECT)' );
    ok( $r->{elapsed_ms} < ms(1000), "  at once ($r->{elapsed_ms} ms)" );
}

{
    my $s = FakePatroni->new( mode => 'hang' );
    my $r = probe( '--url', $s->url, '--timeout-ms', 1000 );
    is( $r->{outcome}, 'FAILED', 'hanging endpoint alone: FAILED' );
    like( $r->{err}, qr/Bad response from \Q${\ $s->masked_url}\E: timeout/, '  logged as timeout' );
    is( $r->{curl_code}, 28, '  curl code 28 (timeout)' );
    ok( $r->{elapsed_ms} >= 900 && $r->{elapsed_ms} < ms(2500),
        "  ends at the timeout ($r->{elapsed_ms} ms for 1000)" );
    is( $s->requests, 1, '  the request did reach it' );
}

{
    my $hang = FakePatroni->new( mode => 'hang' );
    my $good = FakePatroni->new( body => $sample{cluster} );
    my $r = probe( '--url', $hang->url, '--url', $good->url, '--timeout-ms', 3000 );
    is( $r->{outcome}, 'LEADER', 'hanging first endpoint, healthy second: LEADER' ) or explain_run($r);
    is( $r->{endpoint}, $good->masked_url, '  the answer is the healthy one' );
    is( $r->{leader}, '127.0.0.1:15432', '  its leader' );
    ok( $r->{elapsed_ms} < ms(500), "  not delayed by the hanging one ($r->{elapsed_ms} ms < 500, timeout 3000)" );
    ok( $r->{wall_ms} < ms(2500), "  the probe process ended quickly too ($r->{wall_ms} ms)" );
    is( $r->{requests}, 2, '  both were asked, in parallel' );
    is( $hang->requests, 1, '  the hanging one got its request' );
    unlike( $r->{err}, qr/Bad response/, '  the hanging one is not reported (not awaited)' );
}

{
    my $trickle = FakePatroni->new( mode => 'trickle', body => $sample{cluster} );
    my $r = probe( '--url', $trickle->url, '--timeout-ms', 1500 );
    is( $r->{outcome}, 'FAILED', 'one byte per second: FAILED at the timeout' );
    like( $r->{err}, qr/Bad response from \Q${\ $trickle->masked_url}\E: timeout/, '  logged as timeout' );
    ok( $r->{elapsed_ms} >= 1400 && $r->{elapsed_ms} < ms(3500), "  bounded by the timeout ($r->{elapsed_ms} ms)" );

    my $good = FakePatroni->new( body => $sample{cluster} );
    $r = probe( '--url', $trickle->url, '--url', $good->url, '--timeout-ms', 3000 );
    is( $r->{outcome}, 'LEADER', 'trickling first endpoint, healthy second: LEADER' );
    is( $r->{endpoint}, $good->masked_url, '  from the healthy one' );
    ok( $r->{elapsed_ms} < ms(1000), "  without waiting for the trickle ($r->{elapsed_ms} ms)" );
}

{
    my $good = FakePatroni->new( body => $sample{cluster} );
    my $r = probe( '--url', FakePatroni->refused_url, '--url', $good->url );
    is( $r->{outcome}, 'LEADER', 'refused first, healthy second: LEADER' );
    is( $r->{endpoint}, $good->masked_url, '  from the second' );
    like( $r->{err}, qr/Bad response from .*: connection refused/, '  the refusal is logged' );
}

{
    my $bad  = FakePatroni->new( status => 503, body => '' );
    my $hang = FakePatroni->new( mode => 'hang' );
    my $r = probe( '--url', $bad->url, '--url', FakePatroni->refused_url, '--url', $hang->url,
        '--timeout-ms', 800 );
    is( $r->{outcome}, 'FAILED', 'three failing endpoints: FAILED' );
    like( $r->{error}, qr/HTTP 503; .*connection refused; .*timeout/,
        '  the summary lists each endpoint and why' );
    is( () = $r->{err} =~ /^WARN: Bad response from/mg, 3, '  one log line per endpoint' );
    ok( $r->{elapsed_ms} < ms(2000), "  ends at the deadline ($r->{elapsed_ms} ms for 800)" );
}

{
    my $hang = FakePatroni->new( mode => 'hang' );
    my $r = probe( '--url', $hang->url, '--timeout-ms', 3000, '--deadline-ms', 600 );
    is( $r->{outcome}, 'FAILED', 'a caller deadline shorter than the timeout' );
    ok( $r->{elapsed_ms} >= 500 && $r->{elapsed_ms} < ms(1800), "  ends at the deadline ($r->{elapsed_ms} ms for 600)" );
}

# ---- several answers ------------------------------------------------------

{
    my $ep1 = FakePatroni->new( body => $sample{cluster} );
    my $ep2 = FakePatroni->new( body => answer( name => 'node2', role => 'leader', state => 'running',
            host => '127.0.0.1', port => 15433 ) );
    my $r = probe_together( sub { $_[0]{outcome} eq 'SPLIT' }, '--url', $ep1->url, '--url', $ep2->url );
    is( $r->{outcome}, 'SPLIT', 'two endpoints naming different leaders: SPLIT' ) or explain_run($r);
    is( $r->{leader}, '-', '  no leader given' );
    is( $r->{answered}, 2, '  both answers valid' );
    my ( $ma, $mb ) = ( $ep1->masked_url, $ep2->masked_url );
    like( $r->{err}, qr/^WARN: Multiple leaders detected \(split-brain\): \Q$ma\E says 127\.0\.0\.1:15432, \Q$mb\E says 127\.0\.0\.1:15433$/m,
        '  logged with both endpoints (masked) and both leaders' );
}

{
    my $ep1 = FakePatroni->new( body => $sample{cluster} );
    my $ep2 = FakePatroni->new( body => $sample{'cluster-sync'} );
    my $r = probe_together( sub { $_[0]{answered} == 2 }, '--url', $ep1->url, '--url', $ep2->url );
    is( $r->{outcome}, 'LEADER', 'two endpoints agreeing: LEADER' );
    is( $r->{endpoint}, $ep1->masked_url, '  the first listed wins' );
    is( $r->{answered}, 2, '  both counted' );
}

{
    # The preferred endpoint answers a little later than the second one,
    # within the grace window: it still wins.
    my $ep1 = FakePatroni->new( body => $sample{cluster}, delay_ms => 5 );
    my $ep2 = FakePatroni->new( body => $sample{cluster} );
    my $r = probe_together( sub { $_[0]{answered} == 2 }, '--url', $ep1->url, '--url', $ep2->url );
    is( $r->{outcome}, 'LEADER', 'preferred endpoint 5 ms slower: LEADER' );
    is( $r->{endpoint}, $ep1->masked_url, '  the preferred one wins among answers arriving together' );

    # Much later: the second one's answer is used without waiting.
    my $slow = FakePatroni->new( body => $sample{cluster}, delay_ms => 1500 );
    $r = probe( '--url', $slow->url, '--url', $ep2->url, '--timeout-ms', 3000 );
    is( $r->{outcome}, 'LEADER', 'preferred endpoint 1.5 s slower: LEADER' );
    is( $r->{endpoint}, $ep2->masked_url, '  from the fast one' );
    ok( $r->{elapsed_ms} < ms(1000), "  without waiting ($r->{elapsed_ms} ms)" );
}

{
    my $none = FakePatroni->new( body => $sample{'cluster-noleader'} );
    my $good = FakePatroni->new( body => $sample{cluster} );
    my $r = probe( '--url', $none->url, '--url', $good->url );
    is( $r->{outcome}, 'LEADER', 'no leader on the first, a leader on the second: LEADER' );
    is( $r->{endpoint}, $good->masked_url, '  from the one that names a leader' );

    my $bad = FakePatroni->new( body => 'nope' );
    $r = probe( '--url', $bad->url, '--url', $none->url );
    is( $r->{outcome}, 'TRANSITION', 'bad answer then no-leader answer: TRANSITION' );
    is( $r->{endpoint}, $none->masked_url, '  the valid answer is the one used' );
    is( $r->{answered}, 1, '  one valid answer' );
}

# ---- environment, protocols ----------------------------------------------

{
    my $good = FakePatroni->new( body => $sample{cluster} );
    local $ENV{http_proxy}  = FakePatroni->refused_url( creds => 0 );
    local $ENV{HTTP_PROXY}  = $ENV{http_proxy};
    local $ENV{https_proxy} = $ENV{http_proxy};
    local $ENV{ALL_PROXY}   = $ENV{http_proxy};
    my $r = probe( '--url', $good->url );
    is( $r->{outcome}, 'LEADER', 'proxy variables in the environment are ignored' );
}

{
    my $good = FakePatroni->new( body => $sample{cluster} );
    my $r = probe( '--url', "ftp://$FakePatroni::USER:$PW\@127.0.0.1:" . $good->port . '/cluster' );
    is( $r->{outcome}, 'FAILED', 'ftp:// URL refused' );
    like( $r->{err}, qr/Bad response from ftp:\/\/llng:\*\*\*\@127\.0\.0\.1:\d+\/cluster: Unsupported protocol/,
        '  as an unsupported protocol, URL masked' );
    is( $good->connections, 0, '  no connection was made' );

    $r = probe('--url', 'http://llng:' . $PW . '@bad host name/cluster');
    is( $r->{outcome}, 'FAILED', 'malformed URL: FAILED' );
    like( $r->{err}, qr/Bad response from http:\/\/llng:\*\*\*\@bad host name\/cluster: /, '  URL masked' );

    $r = probe();
    is( $r->{outcome}, 'ERROR', 'no endpoint: a local error' );
    is( $r->{rc}, 2, '  exit status 2' );
}

# ---- TLS -------------------------------------------------------------------

SKIP: {
    TestCA::skip_unless_available( 29, https => 1 );
    my $pki = FakePatroni::pki();
    my $tls = sub { FakePatroni->new( body => $sample{cluster}, tls => {@_} ) };

    my $ok = $tls->( cert => $pki->{server_crt}, key => $pki->{server_key} );
    my $r = probe( '--url', $ok->url, '--ca-file', $pki->{ca_crt} );
    is( $r->{outcome}, 'LEADER', 'TLS: right CA by file: accepted' ) or explain_run($r);
    is( $r->{endpoint}, $ok->masked_url, '  https endpoint, masked' );

    $r = probe( '--url', $ok->url, '--ca-path', $pki->{ca_dir} );
    is( $r->{outcome}, 'LEADER', 'TLS: right CA by (hashed) directory: accepted' ) or explain_run($r);

    $r = probe( '--url', $ok->url( host => 'localhost' ), '--ca-file', $pki->{ca_crt} );
    is( $r->{outcome}, 'LEADER', 'TLS: DNS name in the certificate (localhost): accepted' )
      or explain_run($r);

    my $before = $ok->requests;
    $r = probe( '--url', $ok->url, '--ca-file', $pki->{client_ca_crt} );
    is( $r->{outcome}, 'FAILED', 'TLS: a CA that did not sign the server: refused' );
    like( $r->{err}, qr/Bad response from \Q${\ $ok->masked_url}\E: TLS error/, '  logged as a TLS error' );
    is( $ok->requests, $before, '  no request reached the API' );

    my $self = $tls->( cert => $pki->{self_crt}, key => $pki->{self_key} );
    $r = probe( '--url', $self->url, '--ca-file', $pki->{ca_crt} );
    is( $r->{outcome}, 'FAILED', 'TLS: self-signed certificate (unknown CA): refused' );
    like( $r->{err}, qr/TLS error/, '  logged as a TLS error' );
    ok( $r->{curl_code} == 60 || $r->{curl_code} == 35, "  curl code recorded ($r->{curl_code})" );
    is( $self->requests, 0, '  no request reached the API' );

    $r = probe( '--url', $self->url );
    is( $r->{outcome}, 'FAILED', 'TLS: self-signed certificate, system CAs: refused' );

    $r = probe( '--url', $self->url, '--no-verify' );
    is( $r->{outcome}, 'LEADER', 'TLS: verification off: accepted' ) or explain_run($r);
    is( $self->requests, 1, '  the request was made' );

    my $wrong = $tls->( cert => $pki->{wrong_crt}, key => $pki->{wrong_key} );
    $r = probe( '--url', $wrong->url, '--ca-file', $pki->{ca_crt} );
    is( $r->{outcome}, 'FAILED', 'TLS: host name mismatch: refused' );
    like( $r->{err}, qr/TLS error.*(?:127\.0\.0\.1|match|name)/i, '  logged as a TLS error naming the mismatch' )
      or explain_run($r);
    is( $wrong->requests, 0, '  no request reached the API' );
    $r = probe( '--url', $wrong->url, '--ca-file', $pki->{ca_crt}, '--no-verify' );
    is( $r->{outcome}, 'LEADER', 'TLS: host name mismatch with verification off: accepted' );

    my $mtls = $tls->( cert => $pki->{server_crt}, key => $pki->{server_key},
        client_ca => $pki->{client_ca_crt} );
    $r = probe( '--url', $mtls->url, '--ca-file', $pki->{ca_crt},
        '--cert', $pki->{client_crt}, '--key', $pki->{client_key} );
    is( $r->{outcome}, 'LEADER', 'TLS: client certificate required, given: accepted' ) or explain_run($r);
    is( $mtls->requests, 1, '  one request reached the API' );
    $r = probe( '--url', $mtls->url, '--ca-file', $pki->{ca_crt} );
    is( $r->{outcome}, 'FAILED', 'TLS: client certificate required, none given: refused' );
    like( $r->{err}, qr/Bad response from \Q${\ $mtls->masked_url}\E: /, '  logged with the masked URL' );
    is( $mtls->requests, 1, '  no further request reached the API' );
    $r = probe( '--url', $mtls->url, '--ca-file', $pki->{ca_crt},
        '--cert', $pki->{server_crt}, '--key', $pki->{server_key} );
    is( $r->{outcome}, 'FAILED', 'TLS: client certificate from another CA: refused' );

    $r = probe( '--url', $ok->url, '--ca-file', '/nonexistent/ca.pem' );
    is( $r->{outcome}, 'FAILED', 'TLS: unreadable CA file: FAILED, not a crash' );
    like( $r->{err}, qr/Bad response from /, '  logged' );

    # A hanging TLS endpoint first, a healthy one second.
    my $hang = FakePatroni->new( mode => 'hang', tls => { cert => $pki->{server_crt}, key => $pki->{server_key} } );
    $r = probe( '--url', $hang->url, '--url', $ok->url, '--ca-file', $pki->{ca_crt}, '--timeout-ms', 3000 );
    is( $r->{outcome}, 'LEADER', 'TLS: hanging first endpoint, healthy second: LEADER' );
    is( $r->{endpoint}, $ok->masked_url, '  from the healthy one' );
    ok( $r->{elapsed_ms} < ms(2000), "  without waiting for the timeout ($r->{elapsed_ms} ms for 3000)" );
}

done_testing();
