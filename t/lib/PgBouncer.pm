package PgBouncer;

# A throwaway PgBouncer for the tests, in front of a PostgreSQL server (a
# PgServer, a node of PatroniCluster, or any host/port/dbname): its own
# configuration in a temporary directory, a free port on 127.0.0.1, always
# stopped (by pid) when the test ends, even when it dies.
#
#   use lib 't/lib';
#   use PgBouncer;
#   my $pg = PgServer->start_or_skip;
#   my $pgb = PgBouncer->start_or_skip( server => $pg, pool_mode => 'transaction' );
#   my $args = { $pgb->options };   # DataSource (the bouncer), UserName, Password
#   my @pools = $pgb->admin('SHOW POOLS');   # list of { column => value }
#
# Options of start_or_skip/new:
#   server       a PgServer (host 127.0.0.1, its port, dbname, user, password)
#   host, port, dbname, user, password   the same, given one by one (port is
#                the PostgreSQL port; the bouncer's own is listen_port)
#   listen_port  the bouncer's port (default: a free one)
#   listen_addr  the loopback address it listens on (default 127.0.0.1; one
#                bouncer per node of a PatroniCluster with distinct_hosts,
#                all on the same port)
#   pool_mode    session (default) or transaction
#   auth_type    md5, scram-sha-256 (default) or trust: how clients log in
#                to the bouncer; the passwords are in an auth_file
#                (userlist.txt, in clear, which serves both methods and the
#                bouncer's own login to PostgreSQL)
#   max_client_conn (default 200), default_pool_size (default 10)
#   settings     { name => value } more lines of the [pgbouncer] section
#                (server_login_retry is 0.5 s here, not pgbouncer's 15 s: a
#                switchover's old leader refuses logins for a moment)
#
# Debian's pgbouncer is found through PATH, then in /usr/sbin (ASBP_PGBOUNCER
# names the program; an empty or missing file means "no PgBouncer").  When
# it is missing the test is skipped with a clear message, unless
# ASBP_REQUIRE_DB is set (and not 0/false): then it fails.  As root (which
# pgbouncer refuses) it runs as the user "postgres", like PgServer's server.
#
# The admin console (database "pgbouncer") is reached with psql (PgServer's
# bindir) as the admin user "pgb_admin"; admin($sql) returns the rows of a
# SHOW command as hashes, admin_raw($sql) its output.

use strict;
use warnings;
use Carp qw(croak);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use PgServer ();
use ProcSpawn ();
use ProcTree ();
use Time::HiRes qw(sleep time);

our @LIVE;    # bouncers started by this process

my $ADMIN_USER = 'pgb_admin';
my $ADMIN_PW   = 'pgb-admin-pw';

# The pgbouncer program, or (undef, reason).
sub find_program {
    if ( defined $ENV{ASBP_PGBOUNCER} ) {
        my $p = $ENV{ASBP_PGBOUNCER};
        return ($p) if length $p && -f $p && -x _;
        return ( undef, "ASBP_PGBOUNCER='$p' is not an executable pgbouncer" );
    }
    my $p = ProcSpawn::which( 'pgbouncer', '/usr/sbin', '/usr/local/sbin', '/usr/local/bin' );
    return ($p) if $p;
    return ( undef, 'pgbouncer not found through PATH nor in /usr/sbin; install it '
          . '(Debian/Ubuntu: pgbouncer, see tools/install-deps) or set ASBP_PGBOUNCER' );
}

sub program { return ( find_program() )[0] }

# (1) or (0, reason)
sub available {
    my ( $prog, $why ) = find_program();
    return ( 0, $why ) unless $prog;
    my ( $bin, $pwhy ) = PgServer::find_bindir();
    return ( 0, "psql is needed for the admin console: $pwhy" ) unless $bin;
    if ( $> == 0 ) {
        return ( 0, 'running as root and no "postgres" user to run pgbouncer as' )
          unless getpwnam('postgres');
    }
    return (1);
}

# Skips the whole test (or fails it with ASBP_REQUIRE_DB=1) when pgbouncer
# is missing: for a test to call before it starts anything costly.
sub skip_unless_available {
    my ( $ok, $why ) = available();
    return 1 if $ok;
    require Test::More;
    if ( PgServer::required() ) {
        Test::More::plan( tests => 1 );
        Test::More::fail("PgBouncer is required here (ASBP_REQUIRE_DB set): $why");
        exit 1;
    }
    Test::More::plan( skip_all => "needs PgBouncer: $why" );
}

