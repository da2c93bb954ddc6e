# POD syntax of every file that has POD: the modules and bin/.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use ReleaseNeeds;
use Test::More;

needs( 'Test::Pod', '1.41', 'libtest-pod-perl' );
chdir "$FindBin::Bin/.." or die "chdir: $!";
my @files = Test::Pod::all_pod_files(qw(lib bin));
ok( scalar(@files) >= 3, 'POD found in lib/ and bin/' ) or diag "@files";
Test::Pod::pod_file_ok($_) for @files;
done_testing;
