package ReleaseNeeds;

# The rule every xt/ test follows for the modules it needs: when one is
# missing the test skips, naming the module and the Debian package that
# brings it, except under RELEASE_TESTING=1, where it fails: a release
# check must not pass by skipping what it was meant to check.
use strict;
use warnings;
use Exporter 'import';
use Test::More ();

our @EXPORT = qw(needs);

sub needs {
    my ( $module, $version, $package ) = @_;
    ( my $file = "$module.pm" ) =~ s{::}{/}g;
    return 1 if eval { require $file; $module->VERSION($version); 1 };
    my $why = "$module $version or later is not installed (Debian: apt-get install $package)";
    if ( $ENV{RELEASE_TESTING} ) {
        Test::More::plan( tests => 1 );
        Test::More::fail("RELEASE_TESTING=1 and $why");
        exit 1;
    }
    Test::More::plan( skip_all => $why );
}

1;