# Skips the whole test (or fails it with ASBP_REQUIRE_DB=1) when no bouncer
# can be started.
sub start_or_skip {
    my ( $class, %opt ) = @_;
    my ( $ok, $why ) = available();
    my $pgb;
    if ($ok) {
        $pgb = eval { $class->new(%opt) };
        ( $ok, $why ) = ( 0, "cannot start pgbouncer: $@" ) unless $pgb;
    }
    return $pgb if $ok;
    require Test::More;
    if ( PgServer::required() ) {
        Test::More::plan( tests => 1 ) unless Test::More->builder->has_plan;
        Test::More::fail("PgBouncer is required here (ASBP_REQUIRE_DB set): $why");
        exit 1;
    }
    if ( Test::More->builder->has_plan ) {
        Test::More::BAIL_OUT("needs PgBouncer: $why");
    }
    Test::More::plan( skip_all => "needs PgBouncer: $why" );
}

sub new {
    my ( $class, %opt ) = @_;
    my $prog = program() or croak( ( find_program() )[1] );
    my $srv = $opt{server};
    my $self = bless {
        prog      => $prog,
        psql      => PgServer::bindir() . '/psql',
        host      => $opt{host} // '127.0.0.1',
        pg_port   => $opt{port} // ( $srv && $srv->port ) // croak('PgBouncer: no port'),
        dbname    => $opt{dbname} // ( $srv && $srv->dbname ) // 'sessions',
        user      => $opt{user} // ( $srv && $srv->user ) // croak('PgBouncer: no user'),
        password  => $opt{password} // ( $srv && $srv->password ) // '',
        port      => $opt{listen_port} || PgServer::free_port(),
        listen    => $opt{listen_addr} || '127.0.0.1',
        pool_mode => $opt{pool_mode} || 'session',
        auth_type => $opt{auth_type} || 'scram-sha-256',
        max_client_conn   => $opt{max_client_conn}   || 200,
        default_pool_size => $opt{default_pool_size} || 10,
        settings  => $opt{settings} || {},
        owner     => $$,
    }, $class;
    croak "PgBouncer: pool_mode '$self->{pool_mode}' (session, transaction or statement)"
      unless $self->{pool_mode} =~ /\A(?:session|transaction|statement)\z/;
    croak "PgBouncer: auth_type '$self->{auth_type}' (md5, scram-sha-256, trust, plain)"
      unless $self->{auth_type} =~ /\A(?:md5|scram-sha-256|trust|plain)\z/;
    my $base = tempdir( 'asbp-pgb-XXXXXX', TMPDIR => 1, CLEANUP => 0 );
    chmod 0755, $base;
    chown( ( getpwnam('postgres') )[ 2, 3 ], $base ) if $> == 0;
    $self->{base} = $base;
    $self->{log}  = "$base/pgbouncer.log";
    push @LIVE, $self;
    $self->write_config;
    $self->start;
    return $self;
}

