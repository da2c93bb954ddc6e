package PatroniCluster;

# Test helper: a throw-away 3-node Patroni 3.x + etcd cluster on 127.0.0.1.
# The supervisor: it starts, watches, queries and stops the processes, and
# composes the helpers with one concern each:
#   PatroniConfig  the etcd / Patroni YAML and the bootstrap script
#   PatroniApi     the HTTP client for the REST API
#   PatroniFaults  kill / stop / hang of a node's processes (methods here)
#   WriteProbe     the forked write probe
#   ProcSpawn      starting processes, the guardian
#   ProcTree       the process table, signalling trees, waiting for exit
# POD at the end of the file.

use strict;
use warnings;

use Carp qw(croak);
use Cwd ();
use File::Path ();
use File::Spec ();
use File::Temp ();
use POSIX ();
use Scalar::Util ();
use Time::HiRes qw(time sleep);

use PatroniApi ();
use PatroniConfig ();
use PgServer ();
use PatroniFaults qw(kill_node kill_leader stop_node stop_api start_api hang_api resume_api);
use ProcSpawn ();
use ProcTree ();
use WriteProbe ();

our $VERSION = '0.01';

# Every cluster this process started and has not stopped yet (weak refs),
# for the END block and the signal handlers.
my %LIVE;
my $SIGNALS_INSTALLED;

use constant MIB => PatroniConfig::MIB;

# ------------------------------------------------------------ availability

# The programs the cluster runs: found through PATH, then /usr/bin and
# /usr/local/bin (where packages put them, for a short PATH such as sudo's
# or cron's).  PostgreSQL's through PgServer::bindir (ASBP_PG_BINDIR...).
my @PROGRAM_DIRS = ('/usr/bin', '/usr/local/bin');
sub program { ProcSpawn::which($_[0], @PROGRAM_DIRS) }

sub _pg_bin { PgServer::bindir() }

sub _truthy { my $v = shift; defined $v && $v ne '' && $v ne '0' && lc $v ne 'false' }

# The interpreter patroni runs under, from its "#!" line ("#!/usr/bin/env
# python3": python3 in the PATH it is started with); undef when it is not
# a script.
sub _patroni_python {
    my ($patroni) = @_;
    open my $fh, '<', $patroni or return;
    my $line = <$fh> // '';
    my ($interp, $arg) = $line =~ /\A#!\s*(\S+)(?:\s+(\S+))?/ or return;
    return $interp unless $interp =~ m{/env\z} && defined $arg;
    local $ENV{PATH} = ProcSpawn::program_path($patroni);
    return ProcSpawn::which($arg);
}

sub available {
    return (0, 'not a Linux system with /proc') unless -r '/proc/self/stat';
    for my $p (qw(patroni patronictl etcd)) {
        return (0, "$p not found in PATH, /usr/bin or /usr/local/bin "
                   . '(Debian: apt-get install patroni etcd-server)') unless program($p);
    }
    my ($pg, $why) = PgServer::find_bindir();
    return (0, $why) unless $pg;
    my @pw = getpwnam('postgres')
        or return (0, 'no "postgres" user');
    if ($> == 0) {
        return (0, 'setpriv not found (util-linux)') unless ProcSpawn::which('setpriv', '/usr/bin', '/bin');
    } elsif ($> != $pw[2]) {
        return (0, 'must run as root (to switch to "postgres") or as "postgres"');
    }
    my $patroni = program('patroni');
    if (my $py = _patroni_python($patroni)) {
        my ($st) = ProcSpawn::run(60, { PATH => ProcSpawn::program_path($patroni) }, $py, '-c',
            "import etcd, dns\ntry:\n    import psycopg2\nexcept ImportError:\n    import psycopg\n");
        return (0, "python modules etcd, psycopg2 (or psycopg) or dns missing for $py, which runs "
                   . "$patroni (Debian: python3-etcd, python3-psycopg2, python3-dnspython)")
            if $st != 0;
    }
    return (1);
}

sub cluster_required { _truthy($ENV{ASBP_REQUIRE_CLUSTER}) }

sub skip_or_fail {
    my ($reason) = @_;
    require Test::More;
    if (cluster_required()) {
        Test::More::plan(tests => 1);
        Test::More::fail("Patroni cluster required (ASBP_REQUIRE_CLUSTER set) but unavailable: $reason");
        exit 1;
    }
    Test::More::plan(skip_all => "no Patroni cluster: $reason");
}

sub start_or_skip {
    my ($class, %opt) = @_;
    my $tests = delete $opt{tests};
    my ($ok, $why) = available();
    skip_or_fail($why) unless $ok;
    my $c = $class->start(%opt);
    if (defined $tests) {
        require Test::More;
        Test::More::plan(tests => $tests);
    }
    return $c;
}

# ------------------------------------------------------------ construction

sub new {
    my ($class, %o) = @_;
    my $n = $o{nodes} // 3;
    croak 'nodes must be >= 1' if $n < 1;
    my $self = bless {
        nodes          => $n,
        sync           => $o{sync} // 1,
        scope          => $o{scope},    # default: asbp-<temp dir suffix>, unique
        pg_bin         => $o{pg_bin} // _pg_bin(),
        superuser      => $o{superuser} // 'postgres',
        superpassword  => $o{superpassword} // 'asbp-super-pw',
        repl_user      => 'replicator',
        repl_password  => $o{repl_password} // 'asbp-repl-pw',
        user           => $o{user} // 'llng',
        password       => $o{password} // 'llng-secret',
        start_timeout  => $o{start_timeout} // 90,
        base_dir       => $o{base_dir} // $ENV{ASBP_CLUSTER_TMPDIR} // _default_base_dir(),
        verbose        => $o{verbose} // _truthy($ENV{ASBP_CLUSTER_VERBOSE}),
        owner_pid      => $$,
        started        => 0,
        stopped        => 0,
        distinct_hosts => $o{distinct_hosts} // 0,
    }, $class;
    croak 'no PostgreSQL binaries found' unless $self->{pg_bin};
    croak 'synchronous mode needs at least 2 nodes' if $self->{sync} && $n < 2;
    return $self;
}

