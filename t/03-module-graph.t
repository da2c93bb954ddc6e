# The C core's modules depend on each other without a cycle (issue 10):
# tools/module-graph draws the include graph of c_src/ and exits 1 on a cycle.
use strict;
use warnings;
use Test::More;

my $out = `$^X tools/module-graph c_src 2>&1`;
my $rc  = $? >> 8;
is( $rc, 0, 'c_src/ module graph has no cycle' ) or diag $out;
like( $out, qr/^asbp_conn\s/m, 'the graph lists the connection module' );
unlike( ( $out =~ /^asbp_ctx\s+(.*)$/m )[0] // '', qr/\basbp_source\b/,
    'the context does not depend on the source' );
done_testing;
