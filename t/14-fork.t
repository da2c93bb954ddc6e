# Fork safety: the parent holds a pooled connection; 4 children create and
# read sessions; the parent keeps working; nobody sees another's results.
use strict;
use File::Temp ();
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

# Any warning (a failed save at untie is only an "(in cleanup)" warning) is
# a failure, in the parent and in the children (they report theirs).
my @warnings;
$SIG{__WARN__} = sub { push @warnings, $_[0] };


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
        push @res, map { "bad: warning: $_" } @warnings;
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
is_deeply( [ grep { $_ ne 'ok' } @lines ], [], 'no child reported a problem (a wrong read, an inherited connection, a warning)' );

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

# A child that forks while a session is tied does not touch the parent's
# transaction.  The parent has inserted a new session (uncommitted: the
# insert runs at tie time, the COMMIT at untie) and set v; the child sets
# v to another value and unties its copy.  A careless child would send
# UPDATE + COMMIT on the parent's socket, committing the parent's open
# transaction with the child's value.  What is checked, in this order:
# - after the child has exited, the row is still invisible to another
#   connection: the child committed nothing of the parent's transaction
#   (and, the row being uncommitted, its own write found nothing to change);
# - the parent's untie then commits the parent's value, which is what any
#   later reader sees;
# - the parent's untie gave no warning and the module wrote nothing on its
#   STDERR (e.g. "there is no transaction in progress" or a failed save).
{
    my @warn;
    local $SIG{__WARN__} = sub { push @warn, $_[0] };
    open my $save_err, '>&', \*STDERR or die "dup STDERR: $!";
    my $errlog_tmp = File::Temp->new( TEMPLATE => 'asbp-fork-XXXXXXXX', TMPDIR => 1 );   # exclusive, unpredictable
    my $errlog = $errlog_tmp->filename;
    open STDERR, '>', $errlog or die "$errlog: $!";
    STDERR->autoflush(1);

    tie my %s, $C, undef, $args;
    $s{v} = 'parent-wrote';
    my $id  = $s{_session_id};
    pipe my $r, my $w or die;
    my $pid = fork // die;
    if ( !$pid ) {
        close $r;
        $s{v} = 'child-wrote';
        my $ok = eval { untie %s; 1 };
        print $w $ok ? "untie ok\n" : "untie died: $@";
        close $w;
        POSIX::_exit(0);
    }
    close $w;
    my $child_said = do { local $/; <$r> };
    waitpid $pid, 0;
    my $child_status = $?;
    my $seen_during = $pg->psql("SELECT count(*) FROM sessions WHERE id = '$id'");
    untie %s;
    open STDERR, '>&', $save_err or die "restore STDERR: $!";
    my $stderr = do { open my $fh, '<', $errlog or die; local $/; <$fh> } // '';
    unlink $errlog;

    is( $child_status, 0, 'the child that untied a copy exited cleanly' );
    note("child: $child_said");
    is( $seen_during, 0, 'after the child untied its copy, the parent\'s insert is still uncommitted' );
    is( $pg->psql("SELECT a_session->>'v' FROM sessions WHERE id = '$id'"), 'parent-wrote',
        'the parent\'s untie committed the parent\'s value' );
    is( read1($id), 'parent-wrote', '... and a new tie reads it' );
    is_deeply( \@warn, [], 'the parent got no warning' );
    is( $stderr, '', 'the module logged nothing in the parent' );
}

is_deeply( \@warnings, [], 'no warning in the parent' );
done_testing;
