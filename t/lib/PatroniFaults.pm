package PatroniFaults;

# Test helper: the faults PatroniCluster injects into one node's processes:
# SIGKILL of the node (kill_node, kill_leader), SIGTERM (stop_node), the
# REST API moved away (stop_api / start_api) or frozen (hang_api /
# resume_api).  Methods imported by PatroniCluster (see its POD; the
# helpers here whose names start with _ are plain functions); they use
# these methods of the cluster:
#
#   _node($n)          (number, node record) for 1..N, "nodeN" or "leader"
#   leader             the running leader's number
#   postmaster_pid($i) _write_node_yml($i) _wait(...) _note($msg)
#
# A node record: name pid state (running|stopped|killed) api
# (up|stopped|hung) api_port api_listen home.

use strict;
use warnings;

use Carp qw(croak);
use Exporter qw(import);
use PatroniApi ();
use ProcTree ();
use Time::HiRes qw(time);

our $VERSION = '0.01';
our @EXPORT_OK = qw(kill_node kill_leader stop_node stop_api start_api hang_api resume_api);

# kill_node($n): SIGKILL of patroni, the postmaster and its children, all at
# once (collected first). Returns immediately: { node, name, pids, at }.
sub kill_node {
    my ($self, $node) = @_;
    my ($i, $nd) = $self->_node($node);
    my $at = time;
    my @all = ProcTree::kill_tree('KILL', $nd->{pid}, $self->postmaster_pid($i));
    waitpid($nd->{pid}, 0) if $nd->{pid};
    $nd->{pid} = undef;
    $nd->{state} = 'killed';
    $self->_note("killed $nd->{name}: @all");
    return { node => $i, name => $nd->{name}, pids => \@all, at => $at };
}

sub kill_leader {
    my ($self) = @_;
    my $l = $self->leader or croak "kill_leader: no running leader ($self->{last_error})";
    return $self->kill_node($l);
}

# stop_node($n, timeout => 30): SIGTERM to patroni (which stops PostgreSQL),
# SIGKILL after the timeout; then any leftover postmaster.
sub stop_node {
    my ($self, $node, %o) = @_;
    my ($i, $nd) = $self->_node($node);
    my $t0 = time;
    my @left = ProcTree::terminate('TERM', $o{timeout} // 30, $nd->{pid});
    if (my $pm = $self->postmaster_pid($i)) {
        push @left, ProcTree::terminate('INT', 10, ProcTree::dir_procs($nd->{home}, undef, $pm));
    }
    croak "stop_node($i): still alive: @left" if @left;
    $nd->{pid} = undef;
    $nd->{state} = 'stopped';
    _move_api($self, $i, $nd->{api_port});
    $nd->{api} = 'up';
    return time - $t0;
}

# Rewrites the node's restapi.listen; SIGHUPs a running patroni.
sub _move_api {
    my ($self, $i, $port) = @_;
    my $nd = ($self->_node($i))[1];
    $nd->{api_listen} = $port;
    $self->_write_node_yml($i);
    kill 'HUP', $nd->{pid} if $nd->{pid};
}

# stop_api($n): moves restapi.listen to another free port and SIGHUPs
# patroni; the advertised port (connect_address) then refuses connections
# while the node keeps its role.
sub stop_api {
    my ($self, $node, %o) = @_;
    my ($i, $nd) = $self->_node($node);
    croak "stop_api($i): node not running" unless $nd->{state} eq 'running';
    return if $nd->{api} eq 'stopped';
    require FreePort;
    _move_api($self, $i, scalar FreePort::pick(1));
    $self->_wait($o{timeout} // 15, "$nd->{name} REST API to move to $nd->{api_listen}", sub {
        return (0, "port $nd->{api_port} still accepts") unless PatroniApi::port_refuses($nd->{api_port});
        return PatroniApi::answers($nd->{api_listen}, '/patroni', 1)
            ? 1 : (0, "moved port $nd->{api_listen} not answering");
    });
    $nd->{api} = 'stopped';
    return 1;
}

sub start_api  { _api_back(@_, from => 'stopped') }
sub resume_api { _api_back(@_, from => 'hung') }

# hang_api($n): SIGSTOP of that node's patroni (the port accepts TCP but
# never answers; its HA loop is frozen too). resume_api($n): SIGCONT.
sub hang_api {
    my ($self, $node) = @_;
    my ($i, $nd) = $self->_node($node);
    croak "hang_api($i): node not running" unless $nd->{state} eq 'running';
    kill 'STOP', $nd->{pid};
    $nd->{api_before_hang} = $nd->{api};
    $nd->{api} = 'hung';
    return 1;
}

# Brings back a REST API moved by stop_api (from => 'stopped') or frozen by
# hang_api (from => 'hung'), then waits (15 s unless timeout) for it to
# answer on the port it listens on.
sub _api_back {
    my ($self, $node, %o) = @_;
    my ($i, $nd) = $self->_node($node);
    return if $nd->{api} ne $o{from};
    my ($what, $why) = ('to answer again', 'not answering');
    if ($o{from} eq 'hung') {
        kill 'CONT', $nd->{pid};
        $nd->{api} = delete $nd->{api_before_hang} // 'up';
    } else {
        _move_api($self, $i, $nd->{api_port});
        ($what, $why) = ("back on $nd->{api_port}", "port $nd->{api_port} not answering");
    }
    $self->_wait($o{timeout} // 15, "$nd->{name} REST API $what", sub {
        return PatroniApi::answers($nd->{api_listen}, '/patroni', 1) ? 1 : (0, $why);
    });
    $nd->{api} = 'up' if $o{from} eq 'stopped';
    return 1;
}

1;
