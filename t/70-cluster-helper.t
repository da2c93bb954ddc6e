#!/usr/bin/perl
# Tests of t/lib/PatroniCluster.pm itself: what it promises about a real
# 3-node Patroni + etcd cluster (start, replication, switchover, crash of the
# leader, REST API down or hung, rejoin, teardown).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use PatroniCluster;
use PatroniApi ();
use ProcTree ();

my $have_dbd = eval { require DBD::Pg; 1 };
my $keep = PatroniCluster::_truthy($ENV{ASBP_KEEP_CLUSTER});

my %before = map { $_ => 1 } postgres_pids();
my $c = PatroniCluster->start_or_skip(tests => 46);
diag sprintf 'start: %.1f s (%s)', $c->start_seconds, $c->dir;

# ---------------------------------------------------------------- topology
{
    my $j = $c->cluster_json;
    ok $j, 'GET /cluster answers';
    my @m = @{ $j->{members} };
    is scalar @m, 3, 'three members';
    my @leaders = grep { $_->{role} eq 'leader' } @m;
    is scalar @leaders, 1, 'exactly one leader';
    is $leaders[0]{state}, 'running', 'leader is running';
    my @rep = grep { $_->{role} ne 'leader' } @m;
    is scalar(grep { $_->{state} eq 'running' && $_->{lag} =~ /^\d+$/ && $_->{lag} <= 1048576 } @rep), 2,
        'two replicas running with lag <= 1 MiB';
    my $l = $c->leader;
    is $l, $leaders[0]{node}, 'leader() agrees with /cluster';
    my @l = $c->leader;
    is_deeply \@l, [ $l, "node$l", $c->pg_port($l) ], 'leader() in list context: node, name, port';
    my $rows = $c->psql($l, 'SELECT state, sync_state FROM pg_stat_replication ORDER BY 2',
                        user => 'super', db => 'postgres');
    is scalar(grep { /^streaming\|/ } split /\n/, $rows), 2, 'both replicas streaming (pg_stat_replication)';
    is scalar(grep { $_->{role} eq 'sync_standby' } @m), 1, 'one sync_standby in /cluster';
    like $rows, qr/^streaming\|sync$/m, "leader's pg_stat_replication shows sync_state=sync";
    is_deeply [ $c->api_urls ], [ map { 'http://127.0.0.1:' . $c->api_port($_) . '/cluster' } 1 .. 3 ],
        'api_urls';
    is $c->dsn(2), 'dbi:Pg:dbname=sessions;host=127.0.0.1;port=' . $c->pg_port(2), 'dsn(node)';
    is $c->psql($l, "SELECT relpersistence::text || ' ' || pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'sessions'"),
        'p ' . $c->user, 'sessions is a logged table owned by the app user';
    is $c->psql($l, "SELECT count(*) FROM pg_indexes WHERE tablename = 'sessions'"), 5,
        'primary key + 4 expression indexes';
}

# ---------------------------------------------------------------- replication
my $row = q{INSERT INTO sessions VALUES ('row1', '{"_whatToTrace":"dwho","_utime":"1700000000"}')};
{
    my $l = $c->leader;
    $c->psql($l, $row);
    for my $r (grep { $_ != $l } $c->nodes) {
        my $got = '';
        my $end = time + 5;
        while (time < $end) {
            $got = $c->psql($r, "SELECT a_session->>'_whatToTrace' FROM sessions WHERE id = 'row1'");
            last if $got eq 'dwho';
            sleep 0.05;
        }
        is $got, 'dwho', "row written on the leader is readable on replica node$r";
    }
}

# ---------------------------------------------------------------- switchover
{
    my $probe = $have_dbd ? $c->start_probe(interval => 0.02) : undef;
    sleep 0.3;
    my $sw = $c->switchover;
    isnt $sw->{new}, $sw->{old}, "switchover: node$sw->{old} -> node$sw->{new}";
    is $c->leader, $sw->{new}, 'new leader is running in /cluster';
    is $c->psql($sw->{new}, "SELECT count(*) FROM sessions WHERE id = 'row1'"), 1, 'row still there on the new leader';
    SKIP: {
        skip 'DBD::Pg not installed: no write probe', 1 unless $probe;
        sleep 0.3;
        my $r = $c->stop_probe($probe);
        my @missing = $c->probe_missing($r, $sw->{new});
        is scalar @missing, 0, "no acknowledged probe write lost ($r->{ok} acknowledged)" or diag "missing: @missing";
        diag sprintf 'switchover probe: longest time without an acknowledged write: %.2f s', $r->{max_gap};
    }
    my $heal = $c->wait_healthy(timeout => 60);
    ok defined $heal, 'old leader back as a streaming replica (wait_healthy)';
    like $c->role($sw->{old}), qr/^(?:replica|sync_standby)$/, 'old leader is now a replica';
    diag sprintf 'switchover: new leader in /cluster %.2f s, writable %.2f s, cluster healthy again %.1f s later',
        $sw->{leader_seconds}, $sw->{writable_seconds}, $heal;
}

# ---------------------------------------------------------------- REST API stopped
{
    my $l = $c->leader;
    my $port = $c->api_port($l);
    $c->stop_api($l);
    ok PatroniApi::port_refuses($port), "stop_api: leader's REST port $port refuses connections";
    is $c->leader, $l, '... the node keeps its leader role (seen through the other APIs)';
    ok eval { $c->psql($l, q{INSERT INTO sessions VALUES ('row-api', '{}')}); 1 }, '... and still takes writes';
    $c->start_api($l);
    my ($code) = PatroniApi::http_get($port, '/cluster', 2);
    is $code, 200, 'start_api: the port answers again';
}

