package TestCA;

# Throwaway certificates for the tests, made with the `openssl` command in
# a temporary directory, once per test process:
#
#   use TestCA;
#   my ( $ok, $why ) = TestCA::available();   # openssl there?
#   my $pki = TestCA::pki();                  # dies when openssl fails
#
#   TestCA::skip_all_unless_available();      # before the plan
#   SKIP: {                                   # or for a part of a test
#       TestCA::skip_unless_available( 3, https => 1 );
#       ...
#   }
#
# https => 1 also needs IO::Socket::SSL (FakePatroni's HTTPS server).  A
# missing part skips the TLS tests with the reason, or fails them when
# ASBP_REQUIRE_DB is set (CI installs both).
#
# $pki holds file names:
#   ca_crt, ca_key, ca_dir (the CA in OpenSSL's hashed layout)
#   server_crt/key   signed by the CA, for IP 127.0.0.1 and DNS localhost
#   wrong_crt/key    signed by the CA, for wrong.example.org only
#   self_crt/key     self-signed, for 127.0.0.1 (no CA knows it)
#   client_ca_crt    a second CA, for client certificates
#   client_crt/key   signed by the client CA (extendedKeyUsage clientAuth)
#
# The keys are EC P-256, the certificates valid for two days.  Used by
# FakePatroni (HTTPS) and PgServer (ssl=on).

use strict;
use warnings;
use File::Temp qw(tempdir);
use POSIX ();

my $pki;

# (1) or (0, reason): whether the openssl command can be run.
sub available {
    for my $dir ( split /:/, $ENV{PATH} // '' ) {
        return (1) if length $dir && -x "$dir/openssl";
    }
    return ( 0, 'the openssl command is not installed (Debian package "openssl")' );
}

# (1) or (0, reason): available() and, with https => 1, IO::Socket::SSL.
sub tls_available {
    my (%o) = @_;
    my ( $ok, $why ) = available();
    return ( 0, $why ) unless $ok;
    # Looked up in @INC, not loaded: only the fake server's process (a
    # child) needs it, and OpenSSL loaded into the test's own perl leaves
    # memory at exit that LeakSanitizer reports (tools/sanitize).
    if ( $o{https} && !installed('IO/Socket/SSL.pm') ) {
        return ( 0, 'IO::Socket::SSL is not installed (Debian package "libio-socket-ssl-perl"), '
              . 'needed by the test HTTPS server' );
    }
    return (1);
}

# Whether require would find $file, searching @INC as require does (a hook
# that dies hides the module), without loading it.
sub installed {
    my ($file) = @_;
    for my $d (@INC) {
        if ( ref $d eq 'CODE' ) {
            my @r = eval { $d->( $d, $file ) };
            return 0 if $@;
            return 1 if @r && defined $r[0];
            next;
        }
        return 1 if !ref $d && -f "$d/$file";
    }
    return 0;
}

sub required {
    my $v = $ENV{ASBP_REQUIRE_DB};
    return defined $v && $v ne '' && $v ne '0' && lc $v ne 'false';
}

# Inside a SKIP block: returns when the TLS part can run; else skips its
# COUNT tests with the reason (with ASBP_REQUIRE_DB set: one of them fails).
sub skip_unless_available {
    my ( $count, %o ) = @_;
    my ( $ok, $why ) = tls_available(%o);
    return if $ok;
    require Test::More;
    if ( required() ) {
        local $Test::Builder::Level = $Test::Builder::Level + 1;
        Test::More::fail("the TLS tests are required here (ASBP_REQUIRE_DB set): $why");
        $count--;
    }
    Test::More::skip( "TLS tests: $why", $count );
}

# Before the plan: skips the whole test (with ASBP_REQUIRE_DB set: fails
# it) when the TLS part cannot run.
sub skip_all_unless_available {
    my (%o) = @_;
    my ( $ok, $why ) = tls_available(%o);
    return if $ok;
    require Test::More;
    if ( required() ) {
        Test::More::plan( tests => 1 );
        Test::More::fail("the TLS tests are required here (ASBP_REQUIRE_DB set): $why");
        exit 1;
    }
    Test::More::plan( skip_all => "needs test certificates: $why" );
}

