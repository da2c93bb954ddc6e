# The distribution's metadata: META.json and META.yml in a tarball (or
# MYMETA.* in a checkout after `perl Makefile.PL`) validate against the
# CPAN::Meta specification and say what this distribution is: every module
# in provides with its version, the build directories out of the index,
# the prerequisites as the code uses them.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use ReleaseNeeds;
use Test::More;
use ExtUtils::MakeMaker ();

needs( 'CPAN::Meta', '2.120920', 'perl-modules (CPAN::Meta is a core module)' );
require CPAN::Meta::Validator;
require Parse::CPAN::Meta;
chdir "$FindBin::Bin/.." or die "chdir: $!";

my @files = grep { -f } qw(META.json META.yml);
@files = grep { -f } qw(MYMETA.json MYMETA.yml) unless @files;
if ( !@files ) {
    plan skip_all => 'no META.json or MYMETA.json: run perl Makefile.PL (or make distdir) first'
      unless $ENV{RELEASE_TESTING};
    fail('RELEASE_TESTING=1 and no META.json or MYMETA.json: run perl Makefile.PL first');
    done_testing;
    exit;
}

for my $file (@files) {
    my $struct = eval { Parse::CPAN::Meta->load_file($file) };
    ok( $struct, "$file parses" ) or diag $@;
    my $v = CPAN::Meta::Validator->new( $struct // {} );
    ok( $v->is_valid, "$file is valid (meta-spec " . ( $struct->{'meta-spec'}{version} // '?' ) . ")" )
      or diag join "\n", $v->errors;
}

my ($json) = grep { /\.json\z/ } @files;
my $meta = CPAN::Meta->load_file($json);
is_deeply( [ $meta->licenses ], ['perl_5'], 'licence: perl_5' );
ok( -f 'LICENSE', 'a LICENSE file' );

# provides: every package of lib/, its file and its $VERSION.
my %pkgs;
require File::Find;
no warnings 'once';    # $File::Find::name
File::Find::find(
    sub {
        return unless /\.pm\z/;
        open my $fh, '<', $_ or die "$File::Find::name: $!";
        for (<$fh>) { $pkgs{$1} = $File::Find::name =~ s{^\./}{}r if /^package\s+([\w:]+)/ }
    },
    'lib'
);
my $provides = $meta->provides;
is_deeply( [ sort keys %$provides ], [ sort keys %pkgs ], 'provides names every package of lib/' );
for my $p ( sort keys %pkgs ) {
    is( $provides->{$p}{file}, $pkgs{$p}, "provides: file of $p" );
    is( $provides->{$p}{version}, MM->parse_version( $pkgs{$p} ), "provides: version of $p" );
}

my %noindex = map { $_ => 1 } @{ $meta->no_index->{directory} || [] };
ok( $noindex{$_}, "no_index: $_/" ) for qw(t xt tools bench fuzz xs c_src inc);

# Prerequisites as the code uses them.
my $prereqs = $meta->effective_prereqs;
my $runtime = $prereqs->requirements_for( 'runtime', 'requires' );
my $test    = $prereqs->requirements_for( 'test',    'requires' );
my %rt = map { $_ => 1 } $runtime->required_modules;
ok( $rt{$_}, "runtime requires $_" ) for qw(Apache::Session JSON::XS XSLoader JSON::PP);
ok( !$rt{'Crypt::URandom'}, 'Crypt::URandom is not required (nothing uses it)' );
ok( !grep( { $_ eq 'IO::Socket::SSL' } $test->required_modules ),
    'IO::Socket::SSL is not a test requirement (the TLS tests skip without it)' );
my %test_rec = map { $_ => 1 } $prereqs->requirements_for( 'test', 'recommends' )->required_modules;
ok( $test_rec{'IO::Socket::SSL'}, 'IO::Socket::SSL recommended for the tests' );
my %rt_rec = map { $_ => 1 } $prereqs->requirements_for( 'runtime', 'recommends' )->required_modules;
ok( $rt_rec{'Lemonldap::NG::Common::Conf'}, 'LemonLDAP::NG recommended (asbp-patroni --llng)' );

# Every module lib/ and bin/ load outside the core and this distribution is
# required at run time.
my %used;
for my $f ( sort( values %pkgs ), glob('bin/*') ) {
    open my $fh, '<', $f or die "$f: $!";
    while (<$fh>) {
        last if /^__END__/;
        $used{$1} = 1 if /^\s*(?:use|require)\s+([A-Z][\w:]+)/;
    }
}
require Module::CoreList;
my @missing = grep {
    !$pkgs{$_} and !$rt{$_} and !Module::CoreList::is_core( $_, undef, '5.014' )
      and $_ ne 'Lemonldap::NG::Common::Conf'    # recommended: --llng only
} sort keys %used;
is_deeply( \@missing, [], 'every non-core module that lib/ and bin/ load is a runtime prerequisite' );

done_testing;
