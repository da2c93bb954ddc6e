package CTest;

# Runs one C unit-test program (TAP on stdout) in place of this .t file.
# The programs are built by `make` into t/c/bin/; a missing one fails.

use strict;
use warnings;

sub run {
    my ($name) = @_;
    my $bin = "t/c/bin/$name";
    unless ( -x $bin ) {
        print "1..1\nnot ok 1 - $bin is not built (run perl Makefile.PL && make)\n";
        exit 1;
    }
    exec $bin or die "cannot run $bin: $!";
}

1;