sub _q { my ($v) = @_; $v =~ s/"/""/g; return qq{"$v"} }

sub write_config {
    my ($self) = @_;
    my $b = $self->{base};
    my %users = ( $self->{user} => $self->{password}, $ADMIN_USER => $ADMIN_PW );
    _write( "$b/userlist.txt", 0600,
        map { _q($_) . ' ' . _q( $users{$_} ) . "\n" } sort keys %users );
    my %s = (
        listen_addr       => $self->{listen},
        listen_port       => $self->{port},
        unix_socket_dir   => '',
        auth_type         => $self->{auth_type},
        auth_file         => "$b/userlist.txt",
        pool_mode         => $self->{pool_mode},
        max_client_conn   => $self->{max_client_conn},
        default_pool_size => $self->{default_pool_size},
        admin_users       => $ADMIN_USER,
        stats_users       => $ADMIN_USER,
        pidfile           => "$b/pgbouncer.pid",
        ignore_startup_parameters => 'extra_float_digits,options',
        server_reset_query => 'DISCARD ALL',
        # After a failed login to PostgreSQL (a node restarting as a
        # replica in a switchover) pgbouncer waits this long before trying
        # again, holding its clients' queries: 15 s by default, 0.5 s here.
        server_login_retry => 0.5,
        %{ $self->{settings} },
    );
    _write( "$b/pgbouncer.ini", 0644,
        "[databases]\n",
        "$self->{dbname} = host=$self->{host} port=$self->{pg_port} dbname=$self->{dbname}\n",
        "\n[pgbouncer]\n",
        map { "$_ = $s{$_}\n" } sort keys %s );
}

sub _write {
    my ( $file, $mode, @lines ) = @_;
    unlink $file;
    open my $fh, '>', $file or croak "$file: $!";
    print $fh @lines;
    close $fh or croak "$file: $!";
    chmod $mode, $file;
    chown( ( getpwnam('postgres') )[ 2, 3 ], $file ) if $> == 0;
}

# Starts pgbouncer in the foreground of a daemon process of ours and waits
# until its port answers.
sub start {
    my ($self) = @_;
    croak 'PgBouncer: already running' if $self->{pid} && ProcTree::alive( $self->{pid} );
    $self->{pid} = ProcSpawn::daemon( $self->{log}, $self->{prog}, "$self->{base}/pgbouncer.ini" );
    my $end = time + 20;
    while ( time < $end ) {
        croak "pgbouncer exited at start: " . $self->log_tail unless ProcTree::alive( $self->{pid} );
        my $s = IO::Socket::INET->new( PeerAddr => $self->{listen}, PeerPort => $self->{port},
            Proto => 'tcp', Timeout => 1 );
        if ($s) { close $s; $self->{running} = 1; return $self }
        sleep 0.05;
    }
    $self->stop;
    croak "pgbouncer did not listen on $self->{listen}:$self->{port} within 20 s: " . $self->log_tail;
}

sub log_tail {
    my ($self) = @_;
    open my $fh, '<', $self->{log} or return '(no log)';
    my @l = <$fh>;
    return join '', grep { defined } @l[ ( @l > 15 ? -15 : 0 ) .. -1 ];
}

sub stop {
    my ($self) = @_;
    return unless $self->{pid} and $$ == $self->{owner};
    ProcTree::terminate( 'INT', 5, $self->{pid} );   # SIGINT: pgbouncer's fast shutdown
    $self->{running} = 0;
    delete $self->{pid};
}

sub pid { $_[0]{pid} }

sub CLONE_SKIP { 1 }

sub DESTROY { $_[0]->cleanup }

sub cleanup {
    my ($self) = @_;
    return if $self->{cleaned} or $$ != $self->{owner};
    $self->stop;
    $self->{cleaned} = 1;
    if ( $ENV{ASBP_KEEP_DB} ) {
        print STDERR "# kept PgBouncer files in $self->{base} (port $self->{port})\n";
        return;
    }
    system( 'rm', '-rf', $self->{base} ) if $self->{base};
}

END { $_->cleanup for grep { defined } @LIVE; @LIVE = () }

sub port      { $_[0]{port} }
sub pg_port   { $_[0]{pg_port} }
sub user      { $_[0]{user} }
sub password  { $_[0]{password} }
sub dbname    { $_[0]{dbname} }
sub pool_mode { $_[0]{pool_mode} }
sub log_file  { $_[0]{log} }
sub host      { $_[0]{listen} }
sub dsn       { "dbi:Pg:dbname=$_[0]{dbname};host=$_[0]{listen};port=$_[0]{port}" }

sub options {
    my ($self) = @_;
    return ( DataSource => $self->dsn, UserName => $self->{user}, Password => $self->{password} );
}

# The output of psql -A (fields tab-separated, with the header line) for
# one admin console command.
sub admin_raw {
    my ( $self, $sql ) = @_;
    my ( $st, $out, $err ) = ProcSpawn::run( 20, { PGPASSWORD => $ADMIN_PW },
        $self->{psql}, '-X', '-q', '-A', '-F', "\t", '-P', 'footer=off', '-h', $self->{listen},
        '-p', $self->{port}, '-U', $ADMIN_USER, '-d', 'pgbouncer', '-c', $sql );
    croak "pgbouncer admin '$sql' failed: $err$out" if $st;
    return $out;
}

# The rows of a SHOW command as a list of { column => value }.
sub admin {
    my ( $self, $sql ) = @_;
    my @lines = split /\n/, $self->admin_raw($sql);
    my @cols = split /\t/, shift(@lines) // '', -1;
    return map {
        my @v = split /\t/, $_, -1;
        +{ map { $cols[$_] => $v[$_] } 0 .. $#cols };
    } @lines;
}

# SHOW POOLS' row of our database (a hash), or undef.
sub pool {
    my ($self) = @_;
    my ($p) = grep { $_->{database} eq $self->{dbname} && $_->{user} eq $self->{user} }
      $self->admin('SHOW POOLS');
    return $p;
}

# The server connections the bouncer holds to PostgreSQL (SHOW SERVERS rows).
sub servers {
    my ($self) = @_;
    return grep { $_->{database} eq $self->{dbname} } $self->admin('SHOW SERVERS');
}

# Reloads the configuration after changing settings (RELOAD on the console).
sub set {
    my ( $self, %s ) = @_;
    $self->{settings}{$_} = $s{$_} for keys %s;
    $self->{pool_mode} = $s{pool_mode} if $s{pool_mode};
    $self->write_config;
    $self->admin_raw('RELOAD');
}

1;
