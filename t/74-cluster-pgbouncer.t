# PgBouncer on every node of a real 3-node Patroni cluster, in transaction
# pooling mode, all on the same port (each node on a loopback address of
# its own: PatroniCluster's distinct_hosts), as deployments run it.  The
# module reaches the leader the API names at the bouncer's port
# (PatroniLeaderPort), with PreparedStatements => 0.  Ties before, during
# and after a switchover: no caller sees an error, every acknowledged write
# is on the new leader with its last value, and the module's connections
# go through the new leader's bouncer.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use PatroniCluster;
use PgBouncer;
use File::Temp qw(tempdir);
use Time::HiRes qw(time sleep);
use POSIX ();
use Apache::Session::Browseable::Patroni;

PgBouncer::skip_unless_available();
my $c = PatroniCluster->start_or_skip( distinct_hosts => 1 );
my $C = 'Apache::Session::Browseable::Patroni';
my $P = PgServer::free_port();    # every bouncer's port

my %pgb;
for my $n ( $c->nodes ) {
    $pgb{$n} = PgBouncer->start_or_skip( host => '127.0.0.1', port => $c->pg_port($n),
        dbname => 'sessions', user => $c->user, password => $c->password,
        listen_addr => $c->node_host($n), listen_port => $P, pool_mode => 'transaction',
        default_pool_size => 5 );
}
my ( $leader, undef, $lport ) = $c->leader;
is( $lport, $c->pg_port($leader), 'the API names the leader at PostgreSQL\'s port' );

# The DataSource is the first leader's bouncer, as written in a config.
my %args = ( DataSource => $pgb{$leader}->dsn, UserName => $c->user, Password => $c->password,
    PatroniUrl => $c->patroni_url, PatroniAllowedHosts => '127.0.0.0/8',
    PatroniLeaderPort => $P, PreparedStatements => 0, FailoverTimeout => 20 );

my %want;    # id => last acknowledged value
sub put {
    my ( $id, $v ) = @_;
    tie my %s, $C, $id, {%args};
    $s{v} = $v;
    $s{_session_kind} = 'SSO';
    $id = $s{_session_id};
    untie %s;
    return $id;
}
sub get { my ($id) = @_; tie my %s, $C, $id, {%args}; my $v = $s{v}; untie %s; $v }

# before
for my $i ( 1 .. 5 ) {
    my $id = put( undef, "before-$i" );
    $want{$id} = "before-$i";
}
is( scalar keys %want, 5, 'five sessions written before the switchover' );
is( get( ( keys %want )[0] ), $want{ ( keys %want )[0] }, 'and read back' );
my @pool = Apache::Session::Browseable::Patroni::_pool_conns();
is( $pool[0][0], $c->node_host($leader) . ":$P", 'the pooled connection is the leader\'s bouncer' );
cmp_ok( scalar( $pgb{$leader}->servers ), '>=', 1, 'the leader\'s bouncer holds server connections' );

# during: a forked writer creates and updates sessions in a loop, logging
# each acknowledged write (and each error)
my $dir = tempdir( CLEANUP => 1 );
my $wpid = fork // die "fork: $!";
if ( !$wpid ) {
    open my $log, '>', "$dir/writes" or POSIX::_exit(1);
    select( ( select($log), $| = 1 )[0] );
    my ( $k, @ids ) = (0);
    until ( -e "$dir/stop" ) {
        my $t0 = time;
        my $v = 'during-' . ++$k;
        my $target = @ids && $k % 2 ? $ids[ $k % @ids ] : undef;
        my $id = eval { put( $target, $v ) };
        if ( defined $id ) {
            push @ids, $id unless $target;
            printf $log "ok %s %s %.3f\n", $id, $v, time - $t0;
        }
        else {
            ( my $e = $@ ) =~ s/\s+/ /g;
            printf $log "ERR %s %.3f\n", $e, time - $t0;
        }
        sleep 0.02;
    }
    POSIX::_exit(0);
}
sleep 2;
my $sw = $c->switchover;
diag sprintf 'switchover node%d -> node%d: leader after %.2f s, writable after %.2f s',
  $sw->{old}, $sw->{new}, $sw->{leader_seconds}, $sw->{writable_seconds};
sleep 3;
{ open my $fh, '>', "$dir/stop" or die }
waitpid $wpid, 0;
my @lines = do { open my $fh, '<', "$dir/writes" or die; map { chomp; $_ } <$fh> };
my @errs  = grep { /^ERR/ } @lines;
my @oks   = grep { /^ok/ } @lines;
cmp_ok( scalar @oks, '>', 20, scalar(@oks) . ' writes acknowledged during the switchover' );
is( scalar @errs, 0, 'no caller saw an error' ) or diag join "\n", @errs[ 0 .. ( $#errs < 9 ? $#errs : 9 ) ];
my $max = 0;
for (@oks) {
    my ( undef, $id, $v, $dt ) = split ' ';
    $want{$id} = $v;
    $max = $dt if $dt > $max;
}
diag sprintf 'longest write %.2f s', $max;
cmp_ok( $max, '<', 5, 'every write under LL::NG\'s 5 s alarm' );

# after
my ( $new, undef, $nport ) = $c->leader;
isnt( $new, $leader, 'the leader changed' );
for my $i ( 1 .. 5 ) {
    my $id = put( undef, "after-$i" );
    $want{$id} = "after-$i";
}
my $first = ( sort keys %want )[0];
put( $first, 'updated-after' );
$want{$first} = 'updated-after';
is( get($first), 'updated-after', 'read after the switchover' );

@pool = Apache::Session::Browseable::Patroni::_pool_conns();
ok( ( grep { $_->[0] eq $c->node_host($new) . ":$P" } @pool ),
    'the module now pools connections to the new leader\'s bouncer' );
ok( !( grep { ( split /:/, $_->[0] )[1] == $nport } @pool ),
    'and none to PostgreSQL\'s port the API gave' );
cmp_ok( scalar( $pgb{$new}->servers ), '>=', 1, 'the new leader\'s bouncer holds server connections' );

# no lost write: every acknowledged value is on the new leader
my %rows = map { split /\|/, $_, 2 }
  split /\n/, $c->psql( $new, q{SELECT id || '|' || coalesce(a_session->>'v', '') FROM sessions} );
my @lost = grep { ( $rows{$_} // '(missing)' ) ne $want{$_} } sort keys %want;
is( scalar @lost, 0, scalar( keys %want ) . ' acknowledged writes, all on the new leader with their last value' )
  or diag join "\n", map { "$_: want $want{$_}, got " . ( $rows{$_} // '(missing)' ) } @lost[ 0 .. ( $#lost < 9 ? $#lost : 9 ) ];

# the class methods and the purge through the new leader's bouncer
my $r = $C->searchOn( {%args}, v => 'updated-after', 'v' );
is_deeply( [ keys %$r ], [$first], 'searchOn after the switchover' );
my @d = $C->deleteIfLowerThan( {%args}, { and => { _utime => 1 } } );
is( $d[0], 1, 'deleteIfLowerThan after the switchover' );

$_->stop for values %pgb;
done_testing;
