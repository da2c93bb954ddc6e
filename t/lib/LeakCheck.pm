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
#   LeakCheck::run(\&cycle, $warmup, $cycles)
#                              calls cycle($i) for 1..$cycles; returns the
#                              RSS after the warm-up, the RSS at the end,
#                              and the seconds it all took
#   LeakCheck::check_growth($rss0, $rss1, $warmup, $cycles, $bound_kb)
#                              one test: RSS grew by less than $bound_kb
#                              between the end of the warm-up and the end of
#                              the run (skipped, saying why, under a tool or
#                              without /proc)

use strict;
use warnings;
use ToolCheck;
use Test::More ();
use Time::HiRes ();

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

sub run {
    my ( $cycle, $warmup, $cycles ) = @_;
    my $t0 = Time::HiRes::time();
    $cycle->($_) for 1 .. $warmup;
    my $rss0 = rss_kb();
    $cycle->($_) for $warmup + 1 .. $cycles;
    return ( $rss0, rss_kb(), Time::HiRes::time() - $t0 );
}

sub check_growth {
    my ( $rss0, $rss1, $warmup, $cycles, $bound_kb ) = @_;
  SKIP: {
        my $tool = tool();
        Test::More::skip( "RSS says nothing about leaks under $tool (it checks them itself)", 1 ) if $tool;
        Test::More::skip( 'no /proc/self/status', 1 ) unless defined $rss0 and defined $rss1;
        my $growth = $rss1 - $rss0;
        my $n      = $cycles - $warmup;
        Test::More::diag( sprintf 'RSS after %d warm-up cycles: %d kB; after %d more: %d kB (%+d kB, %+.1f bytes/cycle)',
            $warmup, $rss0, $n, $rss1, $growth, $growth * 1024 / $n );
        Test::More::cmp_ok( $growth, '<', $bound_kb, "RSS growth over $n cycles below $bound_kb kB" );
    }
}

1;
