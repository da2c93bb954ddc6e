# MANIFEST lists every file of the distribution, each one exists, and it is
# sorted (case-insensitively), so that additions land in one place.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use ReleaseNeeds;
use Test::More;

needs( 'ExtUtils::Manifest', '1.60', 'perl-modules (ExtUtils::Manifest is a core module)' );
chdir "$FindBin::Bin/.." or die "chdir: $!";

# manicheck and filecheck print what they find on STDERR: caught and
# shown as diagnostics.
sub quietly {
    my ($code) = @_;
    my $out = '';
    open my $save, '>&', \*STDERR or die "dup: $!";
    close STDERR;
    open STDERR, '>', \$out or die "STDERR: $!";
    my @r = $code->();
    close STDERR;
    open STDERR, '>&', $save or die "restore: $!";
    return ( \@r, $out );
}

my ( $missing, $m_out ) = quietly( \&ExtUtils::Manifest::manicheck );
is_deeply( $missing, [], 'every file in MANIFEST exists' ) or diag $m_out;
my ( $extra, $e_out ) = quietly( \&ExtUtils::Manifest::filecheck );
is_deeply( $extra, [], 'every file is in MANIFEST or matched by MANIFEST.SKIP' ) or diag $e_out;

my @names = keys %{ ExtUtils::Manifest::maniread() };
open my $fh, '<', 'MANIFEST' or die "MANIFEST: $!";
# (make dist appends META.json and META.yml at the end: left out.)
my @lines = map { /^(\S+)/ ? $1 : () } grep { !/^#/ && !/\(added by MakeMaker\)/ } <$fh>;
is_deeply( \@lines, [ sort { lc $a cmp lc $b } @lines ], 'MANIFEST is sorted, case-insensitively' );
ok( ( grep { $_ eq 'LICENSE' } @names ), 'LICENSE is in MANIFEST' );
done_testing;
