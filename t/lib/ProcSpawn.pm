package ProcSpawn;

# Test helper: starting processes for the cluster helper.
#
#   ProcSpawn::daemon($log, @cmd)  forks and execs @cmd as "postgres" in its
#       own session, scrubbed environment, output appended to $log; its pid
#   ProcSpawn::run($timeout, \%env, @cmd)  runs @cmd to completion (killed
#       after $timeout s); ($status, $stdout, $stderr), $status -1 on timeout
#   ProcSpawn::guardian($on_orphan)  a forked watcher that calls $on_orphan
#       when this process goes away without releasing it; ProcSpawn::release
#   ProcSpawn::close_guardian_pipes()  for our own forked children, so that
#       they do not keep a guardian waiting
#   ProcSpawn::which($name, @dirs)  the first executable $name in PATH, then
#       in @dirs; undef when there is none
#
# A started program's PATH is its own directory, then /usr/bin:/bin (a
# script such as patroni, "#!/usr/bin/env python3" in a virtual
# environment, finds the interpreter installed beside it).

use strict;
use warnings;

use Carp qw(croak);
use Errno ();
use File::Temp ();
use POSIX ();
use Time::HiRes qw(time sleep);

our $VERSION = '0.01';

my %GUARDIAN_FH;    # guardian pid => write end of its pipe

# The file descriptors of this process above 2.
sub open_fds_above_2 {
    opendir my $d, '/proc/self/fd' or return 3 .. 1023;
    my @fds = grep { /^\d+$/ && $_ > 2 } readdir $d;
    closedir $d;
    return @fds;
}

# The first executable file $name in a PATH directory, then in @dirs.
sub which {
    my ($name, @dirs) = @_;
    for my $dir ((split /:/, $ENV{PATH} // ''), @dirs) {
        next unless length $dir;
        my $f = "$dir/$name";
        return $f if -f $f && -x _;
    }
    return undef;
}

# The PATH a started program gets: its own directory, /usr/bin, /bin.
sub program_path {
    my ($prog) = @_;
    my @dirs = ('/usr/bin', '/bin');
    unshift @dirs, $1 if defined $prog && $prog =~ m{\A(/.*)/[^/]+\z} && $1 ne '/usr/bin' && $1 ne '/bin';
    return join ':', @dirs;
}

# Forks and execs @cmd as postgres (via setpriv when root) with a scrubbed
# environment, in its own session, stdin from /dev/null, stdout+stderr
# appended to $log, every other fd closed.
sub daemon {
    my ($log, @cmd) = @_;
    my @pre;
    if ($> == 0) {
        my $setpriv = which('setpriv', '/usr/bin', '/bin')
            or croak 'setpriv not found (util-linux): needed to run as postgres';
        @pre = ($setpriv, '--reuid=postgres', '--regid=postgres', '--init-groups');
    }
    my $path = program_path($cmd[0]);
    my $pid = fork;
    croak "fork: $!" unless defined $pid;
    if (!$pid) {
        eval {
            POSIX::setsid();
            open STDIN, '<', '/dev/null' or die "stdin: $!";
            open STDOUT, '>>', $log or die "open $log: $!";
            open STDERR, '>&', \*STDOUT or die "dup: $!";
            POSIX::close($_) for open_fds_above_2();
            chdir '/';    # the caller's directory may not be readable by postgres
            %ENV = (PATH => $path, LANG => 'C.UTF-8');
            exec @pre, @cmd;
            die "exec @cmd: $!";
        };
        print STDERR $@ if $@;
        POSIX::_exit(127);
    }
    return $pid;
}

# run($timeout, \%env, @cmd) -> ($exit_status, $stdout, $stderr)
sub run {
    my ($timeout, $env, @cmd) = @_;
    my $out = File::Temp->new(TMPDIR => 1);
    my $err = File::Temp->new(TMPDIR => 1);
    my $pid = fork;
    croak "fork: $!" unless defined $pid;
    if (!$pid) {
        eval {
            open STDIN, '<', '/dev/null';
            open STDOUT, '>', $out->filename or die;
            open STDERR, '>', $err->filename or die;
            %ENV = (PATH => program_path($cmd[0]), LANG => 'C.UTF-8', %$env);
            chdir '/';
            exec @cmd or die "exec $cmd[0]: $!\n";
        };
        print STDERR $@;
        POSIX::_exit(127);
    }
    my $end = time + $timeout;
    my $st;
    while (1) {
        my $r = waitpid $pid, POSIX::WNOHANG();
        if ($r == $pid) { $st = $?; last }
        if (time > $end) {
            kill 'KILL', $pid;
            waitpid $pid, 0;
            $st = -1;
            last;
        }
        sleep 0.003;
    }
    my $slurp = sub { open my $fh, '<', $_[0] or return ''; local $/; <$fh> // '' };
    my ($o, $e) = ($slurp->($out->filename), $slurp->($err->filename));
    $e .= "timed out after ${timeout}s\n" if $st == -1;
    return ($st, $o, $e);
}

# A forked watcher, in its own session, that runs $on_orphan if this
# process dies without calling release (SIGKILL, an unhandled signal,
# prove killed...).  It notices when the last holder of its pipe is gone.
# Returns its pid.
sub guardian {
    my ($on_orphan) = @_;
    pipe my $r, my $w or croak "pipe: $!";
    my $pid = fork;
    croak "fork: $!" unless defined $pid;
    if (!$pid) {
        close $w;
        POSIX::setsid();
        $SIG{$_} = 'IGNORE' for qw(INT TERM HUP PIPE QUIT);
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        my $rfd = fileno $r;
        POSIX::close($_) for grep { $_ != $rfd } open_fds_above_2();
        my ($msg, $buf) = ('');
        while (1) {
            my $n = sysread $r, $buf, 64;
            next if !defined $n && $!{EINTR};
            last unless $n;
            $msg .= $buf;
            last if $msg =~ /[DK]/;    # torn down (or kept) by its owner
        }
        $on_orphan->() if $msg !~ /[DK]/;
        POSIX::_exit(0);
    }
    close $r;
    $GUARDIAN_FH{$pid} = $w;
    return $pid;
}

# release($pid, $msg): 'D' (done: torn down) or 'K' (kept on purpose); the
# guardian exits without acting and is reaped.
sub release {
    my ($pid, $msg) = @_;
    my $w = delete $GUARDIAN_FH{$pid} or return;
    local $SIG{PIPE} = 'IGNORE';
    syswrite $w, $msg;
    close $w;
    my $end = time + 5;
    while (time < $end) { last if waitpid($pid, POSIX::WNOHANG()) != 0; sleep 0.01 }
}

sub close_guardian_pipes {
    close $_ for values %GUARDIAN_FH;
    %GUARDIAN_FH = ();
}

1;
