# Fork safety: the parent holds a pooled connection; 4 children create and
# read sessions; the parent keeps working; nobody sees another's results.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use PgServer;
use Apache::Session::Browseable::Patroni;
use POSIX ();

my $pg   = PgServer->start_or_skip;
my $args = { $pg->options };
my $C    = 'Apache::Session::Browseable::Patroni';

sub create { my ($v) = @_; tie my %s, $C, undef, $args; $s{v} = $v; my $id = $s{_session_id}; untie %s; $id }
sub read1  { my ($id) = @_; tie( my %s, $C, $id, $args ); my $v = $s{v}; untie %s; $v }


my $pid0 = create("parent-0");
is( read1($pid0), 'parent-0', 'parent works before forking' );
my @conns = Apache::Session::Browseable::Patroni::_pool_conns();
is( scalar @conns, 1, 'parent has one pooled connection' );
is( $conns[0][1], $$, '... opened by the parent' );

my @kids;
for my $k ( 1 .. 4 ) {
    pipe my $r, my $w or die;
    my $pid = fork // die "fork: $!";
    if ( !$pid ) {
        close $r;
        my @res;
        my $ok = eval {
            for my $i ( 1 .. 25 ) {
                my $v  = "child-$k-$i";
                my $id = create($v);
                my $got = read1($id);
                push @res, $got eq $v ? "ok" : "bad: $got ne $v";
            }
            my @c = Apache::Session::Browseable::Patroni::_pool_conns();
            push @res, ( grep { $_->[1] != $$ } @c ) ? "bad: inherited connection in pool" : "ok";
            1;
        };
        push @res, "died: $@" unless $ok;
        print $w join( "\n", @res ), "\n";
        close $w;
        POSIX::_exit(0);    # no END blocks, no DESTROY: like a crashing worker
    }
    close $w;
    push @kids, [ $pid, $r ];
    # the parent keeps working while the children run
    is( read1($pid0), 'parent-0', "parent reads while child $k runs" );
}
my @lines;
for (@kids) {
    my ( $pid, $r ) = @$_;
    local $/;
    push @lines, split /\n/, <$r>;
    waitpid $pid, 0;
    is( $?, 0, "child $pid exited cleanly" );
}
is( scalar( grep { $_ eq 'ok' } @lines ), 4 * 26, 'every child read back exactly what it wrote' )
  or diag join "\n", grep { $_ ne 'ok' } @lines;

# the parent's pooled connection survived the children (none of them sent
# anything on it, none closed it)
@conns = Apache::Session::Browseable::Patroni::_pool_conns();
is( scalar @conns, 1, 'parent still has its pooled connection' );
my $id2 = create('parent-1');
is( read1($id2), 'parent-1', 'parent works after the children' );
@conns = Apache::Session::Browseable::Patroni::_pool_conns();
is( scalar @conns, 1, 'and it reused the same pooled connection' );
is( $pg->psql("SELECT count(*) FROM sessions WHERE a_session->>'v' LIKE 'child-%'"), 100,
    'all 100 child sessions stored' );

# a child that forks while a session is tied does not touch the parent's
# transaction: its copy is abandoned, the parent commits normally
{
    tie my %s, $C, undef, $args;
    $s{v} = 'tied-across-fork';
    my $id  = $s{_session_id};
    my $pid = fork // die;
    if ( !$pid ) {
        untie %s;    # would COMMIT on the parent's socket if we were careless
        POSIX::_exit(0);
    }
    waitpid $pid, 0;
    untie %s;
    is( read1($id), 'tied-across-fork', 'parent transaction unaffected by the child' );
}

done_testing;
