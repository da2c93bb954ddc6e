package ProcTree;

# Test helper: the process table of /proc, trees of processes in it,
# signalling them and waiting for them to go.  Linux only.  Plain functions:
#
#   ProcTree::alive($pid)            running (not a zombie); reaps our child
#   ProcTree::cmdline($pid)          its command line, arguments space-joined
#   ProcTree::table()                { pid => { ppid, state, uid, cmd } }
#   ProcTree::tree($table, @roots)   the roots and all their descendants
#   ProcTree::read_pidfile($data)    first line of $data/postmaster.pid
#   ProcTree::postmaster($data)      that pid, if alive and started on $data
#   ProcTree::dir_procs($dir, $uid, @known)  the processes of a directory
#   ProcTree::wait_gone($secs, @pids)        waits; returns those still alive
#   ProcTree::terminate($sig, $grace, @pids) $sig, then SIGKILL after $grace
#   ProcTree::kill_tree($sig, @roots)        the whole tree, at once
#   ProcTree::kill_group($sig, $leader)      a process group and its leader

use strict;
use warnings;

use POSIX ();
use Time::HiRes qw(time sleep);

our $VERSION = '0.01';

sub cmdline {
    open my $c, '<', "/proc/$_[0]/cmdline" or return '';
    local $/;
    my $cmd = <$c> // '';
    $cmd =~ tr/\0/ /;
    return $cmd;
}

# pid => {ppid, state, uid, cmd}
sub table {
    my %t;
    opendir my $d, '/proc' or return \%t;
    for my $pid (grep { /^\d+$/ } readdir $d) {
        open my $fh, '<', "/proc/$pid/stat" or next;
        my $stat = <$fh> // next;
        my ($state, $ppid) = $stat =~ /\)\s+(\S)\s+(\d+)/ or next;
        my $uid = (stat "/proc/$pid")[4];
        $t{$pid} = { ppid => $ppid, state => $state, uid => $uid, cmd => cmdline($pid) };
    }
    closedir $d;
    return \%t;
}

sub alive {
    my ($pid) = @_;
    return 0 unless $pid;
    waitpid($pid, POSIX::WNOHANG());    # reap it if it is our child
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my $stat = <$fh> // return 0;
    my ($state) = $stat =~ /\)\s+(\S)/;
    return defined $state && $state ne 'Z' && $state ne 'X';
}

# The roots present in $t and every descendant of theirs, as a hash ref
# pid => 1.
sub tree {
    my ($t, @roots) = @_;
    my %set = map { $_ => 1 } grep { $_ && $t->{$_} } @roots;
    my %kids;
    push @{ $kids{ $t->{$_}{ppid} } }, $_ for keys %$t;
    my @q = keys %set;
    while (defined(my $x = shift @q)) {
        for my $k (@{ $kids{$x} || [] }) { push @q, $k unless $set{$k}++ }
    }
    return \%set;
}

sub read_pidfile {
    my ($data) = @_;
    open my $fh, '<', "$data/postmaster.pid" or return;
    my $pid = <$fh>;
    return unless defined $pid && $pid =~ /^\s*(\d+)\s*$/;
    return $1;
}

# The postmaster of $data: the pid of postmaster.pid if that process is
# alive and was started on $data (a stale file may name a reused pid).
sub postmaster {
    my ($data) = @_;
    my $pid = read_pidfile($data) or return;
    return unless alive($pid) && index(cmdline($pid), "$data ") >= 0;
    return $pid;
}

# The processes belonging to a directory: processes of $uid (any uid when
# undef) whose command line names the directory, postmasters from
# $dir/*/data/postmaster.pid, the @known pids, and all their descendants;
# not this process, no zombie; sorted.
sub dir_procs {
    my ($dir, $uid, @known) = @_;
    my $p = table();
    my @roots = grep {
        (!defined $uid || $p->{$_}{uid} == $uid) && index($p->{$_}{cmd}, "$dir/") >= 0
    } keys %$p;
    for my $data (glob "$dir/*/data") {
        my $pm = read_pidfile($data) or next;
        push @roots, $pm if $p->{$pm} && index($p->{$pm}{cmd}, "$data ") >= 0;
    }
    my $set = tree($p, @roots, @known);
    delete $set->{$$};
    return grep { $p->{$_}{state} ne 'Z' } sort { $a <=> $b } keys %$set;
}

# Waits up to $secs for @pids to be gone; returns those still alive.
sub wait_gone {
    my ($secs, @pids) = @_;
    my $end = time + $secs;
    while (1) {
        @pids = grep { alive($_) } @pids;
        return @pids unless @pids && time < $end;
        sleep 0.05;
    }
}

# Sends $sig to @pids (and SIGCONT, so stopped ones get it), waits up to
# $grace seconds, SIGKILLs what is left and waits up to 5 more seconds.
# Returns the pids still alive (should be none).
sub terminate {
    my ($sig, $grace, @pids) = @_;
    @pids = grep { alive($_) } @pids;
    return unless @pids;
    kill $sig, @pids;
    kill 'CONT', @pids;
    @pids = wait_gone($grace, @pids) or return;
    kill 'KILL', @pids;
    return wait_gone(5, @pids);
}

# Collects the trees of @roots first, then signals every process of them
# at once (no process gets the time to fork or to react to another's
# death).  Returns the signalled pids, sorted.
sub kill_tree {
    my ($sig, @roots) = @_;
    my @all = sort { $a <=> $b } keys %{ tree(table(), @roots) };
    kill $sig, @all if @all;
    return @all;
}

# Signals the process group of $leader (which called setpgrp) and $leader
# itself, then waits for $leader to be gone (reaped when it is our child).
sub kill_group {
    my ($sig, $leader) = @_;
    kill $sig, -$leader;
    kill $sig, $leader;
    return wait_gone(5, $leader);
}

1;
