package PatroniApi;

# Test helper: a small HTTP/1.0 client for the Patroni REST API (and etcd's
# /health) on 127.0.0.1, with a whole-request timeout.  Plain functions:
#
#   PatroniApi::http_get($port, $path, $timeout)
#       ($status, $body) or (undef, $error); $error is 'timeout' when the
#       connection was accepted but nothing came back in time
#   PatroniApi::answers($port, $path, $timeout)  true on HTTP 200
#   PatroniApi::port_refuses($port)  true when a connect gets ECONNREFUSED
#   PatroniApi::cluster($port, $timeout)
#       decoded GET /cluster, each member with a `node` key (N of "nodeN"),
#       or (undef, $error)
#   PatroniApi::is_leader_role($role)  leader, master or primary

use strict;
use warnings;

use Errno ();
use IO::Select ();
use IO::Socket::INET ();
use JSON::PP ();
use Time::HiRes qw(time);

our $VERSION = '0.01';

my $JSON = JSON::PP->new->utf8->canonical;

sub http_get {
    my ($port, $path, $timeout) = @_;
    $timeout //= 2;
    local $SIG{PIPE} = 'IGNORE';
    my $deadline = time + $timeout;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp',
                                  Timeout => $timeout)
        or return (undef, 'connect: ' . ($! || $@));
    my $req = "GET $path HTTP/1.0\r\nHost: 127.0.0.1:$port\r\nConnection: close\r\n\r\n";
    defined syswrite($s, $req) or return (undef, "write: $!");
    my $sel = IO::Select->new($s);
    my $buf = '';
    while (1) {
        my $left = $deadline - time;
        return (undef, 'timeout') if $left <= 0 || !$sel->can_read($left);
        my $n = sysread $s, $buf, 65536, length $buf;
        return (undef, "read: $!") unless defined $n;
        last unless $n;
    }
    my ($head, $body) = split /\r\n\r\n/, $buf, 2;
    my ($code) = ($head // '') =~ m{^HTTP/\S+\s+(\d+)} or return (undef, 'malformed HTTP answer');
    return ($code, $body // '');
}

sub answers {
    my ($code) = http_get(@_);
    return $code && $code == 200;
}

sub port_refuses {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => 1);
    return 0 if $s;
    return $!{ECONNREFUSED} ? 1 : 0;
}

sub cluster {
    my ($port, $timeout) = @_;
    my ($code, $body) = http_get($port, '/cluster', $timeout);
    return (undef, $code ? "HTTP $code" : $body) unless $code && $code == 200;
    my $j = eval { $JSON->decode($body) };
    return (undef, 'bad JSON') unless $j && ref $j->{members} eq 'ARRAY';
    for my $m (@{ $j->{members} }) {
        $m->{node} = $1 if ($m->{name} // '') =~ /^node(\d+)$/;
    }
    return $j;
}

sub is_leader_role { ($_[0] // '') =~ /^(?:leader|master|primary)$/ }

1;
