package PgServer;

# A throwaway PostgreSQL server for the tests: initdb in a temporary
# directory, a free port on 127.0.0.1, an application user and a sessions
# table; always stopped (by pid) when the test ends, even when it dies.
#
#   use lib 't/lib';
#   use PgServer;
#   my $pg = PgServer->start_or_skip;      # skips, or fails with ASBP_REQUIRE_DB=1
#   my $args = { $pg->options };           # DataSource, UserName, Password
#
# Options of start_or_skip/new: port, password (of the role), host_auth
# (the pg_hba method for TCP: scram-sha-256 by default, md5, trust...),
# settings (name => value), table, no_table, fsync, and tls => 1: ssl=on
# with a server certificate for 127.0.0.1 signed by the TestCA test CA
# (ca_file gives its file; needs the openssl command).  set_host_auth and
# use_certificate change the method and the certificate of a running
# server (reloaded).
#
# When the server programs are missing the test is skipped with a clear
# message, unless ASBP_REQUIRE_DB is set (and not 0/false): then it fails.
# Only the project's own variables make a skip a failure, never the generic
# CI variable every hosted CI service sets (a CPAN client building this
# distribution in such a job has no PostgreSQL).  As root, the server runs
# as the unprivileged user "postgres".
#
# Where the server programs are found (bindir, used by every helper that
# runs them: this one, PatroniCluster, the benchmarks):
#   1. ASBP_PG_BINDIR, when set: there and nowhere else.  A directory
#      without the programs, an empty one for instance, means "no
#      PostgreSQL": t/02-suite-skips.t hides the server that way on a
#      machine that has one.
#   2. the directory `pg_config --bindir` names (pg_config found through
#      PATH);
#   3. the first PATH directory holding initdb;
#   4. the usual places, newest version first within each:
#      /usr/lib/postgresql/N/bin (Debian, Ubuntu), /usr/pgsql-N/bin (RHEL,
#      Fedora, PGDG packages), /usr/local/bin (FreeBSD),
#      /opt/homebrew/opt/postgresql@N/bin and /usr/local/opt/postgresql@N/bin
#      (Homebrew).
# A directory qualifies when initdb, pg_ctl, postgres and psql are all
# there; when initdb is a symbolic link (Homebrew's bin/, a hand-made link
# in /usr/local/bin) the directory it points into is used, so that every
# program comes from the same installation.

use strict;
use warnings;
use Carp qw(croak);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX qw(:sys_wait_h);
use ProcSpawn ();
use ProcTree ();
use Time::HiRes qw(sleep time);

our @LIVE;    # servers started by this process

# ---- finding the programs -------------------------------------------------

my @PG_PROGRAMS = qw(initdb pg_ctl postgres psql);

# The directory of the server programs (see the top of the file), or undef.
sub bindir { return ( find_bindir() )[0] }

# ($dir) or (undef, $reason).
sub find_bindir {
    if ( defined $ENV{ASBP_PG_BINDIR} && length $ENV{ASBP_PG_BINDIR} ) {
        my $d = $ENV{ASBP_PG_BINDIR};
        return ( server_dir($d) ) if server_dir($d);
        return ( undef, "ASBP_PG_BINDIR=$d does not hold @PG_PROGRAMS "
              . '(when set, it is the only place looked at)' );
    }
    for my $d ( pg_config_bindir(), path_bindir(), usual_bindirs() ) {
        my $ok = server_dir($d);
        return ($ok) if $ok;
    }
    return ( undef, "PostgreSQL server programs (@PG_PROGRAMS) not found through pg_config, "
          . 'PATH, /usr/lib/postgresql/*/bin, /usr/pgsql-*/bin, /usr/local/bin or Homebrew; '
          . 'install the server (Debian/Ubuntu: postgresql; RHEL/Fedora: postgresql-server; '
          . 'FreeBSD: postgresqlNN-server; macOS: brew install postgresql@16) '
          . 'or set ASBP_PG_BINDIR to its bin directory' );
}

# The directory holding all the programs, following a link to initdb; or
# undef.
sub server_dir {
    my ($d) = @_;
    return undef unless defined $d && -x "$d/initdb";
    if ( -l "$d/initdb" ) {
        require Cwd;
        require File::Basename;
        my $real = Cwd::realpath("$d/initdb");
        $d = File::Basename::dirname($real) if defined $real;
    }
    return ( grep { !-f "$d/$_" || !-x _ } @PG_PROGRAMS ) ? undef : $d;
}

sub pg_config_bindir {
    my $pgc = which('pg_config') or return;
    open my $fh, '-|', $pgc, '--bindir' or return;
    my $d = <$fh>;
    close $fh;
    return unless defined $d;
    chomp $d;
    return length $d ? $d : ();
}