# Runs a command, its output appended to $log; dies with the log on failure.
sub _run {
    my ( $log, @cmd ) = @_;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ( !$pid ) {
        open STDIN,  '<',  '/dev/null';
        open STDOUT, '>>', $log;
        open STDERR, '>>', $log;
        exec @cmd or POSIX::_exit(127);
    }
    waitpid $pid, 0;
    if ($?) {
        my $out = do { local ( @ARGV, $/ ) = ($log); <> } // '';
        die "TestCA: '@cmd' failed:\n$out";
    }
}

my $CONFIG = <<'EOC';
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
[wrong]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong.example.org
[client]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
EOC

sub pki {
    return $pki if $pki;
    my $d   = tempdir( 'asbp-ca-XXXXXX', TMPDIR => 1, CLEANUP => 1 );
    my $log = "$d/openssl.log";
    my $cnf = "$d/openssl.cnf";
    open my $fh, '>', $cnf or die "$cnf: $!";
    print $fh $CONFIG;
    close $fh;
    my %p;
    my $key = sub {
        my $f = "$d/$_[0].key";
        _run( $log, qw(openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out), $f );
        return $f;
    };
    my $ca = sub {
        my ( $name, $cn ) = @_;
        my $k = $key->($name);
        _run( $log, 'openssl', 'req', '-config', $cnf, '-x509', '-new', '-key', $k,
            '-days', 2, '-subj', "/CN=$cn", '-extensions', 'v3_ca', '-out', "$d/$name.crt" );
        return ( "$d/$name.crt", $k );
    };
    my $serial = 1000;
    my $leaf = sub {
        my ( $name, $cn, $ext, $ca_crt, $ca_key ) = @_;
        my $k = $key->($name);
        _run( $log, 'openssl', 'req', '-config', $cnf, '-new', '-key', $k,
            '-subj', "/CN=$cn", '-out', "$d/$name.csr" );
        _run( $log, 'openssl', 'x509', '-req', '-in', "$d/$name.csr", '-CA', $ca_crt,
            '-CAkey', $ca_key, '-set_serial', $serial++, '-days', 2,
            '-extfile', $cnf, '-extensions', $ext, '-out', "$d/$name.crt" );
        return ( "$d/$name.crt", $k );
    };
    my ( $ca_crt, $ca_key ) = $ca->( 'ca', 'ASBP test CA' );
    @p{qw(ca_crt ca_key)} = ( $ca_crt, $ca_key );
    @p{qw(server_crt server_key)} = $leaf->( 'server', '127.0.0.1', 'server', $ca_crt, $ca_key );
    @p{qw(wrong_crt wrong_key)} = $leaf->( 'wrong', 'wrong.example.org', 'wrong', $ca_crt, $ca_key );
    # Self-signed: a leaf that is its own issuer, unknown to every CA list.
    $p{self_key} = $key->('self');
    _run( $log, 'openssl', 'req', '-config', $cnf, '-x509', '-new', '-key', $p{self_key},
        '-days', 2, '-subj', '/CN=127.0.0.1', '-extensions', 'server', '-out', "$d/self.crt" );
    $p{self_crt} = "$d/self.crt";
    my ( $cca_crt, $cca_key ) = $ca->( 'client_ca', 'ASBP test client CA' );
    $p{client_ca_crt} = $cca_crt;
    @p{qw(client_crt client_key)} = $leaf->( 'client', 'llng-client', 'client', $cca_crt, $cca_key );

    # A CA directory in OpenSSL's hashed layout.
    mkdir "$d/cadir" or die "$d/cadir: $!";
    _run( $log, 'cp', $ca_crt, "$d/cadir/test-ca.pem" );
    eval { _run( $log, 'openssl', 'rehash', "$d/cadir" ); 1 }
      or _run( $log, 'c_rehash', "$d/cadir" );
    $p{ca_dir} = "$d/cadir";
    return $pki = \%p;
}

1;
