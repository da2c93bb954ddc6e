package ToolCheck;

# Whether this test process runs under a memory checker, which slows it
# down and makes its RSS meaningless.
#
#   ToolCheck::tool()   'AddressSanitizer', 'valgrind' or undef
#   ToolCheck::slow()   a factor for time bounds: 5 under a tool, else 1;
#                       ASBP_TIME_FACTOR overrides it (a busy machine)

use strict;
use warnings;

my $tool;

sub tool {
    return $tool if defined $tool;
    $tool = '';
    if ( open my $fh, '<', '/proc/self/maps' ) {
        while (<$fh>) {
            if (m{/libasan\.so}) { $tool = 'AddressSanitizer'; last }
            if (m{/vgpreload_})  { $tool = 'valgrind';         last }
        }
    }
    return $tool || undef;
}

sub slow {
    return $ENV{ASBP_TIME_FACTOR} if $ENV{ASBP_TIME_FACTOR} and $ENV{ASBP_TIME_FACTOR} =~ /^\d+(?:\.\d+)?$/;
    return tool() ? 5 : 1;
}

1;
