# Every public subroutine of the two modules is documented.  Run it on the
# built module (prove -b xt/): XSUBs count as subroutines.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use ReleaseNeeds;
use Test::More;

needs( 'Test::Pod::Coverage', '1.08', 'libtest-pod-coverage-perl' );
needs( 'Pod::Coverage',       '0.18', 'libpod-coverage-perl' );

# The modules of lib/, named here so that a new one is a decision: the test
# below fails when lib/ holds a package this list does not name.
my @modules = qw(
  Apache::Session::Browseable::Patroni
  Apache::Session::Browseable::Store::Patroni
);

my %listed = map { $_ => 1 } @modules;
my @found;
require File::Find;
no warnings 'once';    # $File::Find::name
File::Find::find(
    sub {
        return unless /\.pm\z/;
        open my $fh, '<', $_ or die "$File::Find::name: $!";
        push @found, map { /^package\s+([\w:]+)/ ? $1 : () } <$fh>;
    },
    "$FindBin::Bin/../lib"
);
is_deeply( [ sort grep { !$listed{$_} } @found ], [], 'every package of lib/ is listed here' );

Test::Pod::Coverage::pod_coverage_ok($_) for @modules;
done_testing;
