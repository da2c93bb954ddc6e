package FakePatroni;

# A fake Patroni REST API for the tests: one forked server per instance,
# listening on 127.0.0.1 on a free port, answering every connection with a
# scripted behaviour.
#
#   my $s = FakePatroni->new(body => $json);              # 200 + body
#   my $s = FakePatroni->new(status => 503, body => '');  # HTTP error
#   my $s = FakePatroni->new(mode => 'hang');     # accept, never answer
#   my $s = FakePatroni->new(mode => 'trickle', body => $json); # 1 byte/s
#   my $s = FakePatroni->new(mode => 'close');    # read request, close
#   my $s = FakePatroni->new(mode => 'big', size => 2 * 1024 * 1024,
#                            chunked => 0|1);     # oversized 200 answer
#   my $s = FakePatroni->new(mode => 'raw', raw => "HTTP/1.1 ...");
#   delay_ms => N: wait before answering (json mode).
#   tls => { cert => F, key => F, client_ca => F }: HTTPS; with client_ca
#   a client certificate signed by it is required.
#   my $url = FakePatroni->refused_url;           # nothing listens there
#
#   $s->url            http(s)://llng:s3cr3t-pw@127.0.0.1:PORT/cluster
#   $s->url(creds => 0, host => 'localhost', path => '/x')
#   $s->masked_url     the same URL as asbp_url_mask prints it
#   $s->connections    TCP connections accepted
#   $s->requests       HTTP requests read (after the TLS handshake)
#   $s->tls_failures   TLS handshakes that failed on the server side
#   $s->stop           kill it (also done in END, even when a test dies)
#   $s->set_answer($body, $status)   change what later requests get (json
#                      mode); $s->set_mode('hang'|'close'|'json') likewise
#
#   FakePatroni::pki() is TestCA::pki(): certificates made once per test
#   process with `openssl`: ca_crt, ca_dir (rehashed), server_crt/key
#   (127.0.0.1 + localhost), wrong_crt/key (wrong.example.org only),
#   self_crt/key (self-signed), client_ca_crt, client_crt/key.
#
# Every child runs in its own process group, exits when the test process
# is gone, never writes to the test's STDOUT, and leaves with POSIX::_exit
# (so no END block of the test runs twice).

use strict;
use warnings;

use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX ();
use ProcTree ();
use Time::HiRes ();

our $USER     = 'llng';
our $PASSWORD = 's3cr3t-pw';

my %live;    # pid => server, for END

sub new {
    my ( $class, %o ) = @_;
    my $dir = tempdir( CLEANUP => 1 );
    my $lsn = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1',
        LocalPort => 0,
        Listen    => 64,
        ReuseAddr => 1,
        Proto     => 'tcp',
    ) or die "FakePatroni: cannot listen: $!";
    my $self = bless {
        mode   => 'json',
        status => 200,
        body   => '{"members":[]}',
        %o,
        dir    => $dir,
        port   => $lsn->sockport,
        owner  => $$,
        events => "$dir/events",
    }, $class;
    open my $fh, '>', $self->{events} or die "FakePatroni: $self->{events}: $!";
    close $fh;
    my $pid = fork;
    die "FakePatroni: fork: $!" unless defined $pid;
    if ( !$pid ) {
        eval { $self->_serve($lsn) };
        POSIX::_exit(0);
    }
    close $lsn;
    $self->{pid} = $pid;
    $live{$pid} = $self;
    return $self;
}

sub port { $_[0]{port} }