# /dev/shm when it is a tmpfs with at least 1 GiB free (a cluster holds
# about 400 MB; on an ext4 mounted with `discard` removing it from disk took
# 3-9 s), else /tmp.
sub _default_base_dir {
    my $shm = '/dev/shm';
    my $tmpfs;
    if (open my $m, '<', '/proc/mounts') {
        while (<$m>) { my @f = split; $tmpfs = 1 if $f[1] eq $shm && $f[2] eq 'tmpfs' }
    }
    if ($tmpfs && -d $shm && -w _ && ((stat _)[2] & 01)) {
        my @df = `df -Pk $shm 2>/dev/null`;
        my $avail = (split ' ', $df[1] // '')[3];
        return $shm if $avail && $avail =~ /^\d+$/ && $avail >= 1024 * 1024;
    }
    return '/tmp';
}

# The path of patroni, patronictl or etcd (see program), found once.
sub _program {
    my ($self, $name) = @_;
    return $self->{bin}{$name} //= program($name)
        // croak "$name not found in PATH, /usr/bin or /usr/local/bin";
}

sub _note {
    my ($self, $msg) = @_;
    return unless $self->{verbose};
    my $t = $self->{t0} ? sprintf('%7.2f', time - $self->{t0}) : '-';
    print STDERR "# [cluster $t] $msg\n";
}

# ------------------------------------------------------------ accessors

sub dir           { $_[0]{dir} }
sub scope         { $_[0]{scope} }
sub pg_bin        { $_[0]{pg_bin} }
sub node_count    { $_[0]{nodes} }
sub nodes         { 1 .. $_[0]{nodes} }
sub sync_mode     { $_[0]{sync} }
sub user          { $_[0]{user} }
sub password      { $_[0]{password} }
sub superuser     { $_[0]{superuser} }
sub superpassword { $_[0]{superpassword} }
sub etcd_port     { $_[0]{etcd_port} }
sub etcd_peer_port{ $_[0]{etcd_peer_port} }
sub etcd_url      { "http://127.0.0.1:$_[0]{etcd_port}" }
sub node_name     { $_[0]{node}[ $_[0]->_idx($_[1]) ]{name} }
sub api_port      { $_[0]{node}[ $_[0]->_idx($_[1]) ]{api_port} }
sub pg_port       { $_[0]{node}[ $_[0]->_idx($_[1]) ]{pg_port} }
# the address the API advertises for a node's PostgreSQL (distinct_hosts)
sub node_host     { $_[0]{node}[ $_[0]->_idx($_[1]) ]{host} // '127.0.0.1' }
sub api_url       { 'http://127.0.0.1:' . $_[0]->api_port($_[1]) . '/cluster' }
sub api_urls      { my $s = shift; map { $s->api_url($_) } $s->nodes }
sub patroni_url   { join ', ', $_[0]->api_urls }
sub data_dir      { $_[0]{node}[ $_[0]->_idx($_[1]) ]{data} }
sub config_file   { $_[0]{node}[ $_[0]->_idx($_[1]) ]{yml} }
sub log_file      { $_[0]{node}[ $_[0]->_idx($_[1]) ]{log} }
sub patroni_pid   { $_[0]{node}[ $_[0]->_idx($_[1]) ]{pid} }
sub node_state    { $_[0]{node}[ $_[0]->_idx($_[1]) ]{state} }

sub dsn {
    my ($self, $node, $db) = @_;
    return sprintf 'dbi:Pg:dbname=%s;host=127.0.0.1;port=%d', $db // 'sessions', $self->pg_port($node);
}

# "dbi:Pg:dbname=sessions;host=127.0.0.1,127.0.0.1,...;port=P1,P2,..." (libpq multi-host)
sub multi_dsn {
    my ($self, $db) = @_;
    my @n = $self->nodes;
    return sprintf 'dbi:Pg:dbname=%s;host=%s;port=%s', $db // 'sessions',
        join(',', ('127.0.0.1') x @n), join(',', map { $self->pg_port($_) } @n);
}

# first line of postmaster.pid, if that process is alive and is this node's
# postmaster (a stale file may name a reused pid)
sub postmaster_pid {
    my ($self, $node) = @_;
    return ProcTree::postmaster($self->data_dir($node));
}

# Accepts 1..N, "nodeN" or "leader".
sub _idx {
    my ($self, $n) = @_;
    croak 'node required' unless defined $n;
    if ($n eq 'leader') {
        my $l = $self->leader;
        croak 'no running leader in /cluster' unless $l;
        return $l;
    }
    return $1 if $n =~ /^node(\d+)$/ && $1 >= 1 && $1 <= $self->{nodes};
    return $n if $n =~ /^\d+$/ && $n >= 1 && $n <= $self->{nodes};
    croak "unknown node '$n'";
}

# (number, node record) of a node named as _idx accepts
sub _node {
    my ($self, $n) = @_;
    my $i = $self->_idx($n);
    return ($i, $self->{node}[$i]);
}

# ------------------------------------------------------------ start

sub start {
    my $self = shift;
    $self = $self->new(@_) unless ref $self;
    croak 'cluster already started' if $self->{started};
    $self->{t0} = time;
    $self->{started} = 1;
    $LIVE{ Scalar::Util::refaddr($self) } = $self;
    Scalar::Util::weaken($LIVE{ Scalar::Util::refaddr($self) });
    _install_signal_handlers();

    my $ok = eval {
        $self->_prepare;
        $self->_start_guardian;
        $self->_start_etcd;
        $self->_spawn_patroni($_) for $self->nodes;
        $self->wait_healthy(timeout => $self->{start_timeout}, what => 'cluster start');
        1;
    };
    unless ($ok) {
        my $err = $@;
        $self->stop;
        die $err;
    }
    $self->{start_seconds} = time - $self->{t0};
    $self->_note(sprintf 'cluster up in %.1f s', $self->{start_seconds});
    return $self;
}

sub start_seconds { $_[0]{start_seconds} }

sub _prepare {
    my ($self) = @_;
    my $base = $self->{base_dir};
    croak "base dir $base does not exist" unless -d $base;
    # every parent must be traversable by postgres
    my $p = Cwd::abs_path($base);
    for (my $d = $p; ; $d =~ s{/[^/]*$}{}) {
        my $chk = $d eq '' ? '/' : $d;
        my $mode = (stat $chk)[2];
        croak "$chk is not traversable by postgres (mode " . sprintf('%o', $mode & 07777)
            . "); set ASBP_CLUSTER_TMPDIR to a directory under /tmp" unless $mode & 01;
        last if $d eq '';
    }
    my $dir = File::Temp::tempdir('asbp-cluster-XXXXXX', DIR => $p, CLEANUP => 0);
    chmod 0755, $dir or croak "chmod $dir: $!";
    $self->{dir} = $dir;
    # unique: it is also PostgreSQL's cluster_name, in every process title
    $self->{scope} //= 'asbp-' . ($dir =~ /-(\w+)$/)[0];

    my @pw = getpwnam('postgres') or croak 'no postgres user';
    @$self{qw(run_uid run_gid)} = @pw[2, 3];

    require FreePort;
    my @ports = FreePort::pick(2 + 2 * $self->{nodes});
    @$self{qw(etcd_port etcd_peer_port)} = splice @ports, 0, 2;

    my $etcd_dir = "$dir/etcd";
    $self->_mkdir_owned($etcd_dir);
    $self->{etcd_yml} = "$dir/etcd.yml";
    $self->{etcd_log} = "$dir/etcd.log";
    PatroniConfig::write_etcd($self->{etcd_yml}, name => 'etcd0', data_dir => "$etcd_dir/data",
        client_port => $self->{etcd_port}, peer_port => $self->{etcd_peer_port},
        token => $self->{scope});
    $self->{post_bootstrap} = PatroniConfig::write_bootstrap($dir, pg_bin => $self->{pg_bin},
        user => $self->{user}, password => $self->{password});

    for my $i ($self->nodes) {
        my $nd = $self->{node}[$i] = {
            name     => "node$i",
            pg_port  => shift @ports,
            api_port => shift @ports,
            home     => "$dir/node$i",
            yml      => "$dir/node$i.yml",
            log      => "$dir/node$i.log",
            state    => 'new',       # new|running|stopped|killed
            api      => 'up',        # up|stopped|hung
        };
        $nd->{api_listen} = $nd->{api_port};
        $nd->{host} = '127.0.0.' . ( 1 + $i ) if $self->{distinct_hosts};
        $nd->{data} = "$nd->{home}/data";
        $self->_mkdir_owned($nd->{home});
        $self->_mkdir_owned("$nd->{home}/$_") for qw(sock pglog);
        $self->_write_node_yml($i);
    }
    $self->_note("prepared $dir");
}

sub _write_node_yml {
    my ($self, $i) = @_;
    my $nd = $self->{node}[$i];
    PatroniConfig::write_node($nd->{yml}, $self, $nd);
}

sub _mkdir_owned {
    my ($self, $d) = @_;
    mkdir $d, 0700 or croak "mkdir $d: $!";
    if ($> == 0) { chown $self->{run_uid}, $self->{run_gid}, $d or croak "chown $d: $!" }
}

# ------------------------------------------------------------ processes

sub _start_etcd {
    my ($self) = @_;
    $self->{etcd_pid} = ProcSpawn::daemon($self->{etcd_log}, $self->_program('etcd'), '--config-file', $self->{etcd_yml});
    $self->_note("etcd pid $self->{etcd_pid} on $self->{etcd_port}");
    $self->_wait(20, 'etcd /health', sub {
        my ($code, $body) = PatroniApi::http_get($self->{etcd_port}, '/health', 1);
        return 1 if $code && $code == 200 && $body =~ /"health"\s*:\s*"true"/;
        return (0, $code ? "HTTP $code $body" : $body);
    });
}

sub _spawn_patroni {
    my ($self, $i) = @_;
    my $nd = $self->{node}[$i];
    $nd->{pid} = ProcSpawn::daemon($nd->{log}, $self->_program('patroni'), $nd->{yml});
    $nd->{state} = 'running';
    $nd->{api} = $nd->{api_listen} == $nd->{api_port} ? 'up' : 'stopped';
    $self->_note("$nd->{name}: patroni pid $nd->{pid}, pg $nd->{pg_port}, api $nd->{api_port}");
    return $nd->{pid};
}

# Stops everything that belongs to $dir: patroni first (it stops its
# PostgreSQL), then any leftover PostgreSQL process, then etcd. Usable
# without an object (guardian, ASBP_KEEP_CLUSTER clean-up).
sub reap_dir {
    my ($dir, %o) = @_;
    my $uid = exists $o{uid} ? $o{uid} : ($> == 0 ? (getpwnam('postgres'))[2] : $>);
    my @known = grep { $_ } @{ $o{known} || [] };
    my $grace = $o{grace} // 20;
    my @left;
    my $log = $o{log} || sub {};
    my $t0 = time;
    {
        local $SIG{PIPE} = 'IGNORE';
        my $p = ProcTree::table();
        my @all = ProcTree::dir_procs($dir, $uid, @known);
        my @patroni = grep { $p->{$_}{cmd} =~ m{/patroni\s} } @all;
        my %etcd = map { $_ => 1 } grep { $p->{$_}{cmd} =~ m{/etcd\s} } @all;
        $etcd{$o{etcd_pid}} = 1 if $o{etcd_pid} && ProcTree::alive($o{etcd_pid});
        push @left, ProcTree::terminate('TERM', $grace, @patroni);
        $log->(sprintf 'patroni (%s) stopped in %.2f s', "@patroni", time - $t0);
        my @rest = grep { !$etcd{$_} } ProcTree::dir_procs($dir, $uid, @known);
        push @left, ProcTree::terminate('TERM', 5, @rest);
        $log->(sprintf 'leftovers (%s) stopped in %.2f s', "@rest", time - $t0);
        push @left, ProcTree::terminate('TERM', 5, keys %etcd);
        $log->(sprintf 'etcd stopped in %.2f s', time - $t0);
        push @left, ProcTree::dir_procs($dir, $uid, @known);
    }
    if ($o{remove} && -d $dir) {
        my $cwd = Cwd::getcwd() // '';
        chdir '/' if index("$cwd/", "$dir/") == 0;
        File::Path::remove_tree($dir);
        $log->(sprintf '%s removed in %.2f s', $dir, time - $t0);
    }
    my %u;
    return grep { !$u{$_}++ && ProcTree::alive($_) } @left;
}

# Every pid of ours right now (patroni, etcd, postmasters and children).
sub pids {
    my ($self) = @_;
    return () unless $self->{dir};
    return ProcTree::dir_procs($self->{dir}, $self->{run_uid}, $self->_known_pids);
}

# Processes that still look like ours after a stop: any whose command line
# names the directory or whose title carries the cluster name.
sub leftover_pids {
    my ($self) = @_;
    return () unless $self->{dir};
    my $p = ProcTree::table();
    my $title = "postgres: $self->{scope}:";
    return sort { $a <=> $b } grep {
        $_ != $$ && $p->{$_}{state} ne 'Z'
            && (index($p->{$_}{cmd}, "$self->{dir}/") >= 0 || index($p->{$_}{cmd}, $title) == 0)
    } keys %$p;
}

# etcd and patroni pids still alive and still ours (a pid recorded before a
# kill may have been reused by an unrelated process since)
sub _known_pids {
    my ($self) = @_;
    return grep { $_ && ProcTree::alive($_) && index(ProcTree::cmdline($_), "$self->{dir}/") >= 0 }
        $self->{etcd_pid}, map { $self->{node}[$_]{pid} } $self->nodes;
}

# A forked watcher that stops the cluster if this process dies without
# running its END blocks (SIGKILL, an unhandled signal, prove killed...).
sub _start_guardian {
    my ($self) = @_;
    my $dir = $self->{dir};
    my $uid = $self->{run_uid};
    $self->{guardian_pid} = ProcSpawn::guardian(sub {
        reap_dir($dir, uid => $uid, remove => !_truthy($ENV{ASBP_KEEP_CLUSTER})) if -d $dir;
    });
}

sub _release_guardian {
    my ($self, $msg) = @_;
    my $g = delete $self->{guardian_pid} or return;
    ProcSpawn::release($g, $msg);
}

# ------------------------------------------------------------ teardown

sub stop {
    my ($self) = @_;
    return unless $self->{started} && !$self->{stopped};
    return if $$ != $self->{owner_pid};    # forked child: not ours to stop
    $self->{stopped} = 1;
    delete $LIVE{ Scalar::Util::refaddr($self) };
    local ($@, $!, $?);
    local $SIG{__DIE__};
    local $SIG{PIPE} = 'IGNORE';
    local @SIG{qw(INT TERM HUP)} = ('IGNORE') x 3;
    $self->stop_probe($_) for values %{ $self->{probes} || {} };
    return 1 unless $self->{dir};    # failed before creating anything

    if (_truthy($ENV{ASBP_KEEP_CLUSTER}) && $self->{dir}) {
        $self->_release_guardian('K');
        print STDERR $self->_keep_message;
        return;
    }
    my $t = time;
    my @left = reap_dir($self->{dir}, uid => $self->{run_uid}, known => [ $self->_known_pids ],
                        etcd_pid => $self->{etcd_pid}, remove => 1,
                        log => sub { $self->_note($_[0]) });
    $self->{node}[$_]{state} = 'stopped' for grep { $self->{node}[$_] } $self->nodes;
    $self->_release_guardian('D');
    $self->{stop_seconds} = time - $t;
    warn "PatroniCluster: processes left behind: @left\n" if @left;
    $self->_note(sprintf 'stopped in %.1f s', $self->{stop_seconds});
    return !@left;
}

sub stop_seconds { $_[0]{stop_seconds} }

sub _keep_message {
    my ($self) = @_;
    my $lib = File::Spec->rel2abs((File::Spec->splitpath($INC{'PatroniCluster.pm'} // __FILE__))[1]);
    my $s = "# ASBP_KEEP_CLUSTER=1: cluster left running in $self->{dir}\n";
    $s .= "#   etcd:   " . $self->etcd_url . "\n";
    for my $i ($self->nodes) {
        $s .= sprintf "#   %s: api %s  pg 127.0.0.1:%d  log %s\n", $self->node_name($i),
            $self->api_url($i), $self->pg_port($i), $self->log_file($i);
    }
    $s .= sprintf "#   psql:   PGPASSWORD=%s %s/psql -h 127.0.0.1 -p %d -U %s sessions\n",
        $self->{password}, $self->{pg_bin}, $self->pg_port(1), $self->{user};
    $s .= "#   status: " . $self->_program('patronictl') . " -c $self->{node}[1]{yml} list\n";
    $s .= "#   stop:   perl -I$lib -MPatroniCluster -e 'PatroniCluster::reap_dir(shift, remove => 1)' $self->{dir}\n";
    return $s;
}

# A thread's copy of a server object must not stop the server when the
# thread ends: objects of this class are not cloned into threads.
sub CLONE_SKIP { 1 }

sub DESTROY {
    my ($self) = @_;
    local ($@, $!, $?);
    eval { $self->stop };
}

sub _install_signal_handlers {
    return if $SIGNALS_INSTALLED++;
    my %num = (INT => 2, HUP => 1, TERM => 15);
    for my $sig (keys %num) {
        my $cur = $SIG{$sig};
        next if defined $cur && $cur ne '' && $cur ne 'DEFAULT';
        $SIG{$sig} = sub { exit(128 + $num{$sig}) };    # END blocks run
    }
}

END {
    my $st = $?;
    for my $c (grep { defined } values %LIVE) {
        eval { $c->stop };
    }
    $? = $st;
}

# ------------------------------------------------------------ waits

sub _wait {
    my ($self, $timeout, $what, $cond, $interval) = @_;
    $interval //= 0.1;
    my $t0 = time;
    my $end = $t0 + $timeout;
    my $last = '';
    while (1) {
        my ($ok, $why) = $cond->();
        return wantarray ? ($ok, time - $t0) : $ok if $ok;
        $last = $why // $last;
        last if time >= $end;
        sleep $interval;
    }
    croak sprintf "PatroniCluster: timeout after %.0f s waiting for %s\n  last state: %s\n%s",
        $timeout, $what, $last, $self->diagnostics;
}

sub diagnostics {
    my ($self, $lines) = @_;
    $lines //= 25;
    return '' unless $self->{dir};
    my $s = '';
    for my $f ($self->{etcd_log}, map({ $self->{node}[$_]{log} } $self->nodes),
               map({ "$self->{node}[$_]{home}/pglog/postgresql.log" } $self->nodes)) {
        next unless defined $f && -r $f;
        my @l = do { open my $fh, '<', $f or next; <$fh> };
        my $n = $f =~ /etcd|postgresql\.log/ ? 8 : $lines;
        @l = @l[-$n .. -1] if @l > $n;
        $s .= "  ---- tail of $f\n" . join '', map { "  | $_" } @l;
    }
    return $s;
}

# ------------------------------------------------------------ cluster view

sub _api_nodes {
    my ($self) = @_;
    return grep { my $n = $self->{node}[$_]; $n->{state} eq 'running' && $n->{api} ne 'hung' } $self->nodes;
}

# Decoded GET /cluster from the first REST API that answers (APIs known to
# be down, hung or moved are skipped or reached on their moved port).
sub cluster_json {
    my ($self, $timeout) = @_;
    my @errs;
    for my $i ($self->_api_nodes) {
        my ($j, $err) = PatroniApi::cluster($self->{node}[$i]{api_listen}, $timeout // 1);
        return $j if $j;
        push @errs, "node$i: $err";
    }
    $self->{last_error} = join('; ', @errs) || 'no REST API to ask';
    return;
}

sub members {
    my ($self) = @_;
    my $j = $self->cluster_json or return;
    return @{ $j->{members} };
}

# leader(): node number of the running leader in /cluster, or undef.
# In list context: (node, name, pg_port).
sub leader {
    my ($self, $j) = @_;
    $j //= $self->cluster_json or return;
    for my $m (@{ $j->{members} }) {
        next unless PatroniApi::is_leader_role($m->{role}) && ($m->{state} // '') eq 'running' && $m->{node};
        return wantarray ? ($m->{node}, $m->{name}, $m->{port}) : $m->{node};
    }
    return;
}

sub sync_standby {
    my ($self, $j) = @_;
    $j //= $self->cluster_json or return;
    my ($m) = grep { ($_->{role} // '') eq 'sync_standby' } @{ $j->{members} };
    return $m ? $m->{node} : undef;
}

# role of a node in /cluster (leader, replica, sync_standby) or undef
sub role {
    my ($self, $node, $j) = @_;
    my $i = $self->_idx($node);
    $j //= $self->cluster_json or return;
    my ($m) = grep { ($_->{node} // 0) == $i } @{ $j->{members} };
    return $m ? $m->{role} : undef;
}

sub replicas {
    my ($self, $j) = @_;
    $j //= $self->cluster_json or return;
    return map { $_->{node} } grep { $_->{node} && !PatroniApi::is_leader_role($_->{role}) } @{ $j->{members} };
}

# One check of the whole cluster: (1) or (0, what is missing).
sub healthy {
    my ($self) = @_;
    my $j = $self->cluster_json or return (0, "no /cluster: $self->{last_error}");
    my @m = @{ $j->{members} };
    my @want = grep { $self->{node}[$_]{state} eq 'running' } $self->nodes;
    my $desc = join ', ', map { sprintf '%s %s/%s lag=%s', $_->{name}, $_->{role} // '?', $_->{state} // '?',
                                        $_->{lag} // '-' } @m;
    my ($leader) = grep { PatroniApi::is_leader_role($_->{role}) } @m;
    return (0, "no leader [$desc]") unless $leader && ($leader->{state} // '') eq 'running';
    my %seen = map { ($_->{node} // 0) => $_ } @m;
    for my $i (@want) {
        my $m = $seen{$i} or return (0, "node$i missing [$desc]");
        return (0, "node$i not running [$desc]") unless ($m->{state} // '') eq 'running';
        next if $m == $leader;
        return (0, "node$i lag not <= 1 MiB [$desc]")
            unless defined $m->{lag} && $m->{lag} =~ /^\d+$/ && $m->{lag} <= MIB;
    }
    my @rows = eval {
        split /\n/, $self->psql($leader->{node},
            "SELECT application_name || ' ' || state || ' ' || sync_state FROM pg_stat_replication",
            user => 'super', db => 'postgres', timeout => 5)
    };
    return (0, "pg_stat_replication on $leader->{name}: $@") if $@;
    my %rep = map { my @f = split ' '; $f[0] => { state => $f[1], sync => $f[2] } } @rows;
    for my $i (grep { $_ != $leader->{node} } @want) {
        my $r = $rep{"node$i"};
        return (0, "node$i not streaming in pg_stat_replication [@rows]")
            unless $r && $r->{state} eq 'streaming';
    }
    if ($self->{sync} && @want > 1) {
        my ($ss) = grep { ($_->{role} // '') eq 'sync_standby' } @m;
        return (0, "no sync_standby [$desc]") unless $ss;
        my $r = $rep{ $ss->{name} };
        return (0, "$ss->{name} not sync in pg_stat_replication [@rows]")
            unless $r && $r->{sync} eq 'sync';
    }
    return (1, $desc);
}

sub wait_healthy {
    my ($self, %o) = @_;
    my (undef, $secs) = $self->_wait($o{timeout} // 60, $o{what} // 'a healthy cluster',
                                     sub { $self->healthy }, 0.2);
    return $secs;
}

# wait_new_leader(old => N, timeout => 30, since => $time)
#   polls /cluster every 20 ms until a running leader other than `old`.
#   Returns the node, or (node, seconds since `since`/the call) in list context.
sub wait_new_leader {
    my ($self, %o) = @_;
    my $old = defined $o{old} ? $self->_idx($o{old}) : undef;
    my $since = $o{since} // time;
    my $node = $self->_wait($o{timeout} // 30, 'a new leader', sub {
        my $j = $self->cluster_json(0.5) or return (0, $self->{last_error});
        my $l = $self->leader($j);
        return (0, 'no running leader') unless $l;
        return (0, "leader still node$l") if defined $old && $l == $old;
        return $l;
    }, 0.02);
    return wantarray ? ($node, time - $since) : $node;
}

# wait_writable($node_or_'leader', $timeout): until an INSERT with
# synchronous_commit on succeeds (no local-only commit). Returns (node, secs).
sub wait_writable {
    my ($self, $node, $timeout) = @_;
    $node //= 'leader';
    my $seq = 0;
    my $t0 = time;
    my $n = $self->_wait($timeout // 30, "a writable " . ($node eq 'leader' ? 'leader' : "node $node"), sub {
        my $i = $node eq 'leader' ? $self->leader : $self->_idx($node);
        return (0, 'no leader') unless $i;
        my $k = sprintf 'ww-%d-%.6f-%d', $$, time, ++$seq;
        my ($ok, $out, $err) = $self->psql_try($i,
            "INSERT INTO asbp_probe(k, node) VALUES ('$k', 'node$i')",
            timeout => 4, pgoptions => '-c statement_timeout=3000');
        return (0, "node$i: $err") unless $ok;
        return (0, "node$i: commit not synchronously acknowledged") if $err =~ /synchronous/i;
        return $i;
    }, 0.03);
    return wantarray ? ($n, time - $t0) : $n;
}

# ------------------------------------------------------------ psql

# psql_try($node, $sql_or_arrayref, user => 'app'|'super', db => 'sessions',
#          timeout => 10, pgoptions => '...') -> ($ok, $stdout, $stderr)
sub psql_try {
    my ($self, $node, $sql, %o) = @_;
    my $i = $self->_idx($node);
    my $super = ($o{user} // 'app') eq 'super';
    my @c = map { ('-c', $_) } ref $sql ? @$sql : ($sql);
    my %env = (PGPASSWORD => $super ? $self->{superpassword} : $self->{password},
               PGCONNECT_TIMEOUT => 3, PGAPPNAME => 'asbp-helper');
    $env{PGOPTIONS} = $o{pgoptions} if $o{pgoptions};
    my ($st, $out, $err) = ProcSpawn::run($o{timeout} // 10, \%env,
        "$self->{pg_bin}/psql", '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
        '-h', '127.0.0.1', '-p', $self->{node}[$i]{pg_port},
        '-U', $super ? $self->{superuser} : $self->{user},
        '-d', $o{db} // 'sessions', @c);
    chomp $out;
    return ($st == 0 ? 1 : 0, $out, $err);
}

# psql($node, $sql, %opt): stdout (chomped); croaks on failure.
sub psql {
    my ($self, $node, $sql, %o) = @_;
    my ($ok, $out, $err) = $self->psql_try($node, $sql, %o);
    croak "psql on node $node failed: $err" unless $ok;
    return $out;
}

# ------------------------------------------------------------ actions
# (the faults: kill_node, kill_leader, stop_node, stop_api, start_api,
# hang_api, resume_api come from PatroniFaults)

sub patronictl {
    my ($self, @args) = @_;
    my ($via) = ($self->_api_nodes, 1);
    my ($st, $out, $err) = ProcSpawn::run(60, {}, $self->_program('patronictl'), '-c', $self->{node}[$via]{yml}, @args);
    return wantarray ? ($st == 0, $out, $err) : $out;
}

# switchover(candidate => N, timeout => 30): returns a hashref
#   { old, new, leader_seconds, writable_seconds, output }
sub switchover {
    my ($self, %o) = @_;
    my $t0 = time;
    my $old = $self->leader or croak "switchover: no running leader ($self->{last_error})";
    my @cand = defined $o{candidate} ? ('--candidate', $self->node_name($o{candidate})) : ();
    my ($ok, $out, $err) = $self->patronictl('switchover', $self->{scope},
        '--leader', $self->node_name($old), @cand, '--force');
    croak "patronictl switchover failed: $out$err\n" . $self->diagnostics(10)
        if !$ok || $out =~ /failed, details/;
    my ($new, $lsecs) = $self->wait_new_leader(old => $old, since => $t0, timeout => $o{timeout} // 30);
    my (undef, $wsecs) = $self->wait_writable($new, $o{timeout} // 30);
    my $r = { old => $old, new => $new, leader_seconds => $lsecs,
              writable_seconds => time - $t0, output => $out . $err };
    $self->_note(sprintf 'switchover node%d -> node%d: leader after %.2f s, writable after %.2f s',
                 $old, $new, $lsecs, $r->{writable_seconds});
    return $r;
}

# start_node($n, wait => 1, timeout => 60): starts patroni again; waits for a
# healthy cluster (the node running and streaming) unless wait => 0.
sub start_node {
    my ($self, $node, %o) = @_;
    my ($i, $nd) = $self->_node($node);
    croak "start_node($i): patroni still running" if $nd->{pid} && ProcTree::alive($nd->{pid});
    my $t0 = time;
    $self->_spawn_patroni($i);
    $self->wait_healthy(timeout => $o{timeout} // 60, what => "$nd->{name} to rejoin")
        if $o{wait} // 1;
    return time - $t0;
}

sub restart_node {
    my ($self, $node, %o) = @_;
    my $i = $self->_idx($node);
    my $t0 = time;
    $self->stop_node($i, %o) if $self->{node}[$i]{state} eq 'running';
    $self->start_node($i, %o);
    return time - $t0;
}

# ------------------------------------------------------------ write probe

# start_probe(interval => 0.02): a WriteProbe on every node; its handle is
# for stop_probe, which returns its result (see WriteProbe).
sub start_probe {
    my ($self, %o) = @_;
    my $p = WriteProbe->start(interval => $o{interval}, dir => $self->{dir},
        user => $self->{user}, password => $self->{password},
        dsn => { map { $_ => $self->dsn($_) . ';connect_timeout=1' } $self->nodes });
    $self->{probes}{ $p->tag } = $p;
    return $p;
}

sub stop_probe {
    my ($self, $p) = @_;
    delete $self->{probes}{ $p->tag };
    return $p->stop;
}

# probe_missing($result, $node): acknowledged probe keys absent on $node.
sub probe_missing {
    my ($self, $r, $node) = @_;
    my %have = map { $_ => 1 } split /\n/,
        $self->psql($node // 'leader', "SELECT k FROM asbp_probe WHERE k LIKE '$r->{tag}-%'");
    return grep { !$have{$_} } @{ $r->{acked} };
}

1;

__END__

=head1 NAME

PatroniCluster - throw-away 3-node Patroni + etcd cluster on 127.0.0.1 for tests

=head1 SYNOPSIS

    use FindBin;
    use lib "$FindBin::Bin/lib";
    use Test::More;
    use PatroniCluster;

    # skips (or fails with ASBP_REQUIRE_CLUSTER=1) when it cannot run,
    # starts the cluster, then declares the plan
    my $c = PatroniCluster->start_or_skip(tests => 3);

    my $l = $c->leader;                            # 1..3
    $c->psql($l, q{INSERT INTO sessions VALUES ('x', '{}')});
    my $opts = { DataSource => $c->dsn($l), UserName => $c->user,
                 Password => $c->password, PatroniUrl => $c->patroni_url };

    my $sw = $c->switchover;                       # { old, new, leader_seconds, ... }
    my $k  = $c->kill_leader;                      # returns at once
    my ($new, $secs) = $c->wait_new_leader(old => $k->{node}, since => $k->{at});
    $c->wait_writable($new, 10);
    $c->start_node($k->{node});                    # rejoins as a replica
    $c->stop;                                      # also done by DESTROY / END

=head1 DESCRIPTION

Starts, in a fresh directory F<BASE/asbp-cluster-XXXXXX>, one etcd (v2 API
enabled, as Patroni 3.0.2's C<etcd:> DCS needs) and three Patroni nodes
(C<node1>..C<node3>) on free 127.0.0.1 ports, all running as C<postgres>
(C<setpriv> when root), each in its own session, with a scrubbed
environment (C<PATH> is the program's directory, F</usr/bin>, F</bin>) and
every inherited fd closed. DCS settings: ttl 10, loop_wait 1, retry_timeout 4,
maximum_lag_on_failover 1 MiB, synchronous_mode on (option C<sync>),
pg_rewind, replication slots, wal_log_hints, shared_buffers 32MB.

The bootstrap creates role C<llng> (password C<llng-secret>), database
C<sessions> owned by it, the logged table
C<sessions (id varchar(64) not null primary key, a_session jsonb)> with the
usual expression indexes (C<_whatToTrace>, C<_session_kind>,
C<cast(_utime as bigint)>, C<ipAddr>), and a side table
C<asbp_probe (k text primary key, node text, t timestamptz)> used by the
helper's write checks. Superuser: C<postgres> / C<asbp-super-pw>;
replication: C<replicator>. pg_hba: scram-sha-256 on 127.0.0.1, trust on
the node's private unix socket directory.

C<start> returns once a leader is C<running> in C</cluster>, every replica
is running with lag E<lt>= 1 MiB and C<streaming> in the leader's
C<pg_stat_replication>, and, in synchronous mode, a member has role
C<sync_standby> which the leader's C<pg_stat_replication> shows with
C<sync_state = 'sync'>. Every wait has a timeout; on timeout the helper
croaks with the last state seen and the tail of the etcd, Patroni and
PostgreSQL logs.

Logs: F<DIR/etcd.log>, F<DIR/nodeN.log> (Patroni's stderr),
F<DIR/nodeN/pglog/postgresql.log>.

Needs Linux, root (or the C<postgres> user), C<patroni>, C<patronictl> and
C<etcd> (found through C<PATH>, then in F</usr/bin> and F</usr/local/bin>),
the PostgreSQL server programs (found by C<PgServer::bindir>:
C<ASBP_PG_BINDIR> when set and only there, else C<pg_config --bindir>,
C<PATH>, then the usual directories, see F<t/lib/PgServer.pm>) and, for the
write probe only, DBD::Pg. Core Perl modules otherwise.

=head1 SKIPPING

=over

=item PatroniCluster::available()

C<(1)> or C<(0, $reason)>: the programs, the C<postgres> user, C<setpriv>,
the python modules Patroni needs (etcd, psycopg2 or psycopg, dns) for the
interpreter named by C<patroni>'s C<#!> line.

=item PatroniCluster::skip_or_fail($reason)

C<plan skip_all> normally; when C<ASBP_REQUIRE_CLUSTER> is set (and not
C<0>/C<false>), plans one test, fails it with the reason and exits: in the
project's CI (F<.ci/run> sets it) a cluster test must not silently skip.
The generic C<CI> variable does not count: any hosted CI job building the
distribution sets it, without a cluster.

=item PatroniCluster->start_or_skip(tests => N, %new_options)

C<available()> or C<skip_or_fail>, then C<start>, then C<plan tests =E<gt> N>
(omit C<tests> to plan yourself or use C<done_testing>). A failure to
start dies (a test failure, never a skip).

=back

=head1 CONSTRUCTION

=over

=item PatroniCluster->new(%opt) / $c->start / PatroniCluster->start(%opt)

Options: C<sync> (1), C<nodes> (3), C<scope> (C<asbp-XXXXXX>, unique: it is
also PostgreSQL's cluster_name, seen in process titles), C<user> / C<password>,
C<superuser> / C<superpassword>, C<repl_password>, C<pg_bin>,
C<start_timeout> (90 s), C<base_dir> (C<$ENV{ASBP_CLUSTER_TMPDIR}>, else
F</dev/shm> when it is a tmpfs with 1 GiB free, else F</tmp>; every parent
must be traversable by postgres, so nothing under F</root>. A cluster takes
about 400 MB; only processes are killed in the tests, so a tmpfs changes no
durability result), C<verbose> (or C<ASBP_CLUSTER_VERBOSE=1>: progress on STDERR),
C<distinct_hosts> (0; 1: node I<n> also listens on, and is advertised by the
API at, 127.0.0.I<n+1>, so that one port per address can be given to
something in front of every node, PgBouncer for instance; C<node_host(n)>).

=back

=head1 ACCESSORS

Nodes are named by number (1..3), by name (C<"node2">), or C<"leader">
(the current running leader).

C<dir>, C<scope>, C<nodes> (1..N), C<node_count>, C<sync_mode>, C<pg_bin>,
C<user>, C<password>, C<superuser>, C<superpassword>, C<etcd_port>,
C<etcd_peer_port>, C<etcd_url>, C<node_name(n)>, C<pg_port(n)>, C<node_host(n)>,
C<api_port(n)>, C<api_url(n)> (C<http://127.0.0.1:PORT/cluster>),
C<api_urls> (all three), C<patroni_url> (comma-joined, for C<PatroniUrl>),
C<dsn(n [, db])> (C<dbi:Pg:dbname=sessions;host=127.0.0.1;port=P>),
C<multi_dsn> (libpq multi-host), C<data_dir(n)>, C<config_file(n)>,
C<log_file(n)>, C<patroni_pid(n)>, C<postmaster_pid(n)> (first line of
F<postmaster.pid> when that process is alive and is this node's postmaster), C<node_state(n)> (C<running|stopped|killed>),
C<start_seconds>, C<stop_seconds>, C<pids> (every live process of the
cluster), C<leftover_pids> (processes that still look like ours),
C<diagnostics> (log tails).

=head1 CLUSTER VIEW

=over

=item cluster_json([$timeout])

Decoded C<GET /cluster> from the first REST API that answers (1 s timeout
each), skipping nodes known to be stopped, killed or hung, and asking a
node whose API was moved by C<stop_api> on its moved port. Each member gets
a C<node> key (its number). Undef when none answers.

=item members

The member list of C<cluster_json>.

=item leader([$json])

Scalar context: the number of the running leader, or undef. List context:
C<(node, name, pg_port)>.

=item role(n), sync_standby, replicas

Role string of a node; number of the sync standby; numbers of non-leaders.

=item healthy

C<(1, $description)> or C<(0, $what_is_missing)>: the start condition above,
over the nodes that should be running.

=item wait_healthy(timeout => 60)

Waits for C<healthy>; returns the seconds waited.

=item wait_new_leader(old => N, since => $time, timeout => 30)

Polls C</cluster> every 20 ms until a running leader other than C<old>.
Returns the node, or C<(node, seconds since `since`)> in list context.

=item wait_writable($node_or_'leader', $timeout)

Until an C<INSERT> on that node (as the app user, C<synchronous_commit> on)
succeeds without a "canceling wait for synchronous replication" warning.
Returns the node, or C<(node, seconds)>.

=back

=head1 ACTIONS

=over

=item psql($node, $sql_or_arrayref, user => 'app'|'super', db => 'sessions', timeout => 10, pgoptions => '...')

Runs the real F<psql> (not Debian's wrapper) over TCP with C<-X -A -t -q
-v ON_ERROR_STOP=1>; each element of an arrayref is its own C<-c> (its own
transaction). Returns stdout without the final newline; croaks on failure.
C<psql_try> takes the same arguments and returns C<($ok, $stdout, $stderr)>.

=item patronictl(@args)

Runs C<patronictl -c nodeN.yml @args>; C<($ok, $out, $err)>.

=item switchover(candidate => N, timeout => 30)

C<patronictl switchover SCOPE --leader CURRENT [--candidate X] --force>,
then waits for a new running leader and for it to take a write. Returns
C<{ old, new, leader_seconds, writable_seconds, output }>, times counted
from the launch of patronictl. In synchronous mode Patroni accepts only the
sync standby as candidate: omit C<candidate> or name that node.

=item kill_leader / kill_node(n)

SIGKILL, at once, of that node's patroni, its postmaster and the
postmaster's children (collected before the kill). Returns immediately with
C<{ node, name, pids, at }>; follow with C<wait_new_leader>.

=item stop_node(n, timeout => 30), start_node(n, wait => 1, timeout => 60), restart_node(n)

SIGTERM to patroni (it stops PostgreSQL; a leader hands over), SIGKILL after
the timeout. C<start_node> starts patroni again (a killed ex-leader is
rewound) and waits for a healthy cluster unless C<wait =E<gt> 0>. Each returns
the seconds taken.

=item stop_api(n) / start_api(n)

Moves C<restapi.listen> to another free port and SIGHUPs patroni:
C<connect_address> (the advertised port) then refuses connections while the
node keeps its role and its HA loop. C<start_api> moves it back.

=item hang_api(n) / resume_api(n)

SIGSTOP / SIGCONT of that node's patroni: the port accepts TCP but never
answers. The HA loop is frozen too: a leader hung for longer than ttl is
replaced while its PostgreSQL stays writable until resumed.

=item start_probe(interval => 0.02) / stop_probe($p) / probe_missing($result, $node)

A forked DBD::Pg loop inserting a uniquely keyed row into C<asbp_probe> on
every node every C<interval>, logging each acknowledged write. C<stop_probe>
returns C<{ tag, ok, local, errors, acked => [keys], by_node, max_gap,
gap_from, gap_to, first_ok, last_ok }>; C<max_gap> is the longest time
without any acknowledged write (Patroni's own write-unavailable window).
C<probe_missing> lists acknowledged keys absent on a node. Needs DBD::Pg.

=back

=head1 HELPER MODULES

One concern each, loaded by this module: L<PatroniConfig> (the YAML files
and the bootstrap script), L<PatroniApi> (C<PatroniApi::http_get($port,
$path, $timeout)>: C<($status, $body)> or C<(undef, $error)>, C<$error>
being C<'timeout'> when the connection was accepted but nothing came back
in time; C<PatroniApi::port_refuses($port)>: true when a TCP connect to
127.0.0.1:$port gets ECONNREFUSED), L<PatroniFaults> (the kill / stop /
hang methods above), L<WriteProbe> (the probe), L<ProcSpawn> (starting
processes, the guardian) and L<ProcTree> (the process table:
C<ProcTree::alive($pid)>, trees, signals, waits).

=head1 TEARDOWN

C<stop> stops patroni (SIGTERM, SIGKILL after 20 s), then any leftover
PostgreSQL process of the directory, then etcd (each SIGTERM then SIGKILL
after a timeout), checks that none is left and removes the directory. It is
called by C<DESTROY>, by an C<END> block (also when the test dies), and on
SIGINT/SIGTERM/SIGHUP (handlers that C<exit> are installed for those
signals when they still have their default action). Only the process that
started the cluster tears it down: forked children never do.

A guardian process, forked at start, waits for the test process to go away;
if it goes without tearing down (SIGKILL, a signal without handler), the
guardian stops everything and removes the directory. It notices when the
last holder of its pipe is gone, so a test's own forked children that
outlive the test delay it (the probe child closes its copy).

With C<ASBP_KEEP_CLUSTER=1> nothing is stopped or removed; C<stop> prints
the ports, a psql command line and the one-liner that stops it later:

    perl -It/lib -MPatroniCluster -e 'PatroniCluster::reap_dir(shift, remove => 1)' DIR

=cut
