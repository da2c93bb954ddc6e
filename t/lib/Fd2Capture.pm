package Fd2Capture;

# Sends fd 2 (STDERR) to a private temporary file for the rest of a test,
# so that what the module writes there directly can be read back, while
# Test::More keeps reporting to the real STDERR.  The file is created
# exclusively (mode 0600, unpredictable name: no symlink planted in a
# shared /tmp can redirect it) and removed when the object goes away.
#
#   my $fd2 = Fd2Capture->start;
#   ... ; my $text = $fd2->new_text;    # what was written since the last call

use strict;
use warnings;
use File::Temp ();
use Test::More ();

sub start {
    my ($class) = @_;
    open my $real, '>&', \*STDERR or die "dup STDERR: $!";
    my $tb = Test::More->builder;
    $tb->failure_output($real);
    $tb->todo_output($real);
    my $tmp = File::Temp->new( TEMPLATE => 'asbp-fd2-XXXXXXXX', TMPDIR => 1 );
    open STDERR, '>&', $tmp or die "STDERR to $tmp: $!";
    STDERR->autoflush(1);
    return bless { tmp => $tmp, real => $real, pos => 0 }, $class;
}

# The file's name (for a child that appends to it).
sub file { $_[0]{tmp}->filename }

# What fd 2 received since the previous call.
sub new_text {
    my ($self) = @_;
    open my $fh, '<', $self->file or return '';
    seek $fh, $self->{pos}, 0;
    local $/;
    my $t = <$fh> // '';
    $self->{pos} += length $t;
    return $t;
}

1;
