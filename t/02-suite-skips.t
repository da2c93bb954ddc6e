# The suite's own behaviour where what it needs is missing (issue 14).
#
# A CPAN client in a hosted CI job (which sets CI=true) on a machine without
# PostgreSQL, Patroni or openssl must see the database, cluster and TLS
# tests skip with their reason, not fail; only the project's own
# ASBP_REQUIRE_DB / ASBP_REQUIRE_CLUSTER turn those skips into failures.
#
# First, in this process: where t/lib looks for the programs
# (PgServer::bindir, PatroniCluster::program, TestCA::tls_available) and
# which variables make a skip a failure.  Then a few real tests run as
# children with CI=true, no ASBP_REQUIRE_*, a PATH holding only a link to
# this perl (so no openssl, pg_config, initdb...), and ASBP_PG_BINDIR
# pointing at an empty directory: set, it is the only place PgServer looks,
# which hides the PostgreSQL of a machine that has one.
use strict;
use warnings;
use Test::More;
use Cwd ();
use File::Temp qw(tempdir);
use POSIX ();
use lib 't/lib';
use PgServer;
use PatroniCluster;
use TestCA;

my $tmp = Cwd::realpath( tempdir( 'asbp-skips-XXXXXX', TMPDIR => 1, CLEANUP => 1 ) );

sub mkdirs { for (@_) { mkdir $_ or die "$_: $!" } }

# An executable shell script.
sub script {
    my ( $file, $body ) = @_;
    open my $fh, '>', $file or die "$file: $!";
    print $fh "#!/bin/sh\n$body\n";
    close $fh or die "$file: $!";
    chmod 0755, $file or die "$file: $!";
}

sub fake_server_dir {
    my ($d) = @_;
    mkdirs($d);
    script( "$d/$_", 'exit 0' ) for qw(initdb pg_ctl postgres psql);
    return $d;
}

# ---- where PostgreSQL is found ----------------------------------------------

my $empty = "$tmp/empty";
mkdirs($empty);
{
    my $set = fake_server_dir("$tmp/set");
    local $ENV{ASBP_PG_BINDIR} = $set;
    is( PgServer::bindir(), $set, 'ASBP_PG_BINDIR names the directory' );

    $ENV{ASBP_PG_BINDIR} = $empty;
    my ( $d, $why ) = PgServer::find_bindir();
    is( $d, undef, 'ASBP_PG_BINDIR at an empty directory: no PostgreSQL, wherever one is installed' );
    like( $why, qr/ASBP_PG_BINDIR=\Q$empty\E does not hold initdb pg_ctl postgres psql/,
        '  the reason names the variable and the programs' );
}
{
    local $ENV{ASBP_PG_BINDIR};
    my $config = fake_server_dir("$tmp/config");
    my $inpath = fake_server_dir("$tmp/inpath");
    mkdirs("$tmp/tools");
    # (shell builtins only: nothing else is in this PATH)
    script( "$tmp/tools/pg_config", qq{read d < $tmp/said; [ "\$1" = --bindir ] && echo "\$d"} );
    my $say = sub {
        open my $fh, '>', "$tmp/said" or die "$tmp/said: $!";
        print $fh "$_[0]\n";
        close $fh;
    };
    local $ENV{PATH} = "$tmp/tools:$inpath";
    $say->($config);
    is( PgServer::bindir(), $config, 'pg_config --bindir comes before PATH' );
    $say->($empty);
    is( PgServer::bindir(), $inpath, 'then the PATH directory holding initdb' );

    mkdirs("$tmp/links");
    symlink "$config/initdb", "$tmp/links/initdb" or die "symlink: $!";
    $ENV{PATH} = "$tmp/links";
    is( PgServer::bindir(), $config,
        'a linked initdb (Homebrew, /usr/local/bin): the directory it points into' );

    is_deeply(
        [ PgServer::newest_first(qw(/usr/lib/postgresql/9.6/bin /usr/lib/postgresql/16/bin
              /usr/lib/postgresql/10/bin)) ],
        [qw(/usr/lib/postgresql/16/bin /usr/lib/postgresql/10/bin /usr/lib/postgresql/9.6/bin)],
        'the usual directories: newest version first'
    );
    is_deeply( [ map { PgServer::ver($_) } qw(/usr/pgsql-15/bin /opt/homebrew/opt/postgresql@14/bin) ],
        [ 15, 14 ], '  RHEL and Homebrew names read' );
}