# ---------------------------------------------------------------- REST API hung
{
    my $j = $c->cluster_json;
    my ($r) = map { $_->{node} } grep { $_->{role} eq 'replica' } @{ $j->{members} };
    ($r) = grep { $_ != $c->leader } $c->nodes unless $r;
    my $port = $c->api_port($r);
    $c->hang_api($r);
    my $t = time;
    my ($code, $err) = PatroniApi::http_get($port, '/cluster', 1);
    my $took = time - $t;
    ok !$code && $err eq 'timeout', "hang_api: GET on node$r times out ($err)";
    ok $took >= 0.9 && $took < 2, sprintf '... after the 1 s timeout (%.2f s): TCP accepted, no answer', $took;
    $c->resume_api($r);
    ($code) = PatroniApi::http_get($port, '/cluster', 2);
    is $code, 200, 'resume_api: the port answers again';
}

# ---------------------------------------------------------------- crash of the leader
my $killed;
{
    $c->wait_healthy(timeout => 30);
    my $l = $c->leader;
    my $probe = $have_dbd ? $c->start_probe(interval => 0.02) : undef;
    sleep 0.3;
    my $n = 20;
    my ($ok, undef, $err) = $c->psql_try($l,
        [ map { qq{INSERT INTO sessions VALUES ('kill-$_', '{"n":$_}')} } 1 .. $n ]);
    ok $ok && $err !~ /synchronous/i, "$n rows committed on node$l with synchronous_commit on";
    my $k = $c->kill_leader;
    $killed = $k->{node};
    is $killed, $l, "kill_leader killed node$l (pids @{ $k->{pids} })";
    my $end = time + 2;
    sleep 0.01 while time < $end && grep { ProcTree::alive($_) } @{ $k->{pids} };
    ok !(grep { ProcTree::alive($_) } @{ $k->{pids} }), '... patroni, postmaster and children are gone';
    my ($new, $secs) = $c->wait_new_leader(old => $killed, since => $k->{at}, timeout => 30);
    isnt $new, $killed, "a replica (node$new) became leader";
    ok $secs < 20, sprintf '... within 20 s (%.2f s)', $secs;
    my (undef, $ws) = $c->wait_writable($new, 15);
    my $wsecs = time - $k->{at};
    is $c->psql($new, "SELECT count(*) FROM sessions WHERE id LIKE 'kill-%'"), $n,
        'every synchronously acknowledged row is on the new leader';
    is $c->psql($new, "SELECT count(*) FROM sessions WHERE id IN ('row1', 'row-api')"), 2,
        'older rows too';
    SKIP: {
        skip 'DBD::Pg not installed: no write probe', 2 unless $probe;
        sleep 0.2;
        my $r = $c->stop_probe($probe);
        ok $r->{ok} > 10, "probe: $r->{ok} acknowledged writes ($r->{errors} errors, $r->{local} local-only)";
        my @missing = $c->probe_missing($r, $new);
        is scalar @missing, 0, 'no acknowledged probe write lost' or diag "missing: @missing";
        diag sprintf 'probe: longest time without an acknowledged write: %.2f s', $r->{max_gap};
    }
    diag sprintf 'kill leader: new leader in /cluster after %.2f s, writable after %.2f s', $secs, $wsecs;
}

# ---------------------------------------------------------------- rejoin
{
    my $t = time;
    $c->start_node($killed);
    my $secs = time - $t;
    like $c->role($killed), qr/^(?:replica|sync_standby)$/, "killed node$killed rejoined as a replica";
    my $got = '';
    my $end = time + 5;
    while (time < $end) {
        $got = $c->psql($killed, "SELECT count(*) FROM sessions WHERE id LIKE 'kill-%'");
        last if $got == 20;
        sleep 0.05;
    }
    is $got, 20, '... and has the rows';
    diag sprintf 'rejoin of the killed node: %.1f s', $secs;
}

# ---------------------------------------------------------------- restart
{
    my $r = (grep { $_ != $c->leader } $c->nodes)[0];
    my $secs = $c->restart_node($r);
    like $c->role($r), qr/^(?:replica|sync_standby)$/, "restart_node($r): back as a replica";
    diag sprintf 'restart of a replica: %.1f s', $secs;
}

# ---------------------------------------------------------------- teardown
SKIP: {
    skip 'ASBP_KEEP_CLUSTER set: cluster left running', 5 if $keep;
    my @pids = $c->pids;
    my $dir = $c->dir;
    ok scalar(@pids) > 10, scalar(@pids) . ' processes of ours before stop';
    ok $c->stop, 'stop';
    diag sprintf 'teardown: %.1f s', $c->stop_seconds;
    ok !(grep { ProcTree::alive($_) } @pids), 'none of them is alive';
    ok !-e $dir, "temp dir $dir removed";
    # ps -u postgres: nothing new may remain that is ours (other sessions may
    # run their own PostgreSQL on this machine: those are listed, not failed)
    my @new = grep { !$before{$_} } postgres_pids();
    my @ours = $c->leftover_pids;
    is "@ours", '', 'no process of ours left (ps -u postgres)';
    diag "other postgres processes (not ours): @new" if @new;
}

sub postgres_pids {
    my $uid = (getpwnam 'postgres')[2] // return;
    opendir my $d, '/proc' or return;
    return grep { /^\d+$/ && ((stat "/proc/$_")[4] // -1) == $uid } readdir $d;
}