# Scripted changes seen by the server child on its next request.
sub _put {
    my ( $self, $name, $text ) = @_;
    my $f = "$self->{dir}/$name";
    open my $fh, '>', "$f.tmp" or die "FakePatroni: $f: $!";
    print $fh $text;
    close $fh;
    rename "$f.tmp", $f or die "FakePatroni: rename $f: $!";
}
sub set_answer { my ( $self, $body, $status ) = @_; $self->_put( 'answer', ( $status // 200 ) . "\n$body" ) }
sub set_mode   { my ( $self, $mode ) = @_; $self->_put( 'mode', $mode ) }

sub _current {
    my ($self) = @_;
    if ( open my $fh, '<', "$self->{dir}/mode" ) {
        my $m = <$fh>;
        $self->{mode} = $m if defined $m && length $m;
    }
    if ( open my $fh, '<', "$self->{dir}/answer" ) {
        local $/;
        my $a = <$fh>;
        if ( defined $a && $a =~ /\A(\d+)\n(.*)\z/s ) {
            ( $self->{status}, $self->{body} ) = ( $1, $2 );
        }
    }
}

sub url {
    my ( $self, %o ) = @_;
    my $scheme = $self->{tls} ? 'https' : 'http';
    my $creds  = ( $o{creds} // 1 ) ? "$USER:$PASSWORD\@" : '';
    my $host   = $o{host} // '127.0.0.1';
    my $path   = $o{path} // '/cluster';
    return "$scheme://$creds$host:$self->{port}$path";
}

sub masked_url {
    my ( $self, %o ) = @_;
    my $u = $self->url(%o);
    $u =~ s/:\Q$PASSWORD\E\@/:***\@/;
    return $u;
}

# A URL on a port where nothing listens (bound, then closed at once).
sub refused_url {
    my ( $class, %o ) = @_;
    my $s = IO::Socket::INET->new( LocalAddr => '127.0.0.1', LocalPort => 0,
        Listen => 1, Proto => 'tcp' ) or die "FakePatroni: $!";
    my $port = $s->sockport;
    close $s;
    my $creds = ( $o{creds} // 1 ) ? "$USER:$PASSWORD\@" : '';
    return "http://${creds}127.0.0.1:$port/cluster";
}

sub _events {
    my ($self) = @_;
    open my $fh, '<', $self->{events} or return ();
    my @l = <$fh>;
    close $fh;
    chomp @l;
    return @l;
}

sub connections  { scalar grep { /^conn$/ } $_[0]->_events }
sub requests     { scalar grep { /^req / } $_[0]->_events }
sub tls_failures { scalar grep { /^tls_fail/ } $_[0]->_events }
sub request_paths { map { /^req \S+ (\S+)/ ? $1 : () } $_[0]->_events }

sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    delete $live{$pid};
    return unless $self->{owner} == $$;
    ProcTree::kill_group( 'KILL', $pid );    # the server and its per-connection children
}

# A thread's copy of a server object must not stop the server when the
# thread ends: objects of this class are not cloned into threads.
sub CLONE_SKIP { 1 }

sub DESTROY { $_[0]->stop }

END {
    my $status = $?;
    $_->stop for values %live;
    $? = $status;
}

# ---- the server (child) ------------------------------------------------

sub _event {
    my ( $self, $what ) = @_;
    # One short write with O_APPEND: lines of concurrent children do not mix.
    if ( open my $fh, '>>', $self->{events} ) {
        syswrite $fh, "$what\n";
        close $fh;
    }
}

sub _serve {
    my ( $self, $lsn ) = @_;
    setpgrp( 0, 0 );
    open STDIN,  '<',  '/dev/null';
    open STDOUT, '>',  '/dev/null';
    open STDERR, '>>', "$self->{dir}/log";
    $SIG{CHLD} = 'IGNORE';
    $SIG{PIPE} = 'IGNORE';
    $SIG{TERM} = sub { POSIX::_exit(0) };
    require IO::Socket::SSL if $self->{tls};   # once, not per connection
    my $server = $$;
    while (1) {
        POSIX::_exit(0) if getppid() != $self->{owner};
        my $rin = '';
        vec( $rin, fileno($lsn), 1 ) = 1;
        next unless select( my $rout = $rin, undef, undef, 0.5 ) > 0;
        my $c = $lsn->accept or next;
        $self->_event('conn');
        if ( $self->{mode} eq 'json' && !$self->{tls} ) {
            # Plain answers are given inline, no fork, so that two servers
            # answer within a few milliseconds of each other (a delay_ms
            # then holds back the next connection too).
            eval { $self->_conn( $c, $server ) };
            print STDERR "connection: $@" if $@;
            close $c;
            next;
        }
        my $pid = fork;
        if ( defined $pid && !$pid ) {
            close $lsn;
            eval { $self->_conn( $c, $server ) };
            print STDERR "connection: $@" if $@;
            POSIX::_exit(0);
        }
        close $c;
    }
}

# Sleeps until the server process is gone (its children are then orphans).
sub _wait_forever {
    my ($server) = @_;
    Time::HiRes::sleep(0.2) while getppid() == $server;
}

sub _write_all {
    my ( $c, $data ) = @_;
    my $off = 0;
    while ( $off < length $data ) {
        my $n = $c->syswrite( $data, length($data) - $off, $off );
        return 0 unless $n;
        $off += $n;
    }
    return 1;
}

my %reason = ( 200 => 'OK', 301 => 'Moved Permanently', 404 => 'Not Found',
    500 => 'Internal Server Error', 503 => 'Service Unavailable' );

sub _head {
    my ( $status, %h ) = @_;
    my $s = "HTTP/1.1 $status " . ( $reason{$status} // 'Whatever' ) . "\r\n";
    $s .= "$_: $h{$_}\r\n" for sort keys %h;
    return "${s}Connection: close\r\n\r\n";
}

sub _conn {
    my ( $self, $c, $server ) = @_;
    $self->_current;
    my $mode = $self->{mode};
    if ( my $t = $self->{tls} ) {
        require IO::Socket::SSL;
        my %v = $t->{client_ca}
          ? ( SSL_verify_mode => IO::Socket::SSL::SSL_VERIFY_PEER()
                | IO::Socket::SSL::SSL_VERIFY_FAIL_IF_NO_PEER_CERT(),
              SSL_ca_file => $t->{client_ca} )
          : ( SSL_verify_mode => IO::Socket::SSL::SSL_VERIFY_NONE() );
        my $ok = IO::Socket::SSL->start_SSL( $c,
            SSL_server    => 1,
            SSL_cert_file => $t->{cert},
            SSL_key_file  => $t->{key},
            Timeout       => 10,
            %v );
        if ( !$ok ) {
            my $e = IO::Socket::SSL::errstr() // '';
            $e =~ s/\s+/ /g;
            $self->_event("tls_fail $e");
            return;
        }
        $self->_event('tls_ok');
    }

    # The request head (the body of a GET is empty).
    my $req = '';
    local $SIG{ALRM} = sub { die "request read timeout\n" };
    alarm 10;
    while ( $req !~ /\r\n\r\n/ ) {
        my $n = $c->sysread( $req, 4096, length $req );
        last unless $n;
    }
    alarm 0;
    if ( $req =~ /^(\S+) (\S+) HTTP/ ) {
        $self->_event("req $1 $2");
    }
    else {
        # TLS 1.3: a client refused by the server can finish its side of
        # the handshake; its request is then never read.
        $self->_event('noreq');
        return;
    }

    if ( $mode eq 'hang' ) {
        _wait_forever($server);
        return;
    }
    return if $mode eq 'close';
    if ( $mode eq 'raw' ) {
        _write_all( $c, $self->{raw} );
        return;
    }
    Time::HiRes::sleep( $self->{delay_ms} / 1000 ) if $self->{delay_ms};
    if ( $mode eq 'trickle' ) {
        my $body = $self->{body};
        _write_all( $c, _head( 200, 'Content-Type' => 'application/json',
            'Content-Length' => length $body ) ) or return;
        for my $ch ( split //, $body ) {
            _write_all( $c, $ch ) or return;
            sleep 1;
            return if getppid() != $server;
        }
        return;
    }
    if ( $mode eq 'big' ) {
        my $size = $self->{size} // 2 * 1024 * 1024;
        my $head = '{"members":[],"pad":"';
        my $body = $head . ( 'x' x ( $size - length($head) - 2 ) ) . '"}';
        if ( $self->{chunked} ) {
            _write_all( $c, _head( 200, 'Content-Type' => 'application/json',
                'Transfer-Encoding' => 'chunked' ) ) or return;
            for ( my $off = 0 ; $off < length $body ; $off += 65536 ) {
                my $part = substr( $body, $off, 65536 );
                _write_all( $c, sprintf( "%x\r\n%s\r\n", length $part, $part ) ) or return;
            }
            _write_all( $c, "0\r\n\r\n" );
        }
        else {
            _write_all( $c, _head( 200, 'Content-Type' => 'application/json',
                'Content-Length' => length $body ) . $body );
        }
        return;
    }
    # json (default)
    my $body = $self->{body};
    _write_all( $c, _head( $self->{status}, 'Content-Type' => 'application/json',
        'Content-Length' => length $body, %{ $self->{headers} || {} } ) . $body );
    # Let the client read before the socket closes.
    $c->shutdown(1) if $c->can('shutdown') && !$self->{tls};
    return;
}

# ---- certificates ------------------------------------------------------

# The test certificates (made by TestCA, see there for the list).
sub pki {
    require TestCA;
    return TestCA::pki();
}

1;
