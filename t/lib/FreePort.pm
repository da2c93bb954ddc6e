package FreePort;

# Ports for the test servers to listen on.  Asking the kernel for port 0
# gives a port from the ephemeral range (net.ipv4.ip_local_port_range,
# 32768-60999 on Linux), the same range every outgoing connection takes its
# local port from: between "this port is free" and the server's bind(), a
# client connection of ours can take it ("Address already in use").  These
# ports are drawn at random below that range instead, each checked by
# binding it, and never handed out twice by one process.

use strict;
use warnings;
use IO::Socket::INET;

my %given;

sub pick {
    my ($n) = @_;
    $n ||= 1;
    my ( $lo, $hi ) = ( 20000, 32000 );
    if ( open my $fh, '<', '/proc/sys/net/ipv4/ip_local_port_range' ) {
        my ($eph) = split ' ', scalar <$fh>;
        $hi = $eph - 1 if $eph && $eph > $lo + 2000 && $eph - 1 < $hi;
    }
    my @ports;
    for ( 1 .. 1000 ) {
        last if @ports == $n;
        my $p = $lo + int rand( $hi - $lo );
        next if $given{$p};
        my $s = IO::Socket::INET->new( LocalAddr => '127.0.0.1', LocalPort => $p, Proto => 'tcp',
            Listen => 1 ) or next;
        close $s;
        $given{$p} = 1;
        push @ports, $p;
    }
    die "FreePort: no free port found\n" unless @ports == $n;
    return wantarray ? @ports : $ports[0];
}

1;
