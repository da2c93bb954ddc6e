# Makefile.PL finds the libraries without pkg-config, and says NA (exit 0,
# no Makefile, the reason and install hints) for a missing library or a
# libpq without pipeline mode.  Each case runs Makefile.PL in a copy of the
# distribution, so the checkout's Makefile is left alone.
use strict;
use warnings;
use FindBin;
use Test::More;
use Config;
use Cwd qw(getcwd);
use File::Temp qw(tempdir);
use ExtUtils::Manifest ();

my $top = "$FindBin::Bin/..";
plan skip_all => "no C compiler ($Config{cc})"
  unless system("$Config{cc} --version >/dev/null 2>&1") == 0;

my $tmp = tempdir( CLEANUP => 1 );

# A copy of the distribution's files (MANIFEST) in a new directory.
sub dist_copy {
    my $dir = tempdir( DIR => $tmp );
    my $cwd = getcwd();
    chdir $top or die "chdir: $!";
    my $files = ExtUtils::Manifest::maniread();
    ExtUtils::Manifest::manicopy( $files, $dir, 'cp' );
    chdir $cwd or die "chdir: $!";
    return $dir;
}

# Runs Makefile.PL in $dir with %env added: (exit status, output).
sub configure {
    my ( $dir, %env ) = @_;
    local @ENV{ keys %env } = values %env;
    delete local $ENV{$_} for grep { /^ASBP_(PQ|CURL|YAJL)_/ && !exists $env{$_} } keys %ENV;
    my $out = `cd '$dir' && '$^X' Makefile.PL 2>&1`;
    return ( $? >> 8, $out );
}

# A libpq from before pipeline mode: PQconnectStartParams only.
my $old = "$tmp/oldpq";
mkdir $old or die "$old: $!";
{
    open my $h, '>', "$old/libpq-fe.h" or die $!;
    print $h "typedef struct pg_conn PGconn;\n"
      . "PGconn *PQconnectStartParams(const char *const *k, const char *const *v, int e);\n";
    open my $c, '>', "$old/pq.c" or die $!;
    print $c "#include \"libpq-fe.h\"\n"
      . "PGconn *PQconnectStartParams(const char *const *k, const char *const *v, int e)\n"
      . "{ (void)k; (void)v; (void)e; return 0; }\n";
}
system("cd '$old' && $Config{cc} -c pq.c -o pq.o && ar cr libpq.a pq.o") == 0
  or plan skip_all => 'cannot build the stand-in for an old libpq';

my $dir = dist_copy();
my ( $rc, $out ) = configure( $dir, ASBP_PQ_CFLAGS => "-I$old", ASBP_PQ_LIBS => "-L$old -lpq" );
is( $rc, 0, 'libpq without pipeline mode: Makefile.PL exits 0' );
like( $out, qr/^NA: libpq .* has no pipeline mode/m, '... and says NA and why' );
like( $out, qr/apt-get install libpq-dev/, '... with the Debian hint' );
like( $out, qr/dnf install libpq-devel/, '... the RHEL/Fedora hint' );
like( $out, qr/pkg install postgresql\d+-client/, '... the FreeBSD hint' );
like( $out, qr/brew install libpq/, '... the Homebrew hint' );
ok( !-e "$dir/Makefile", '... and writes no Makefile' );

( $rc, $out ) = configure( $dir, ASBP_YAJL_LIBS => '-lasbp_no_such_library' );
is( $rc, 0, 'a library not found: Makefile.PL exits 0' );
like( $out, qr/^NA: cannot find yajl/m, '... and says NA and what is missing' );
like( $out, qr/-lasbp_no_such_library/, '... and what it tried' );
like( $out, qr/yajl-devel .*CRB/s, '... with the RHEL hint (CRB)' );
ok( !-e "$dir/Makefile", '... and writes no Makefile' );

# Without pkg-config: pg_config, curl-config or the default paths.
( $rc, $out ) = configure( $dir, PKG_CONFIG => "$tmp/no-pkg-config" );
is( $rc, 0, 'without pkg-config: Makefile.PL succeeds' ) or diag $out;
unlike( $out, qr/through pkg-config/, '... without pkg-config' );
like( $out, qr/^Found libpq .* through \S*pg_config|^Found libpq .* through the default paths/m,
    '... libpq through pg_config or the default paths' );
like( $out, qr/^Found libcurl through (curl-config|the default paths)/m, '... libcurl too' );
like( $out, qr/^Found yajl .* through the default paths/m, '... yajl from the default paths' );
ok( -e "$dir/Makefile", '... and writes the Makefile' );

done_testing;