sub path_bindir {
    my $initdb = which('initdb') or return;
    require File::Basename;
    return File::Basename::dirname($initdb);
}

sub usual_bindirs {
    return (
        newest_first( glob '/usr/lib/postgresql/*/bin' ),
        newest_first( glob '/usr/pgsql-*/bin' ),
        '/usr/local/bin',
        newest_first( glob '/opt/homebrew/opt/postgresql@*/bin' ),
        newest_first( glob '/usr/local/opt/postgresql@*/bin' ),
    );
}

sub newest_first { return sort { ver($b) <=> ver($a) || $a cmp $b } @_ }

# 15 for .../postgresql/15/bin, pgsql-15, postgresql@15; 9.006 for 9.6.
sub ver {
    my ($d) = @_;
    return $d =~ m{(\d+)(?:\.(\d+))?/bin/?\z} ? $1 + ( $2 // 0 ) / 1000 : 0;
}

# The first executable NAME in PATH, then in @dirs; or undef.
sub which { return ProcSpawn::which(@_) }

sub truthy { my ($v) = @_; return defined $v && $v ne '' && $v ne '0' && lc $v ne 'false' }

sub required { return truthy( $ENV{ASBP_REQUIRE_DB} ) }

# (1) or (0, reason)
sub available {
    my ( $bin, $why ) = find_bindir();
    return ( 0, $why ) unless $bin;
    if ( $> == 0 ) {
        my @pw = getpwnam('postgres');
        return ( 0, 'running as root and no "postgres" user to run the server as' ) unless @pw;
    }
    return (1);
}

# Skips the whole test (or fails it with ASBP_REQUIRE_DB=1) when no server
# can be started.
sub start_or_skip {
    my ( $class, %opt ) = @_;
    my ( $ok, $why ) = available();
    my $pg;
    if ($ok) {
        $pg = eval { $class->new(%opt) };
        ( $ok, $why ) = ( 0, "cannot start PostgreSQL: $@" ) unless $pg;
    }
    return $pg if $ok;
    require Test::More;
    if ( required() ) {
        Test::More::plan( tests => 1 );
        Test::More::fail("PostgreSQL is required here (ASBP_REQUIRE_DB set): $why");
        exit 1;
    }
    Test::More::plan( skip_all => "needs a PostgreSQL server: $why" );
}

sub free_port {
    require FreePort;
    return FreePort::pick(1);
}

# Runs a command, as postgres when we are root; returns its output.
sub run_as {
    my ( $self, @cmd ) = @_;
    my $out = '';
    pipe( my $r, my $w ) or croak "pipe: $!";
    my $pid = fork // croak "fork: $!";
    if ( !$pid ) {
        close $r;
        open STDOUT, '>&', $w;
        open STDERR, '>&', $w;
        open STDIN, '<', '/dev/null';
        $self->drop_privileges;
        chdir '/';    # the test's directory may not be readable by postgres
        $ENV{LC_ALL} = 'C.UTF-8';
        # A sanitizer runtime preloaded into the test's perl is not for the
        # server's programs.
        delete @ENV{qw(LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS)};
        delete @ENV{qw(PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE PGSERVICE PGOPTIONS)};
        exec @cmd or POSIX::_exit(127);
    }
    close $w;
    local $/;
    $out = <$r> // '';
    close $r;
    waitpid $pid, 0;
    return wantarray ? ( $? >> 8, $out ) : $out;
}

sub drop_privileges {
    my ($self) = @_;
    return unless $> == 0;
    my ( $uid, $gid ) = ( getpwnam('postgres') )[ 2, 3 ];
    $( = $) = "$gid $gid";
    $< = $> = $uid;
    die "cannot become postgres" if $> != $uid;
}

sub new {
    my ( $class, %opt ) = @_;
    my $bin = bindir() or croak "no PostgreSQL binaries";
    my $base = tempdir( 'asbp-pg-XXXXXX', TMPDIR => 1, CLEANUP => 0 );
    chmod 0755, $base;
    my $self = bless {
        bin      => $bin,
        base     => $base,
        data     => "$base/data",
        sock     => "$base/sock",
        log      => "$base/server.log",
        port     => $opt{port} || free_port(),
        user     => 'llng',
        password => $opt{password} // 'llng-secret-pw',
        tls      => $opt{tls},    # ssl=on, see setup_tls
        dbname   => 'sessions',
        owner    => $$,
        fsync    => $opt{fsync} // 0,
        host_auth => $opt{host_auth} || 'scram-sha-256',
        settings => $opt{settings} || {},
        listen   => $opt{listen} || '127.0.0.1',    # a loopback address to listen on
    }, $class;
    mkdir $self->{sock};
    if ( $> == 0 ) {
        my ( $uid, $gid ) = ( getpwnam('postgres') )[ 2, 3 ];
        chown $uid, $gid, $base, $self->{sock};
    }
    push @LIVE, $self;
    my ( $rc, $out ) = $self->run_as( "$bin/initdb", '-D', $self->{data}, '-U', 'postgres',
        '--auth-local=trust', "--auth-host=$self->{host_auth}", '-E', 'UTF8', '--locale=C.UTF-8' );
    croak "initdb failed ($rc): $out" if $rc;
    $self->setup_tls if $self->{tls};
    $self->start;
    $self->psql_super( "CREATE ROLE $self->{user} LOGIN PASSWORD '$self->{password}'",
        'postgres' );
    $self->store_password if $self->{host_auth} eq 'md5';
    $self->psql_super( "CREATE DATABASE $self->{dbname} OWNER $self->{user}", 'postgres' );
    $self->create_table( $opt{table} || 'sessions' ) unless $opt{no_table};
    return $self;
}

sub start {
    my ($self) = @_;
    my @o = (
        "-p $self->{port}", "-k $self->{sock}", "-h $self->{listen}",
        '-c shared_buffers=32MB', '-c max_connections=200',
        '-c fsync=' . ( $self->{fsync} ? 'on' : 'off' ),
        map { "-c $_=$self->{settings}{$_}" } sort keys %{ $self->{settings} }
    );
    my ( $rc, $out ) = $self->run_as( "$self->{bin}/pg_ctl", '-D', $self->{data}, '-l',
        $self->{log}, '-o', join( ' ', @o ), '-w', '-t', '60', 'start' );
    if ($rc) {
        my $log = '';
        if ( open my $fh, '<', $self->{log} ) { local $/; $log = <$fh> }
        croak "pg_ctl start failed ($rc): $out\n$log";
    }
    $self->{running} = 1;
    return $self;
}

sub stop {
    my ( $self, $mode ) = @_;
    return unless $self->{running} and $$ == $self->{owner};
    $self->run_as( "$self->{bin}/pg_ctl", '-D', $self->{data}, '-m', $mode || 'fast', '-w',
        '-t', '30', 'stop' );
    # Whatever pg_ctl said, make sure no postmaster of ours survives.
    ProcTree::terminate( 'KILL', 5, $self->postmaster_pid );
    $self->{running} = 0;
}

sub restart {
    my ($self) = @_;
    $self->stop('fast');
    $self->start;
}

# The running postmaster of this server, or undef.
sub postmaster_pid { ProcTree::postmaster( $_[0]{data} ) }

# A thread's copy of a server object must not stop the server when the
# thread ends: objects of this class are not cloned into threads.
sub CLONE_SKIP { 1 }

sub DESTROY { $_[0]->cleanup }

sub cleanup {
    my ($self) = @_;
    return if $self->{cleaned} or $$ != $self->{owner};
    $self->stop('immediate');
    $self->{cleaned} = 1;
    if ( $ENV{ASBP_KEEP_DB} ) {
        print STDERR "# kept PostgreSQL data in $self->{base} (port $self->{port})\n";
        return;
    }
    system( 'rm', '-rf', $self->{base} );
}

END { $_->cleanup for grep { defined } @LIVE; @LIVE = () }

sub port     { $_[0]{port} }
sub user     { $_[0]{user} }
sub password { $_[0]{password} }
sub dbname   { $_[0]{dbname} }
sub dsn      { "dbi:Pg:dbname=$_[0]{dbname};host=$_[0]{listen};port=$_[0]{port}" }

sub options {
    my ($self) = @_;
    return ( DataSource => $self->dsn, UserName => $self->{user}, Password => $self->{password} );
}

# Runs SQL through psql as the superuser over the private socket.
sub psql_super {
    my ( $self, $sql, $db ) = @_;
    my ( $rc, $out ) = $self->run_as( "$self->{bin}/psql", '-X', '-q', '-A', '-t', '-v',
        'ON_ERROR_STOP=1', '-h', $self->{sock}, '-p', $self->{port}, '-U', 'postgres', '-d',
        $db || $self->{dbname}, '-c', $sql );
    croak "psql failed: $out" if $rc;
    chomp $out;
    return $out;
}

# Runs SQL as the application user (over the socket, trust).
sub psql {
    my ( $self, $sql ) = @_;
    my ( $rc, $out ) = $self->run_as( "$self->{bin}/psql", '-X', '-q', '-A', '-t', '-v',
        'ON_ERROR_STOP=1', '-h', $self->{sock}, '-p', $self->{port}, '-U', $self->{user},
        '-d', $self->{dbname}, '-c', $sql );
    croak "psql failed: $out" if $rc;
    chomp $out;
    return $out;
}

# ---- TLS and authentication ---------------------------------------------

# ssl=on in postgresql.conf (not on the command line, so that a reload can
# change the certificate), with TestCA's server certificate.
sub setup_tls {
    my ($self) = @_;
    require TestCA;
    my $pki = TestCA::pki();
    my $dir = "$self->{base}/tls";
    mkdir $dir or croak "$dir: $!";
    $self->{ca_file} = $pki->{ca_crt};
    $self->install_certificate('server');
    open my $fh, '>>', "$self->{data}/postgresql.conf" or croak "postgresql.conf: $!";
    print $fh "\n# PgServer tls => 1\nssl = on\nssl_cert_file = '$dir/server.crt'\n",
      "ssl_key_file = '$dir/server.key'\n";
    close $fh or croak "postgresql.conf: $!";
}

# Copies TestCA's certificate NAME (server, wrong, self) and its key to the
# files the server reads, owned by the server's user, the key 0600.
sub install_certificate {
    my ( $self, $name ) = @_;
    my $pki = TestCA::pki();
    my $dir = "$self->{base}/tls";
    for ( [ crt => 0644 ], [ key => 0600 ] ) {
        my ( $ext, $mode ) = @$_;
        my $from = $pki->{"${name}_$ext"} or croak "no test certificate '$name'";
        my $to = "$dir/server.$ext";
        open my $in, '<', $from or croak "$from: $!";
        my $pem = do { local $/; <$in> };
        unlink $to;
        sysopen my $out, $to, POSIX::O_WRONLY() | POSIX::O_CREAT() | POSIX::O_EXCL(), $mode
          or croak "$to: $!";
        print $out $pem;
        close $out or croak "$to: $!";
        chmod $mode, $to;
        chown( ( getpwnam('postgres') )[ 2, 3 ], $to ) if $> == 0;
    }
}

sub ca_file { $_[0]{ca_file} }

# The server presents TestCA's certificate NAME from now on.
sub use_certificate {
    my ( $self, $name ) = @_;
    croak "use_certificate: the server was started without tls" unless $self->{tls};
    $self->install_certificate($name);
    $self->reload;
}

# The pg_hba method of every TCP line becomes METHOD; with md5, the role's
# password is stored as an md5 hash (a SCRAM verifier would make the server
# use SCRAM anyway), otherwise as a SCRAM verifier.
sub set_host_auth {
    my ( $self, $method ) = @_;
    croak "set_host_auth: bad method '$method'" unless $method =~ /^[a-z0-9-]+\z/;
    my $hba = "$self->{data}/pg_hba.conf";
    open my $in, '<', $hba or croak "$hba: $!";
    my @lines = <$in>;
    close $in;
    s/^(host\S*\s+\S+\s+\S+\s+\S+\s+)\S+/$1$method/ for @lines;
    open my $out, '>', $hba or croak "$hba: $!";
    print $out @lines;
    close $out or croak "$hba: $!";
    $self->{host_auth} = $method;
    $self->store_password;
    $self->reload;
}

sub store_password {
    my ($self) = @_;
    my $enc = $self->{host_auth} eq 'md5' ? 'md5' : 'scram-sha-256';
    $self->psql_super( "SET password_encryption = '$enc'; "
          . "ALTER ROLE $self->{user} PASSWORD '$self->{password}'", 'postgres' );
}

# Reloads the configuration and waits until the postmaster has read it
# (backends started afterwards see a newer pg_conf_load_time).
sub reload {
    my ($self) = @_;
    my $q = 'SELECT pg_conf_load_time()';
    my $before = $self->psql_super( $q, 'postgres' );
    $self->psql_super( 'SELECT pg_reload_conf()', 'postgres' );
    my $end = time + 20;
    while ( time < $end ) {
        return if $self->psql_super( $q, 'postgres' ) ne $before;
        sleep 0.05;
    }
    croak "PostgreSQL did not reload its configuration within 20 s (log: $self->{log})";
}

sub create_table {
    my ( $self, $table, %o ) = @_;
    my $t = $table;
    my $logged = $o{unlogged} ? 'UNLOGGED' : '';
    $self->psql(<<"SQL");
CREATE $logged TABLE $t (id varchar(64) NOT NULL PRIMARY KEY, a_session jsonb);
CREATE INDEX ON $t USING btree ((a_session ->> '_whatToTrace'));
CREATE INDEX ON $t ((a_session ->> '_session_kind'));
CREATE INDEX ON $t ((cast(a_session ->> '_utime' AS bigint)));
CREATE INDEX ON $t USING btree ((a_session ->> 'ipAddr'));
SQL
}

1;