# ---- Patroni, etcd and TLS ------------------------------------------------------

{
    mkdirs("$tmp/cluster");
    script( "$tmp/cluster/$_", 'exit 0' ) for qw(patroni patronictl etcd);
    local $ENV{PATH} = "$tmp/cluster";
    is( PatroniCluster::program($_), "$tmp/cluster/$_", "$_ found through PATH" )
      for qw(patroni patronictl etcd);
}
{
    local $ENV{PATH} = $empty;
    my ( $ok, $why ) = TestCA::tls_available();
    ok( !$ok, 'no openssl in PATH: no test certificates' );
    like( $why, qr/openssl command is not installed/, '  the reason says so' );

    mkdirs("$tmp/ssl");
    script( "$tmp/ssl/openssl", 'exit 0' );
    $ENV{PATH} = "$tmp/ssl";
    ok( ( TestCA::tls_available() )[0], 'openssl in PATH: test certificates' );
  SKIP: {
        skip 'IO::Socket::SSL already loaded', 2 if $INC{'IO/Socket/SSL.pm'};
        local @INC = ( sub { die "hidden\n" if $_[1] eq 'IO/Socket/SSL.pm'; return }, @INC );
        ( $ok, $why ) = TestCA::tls_available( https => 1 );
        ok( !$ok, 'no IO::Socket::SSL: no test HTTPS server' );
        like( $why, qr/IO::Socket::SSL is not installed/, '  the reason says so' );
    }
}

# ---- which variables make a skip a failure ---------------------------------------

{
    local @ENV{qw(CI ASBP_REQUIRE_DB ASBP_REQUIRE_CLUSTER)} = ('true');
    ok( !PgServer::required(),                'CI=true does not require PostgreSQL' );
    ok( !TestCA::required(),                  '  nor the TLS tests' );
    ok( !PatroniCluster::cluster_required(), '  nor a Patroni cluster' );
    $ENV{ASBP_REQUIRE_DB} = $ENV{ASBP_REQUIRE_CLUSTER} = 1;
    ok( PgServer::required() && TestCA::required(), 'ASBP_REQUIRE_DB=1 requires PostgreSQL and TLS' );
    ok( PatroniCluster::cluster_required(), 'ASBP_REQUIRE_CLUSTER=1 requires a cluster' );
    $ENV{ASBP_REQUIRE_DB} = $ENV{ASBP_REQUIRE_CLUSTER} = 'false';
    ok( !PgServer::required() && !PatroniCluster::cluster_required(), '"false" requires nothing' );
}

# ---- real tests in a bare environment ------------------------------------------

