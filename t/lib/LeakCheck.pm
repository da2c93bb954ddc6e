package LeakCheck;

# Helpers for the leak-over-time tests (t/80-*, t/81-*): the process's
# resident set size, and whether it means anything here.
#
#   LeakCheck::rss_kb()        VmRSS of this process, in kB (undef: unknown)
#   LeakCheck::tool()          'AddressSanitizer', 'valgrind' or undef: under
#                              these, RSS says nothing about leaks (ASan keeps
#                              freed memory in quarantine, valgrind has its
#                              own allocator), so the tests only run the loop
#                              (a shorter one) for the tool to check.
#   LeakCheck::cycles($n)      $n, or ASBP_LEAK_CYCLES, or $n/50 (>= 100)
#                              under a tool.

use strict;
use warnings;
use ToolCheck;

sub rss_kb {
    open my $fh, '<', '/proc/self/status' or return undef;
    while (<$fh>) {
        return $1 if /^VmRSS:\s+(\d+)\s+kB/;
    }
    return undef;
}

sub tool { ToolCheck::tool() }

sub cycles {
    my ($n) = @_;
    return $ENV{ASBP_LEAK_CYCLES} if $ENV{ASBP_LEAK_CYCLES};
    if ( tool() ) {
        my $m = int( $n / 50 );
        return $m < 100 ? 100 : $m;
    }
    return $n;
}

1;