# The children find this distribution's modules (blib under prove -b or
# make test) through PERL5LIB: @INC made absolute.
my @lib = grep { !ref && -d } @INC;
my $perl5lib = join ':', map { Cwd::realpath($_) // $_ } @lib;
mkdirs("$tmp/perlbin");
symlink Cwd::realpath($^X), "$tmp/perlbin/perl" or die "symlink: $!";

my %BARE = (
    HOME           => $ENV{HOME} // '/',
    TMPDIR         => $ENV{TMPDIR} // '/tmp',
    PATH           => "$tmp/perlbin",
    PERL5LIB       => $perl5lib,
    CI             => 'true',
    ASBP_PG_BINDIR => $empty,
    # a sanitizer build needs its runtime in every perl that loads it
    # (tools/sanitize: $^X is then a wrapper that preloads it)
    map { defined $ENV{$_} ? ( $_ => $ENV{$_} ) : () }
      qw(LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS ASBP_SANITIZER_PERL PERL_DL_NONLAZY),
);

# Runs @cmd with %BARE plus %extra only; (exit code, stdout+stderr).
sub bare {
    my ( $extra, @cmd ) = @_;
    pipe my $r, my $w or die "pipe: $!";
    my $pid = fork // die "fork: $!";
    if ( !$pid ) {
        close $r;
        open STDIN,  '<',  '/dev/null';
        open STDOUT, '>&', $w;
        open STDERR, '>&', $w;
        %ENV = ( %BARE, %$extra );
        exec { "$tmp/perlbin/perl" } 'perl', @cmd or POSIX::_exit(127);
    }
    close $w;
    my $out = do { local $/; <$r> } // '';
    close $r;
    waitpid $pid, 0;
    return ( $? >> 8, $out );
}

{
    # Guard: a real cluster must never start from here.
    local %ENV = %BARE;
    my ( $ok, $why ) = PatroniCluster::available();
    if ( $ok || PgServer::bindir() ) {
        fail('the bare environment still finds PostgreSQL: not running the children');
        done_testing;
        exit 1;
    }
}

my @whole = qw(t/05-c-pool.t t/10-tie.t t/39-pg-tls.t t/70-cluster-helper.t);
my $prove = 'use App::Prove; my $p = App::Prove->new; $p->process_args(@ARGV); exit( $p->run ? 0 : 1 )';
my ( $rc, $out ) = bare( {}, '-e', $prove, @whole );
is( $rc, 0, 'CI=true, no PostgreSQL, Patroni or openssl: prove passes' ) or diag $out;
my $pg_why = qr/ASBP_PG_BINDIR=\Q$empty\E does not hold/;
like( $out, qr{^t/05-c-pool\.t \.+ skipped: needs a PostgreSQL server: $pg_why}m, '  t/05 (C) skipped, with the reason' );
like( $out, qr{^t/10-tie\.t \.+ skipped: needs a PostgreSQL server: $pg_why}m, '  t/10 skipped, with the reason' );
like( $out, qr{^t/39-pg-tls\.t \.+ skipped: needs test certificates: the openssl command is not installed}m,
    '  t/39 (TLS) skipped, with the reason' );
like( $out, qr{^t/70-cluster-helper\.t \.+ skipped: no Patroni cluster: $pg_why}m,
    '  t/70 (cluster) skipped, with the reason' );

( $rc, $out ) = bare( {}, 't/31-discovery.t' );
is( $rc, 0, 't/31 passes without openssl' ) or diag $out;
like( $out, qr/^ok \d+ # skip TLS tests: the openssl command is not installed/m, '  its TLS part skipped, with the reason' );

for my $t (qw(t/05-c-pool.t t/10-tie.t)) {
    ( $rc, $out ) = bare( { ASBP_REQUIRE_DB => 1 }, $t );
    isnt( $rc, 0, "ASBP_REQUIRE_DB=1: $t fails" );
    like( $out, qr/^not ok 1 - PostgreSQL is required here \(ASBP_REQUIRE_DB set\): $pg_why/m, '  saying why' );
}
for my $t (qw(t/39-pg-tls.t t/31-discovery.t)) {
    ( $rc, $out ) = bare( { ASBP_REQUIRE_DB => 1 }, $t );
    isnt( $rc, 0, "ASBP_REQUIRE_DB=1: $t fails" );
    like( $out, qr/^not ok \d+ - the TLS tests are required here \(ASBP_REQUIRE_DB set\): the openssl command/m,
        '  saying why' );
}
( $rc, $out ) = bare( { ASBP_REQUIRE_CLUSTER => 1 }, 't/70-cluster-helper.t' );
isnt( $rc, 0, 'ASBP_REQUIRE_CLUSTER=1: t/70 fails' );
like( $out, qr/^not ok 1 - Patroni cluster required \(ASBP_REQUIRE_CLUSTER set\) but unavailable: $pg_why/m,
    '  saying why' );

done_testing;
