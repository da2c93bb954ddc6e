# PostgreSQL restarted under a running process: the next tie succeeds on a
# fresh connection; while it is down, a tie fails within FailoverTimeout
# with a clear message.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use PgServer;
use Apache::Session::Browseable::Patroni;
use Time::HiRes qw(time);

my $pg   = PgServer->start_or_skip;
my $args = { $pg->options, FailoverTimeout => 1.5 };
my $C    = 'Apache::Session::Browseable::Patroni';

sub create { my ($v) = @_; tie my %s, $C, undef, $args; $s{v} = $v; my $id = $s{_session_id}; untie %s; $id }
sub read1  { my ($id) = @_; tie( my %s, $C, $id, $args ); my $v = $s{v}; untie %s; $v }

my $id = create('before');
is( read1($id), 'before', 'works before the restart' );
my ($c) = Apache::Session::Browseable::Patroni::_pool_conns();
ok( $c, 'a pooled connection exists' );

$pg->restart;
is( read1($id), 'before', 'first tie after a restart succeeds (stale pooled connection replaced)' );
my $id2 = create('after');
is( read1($id2), 'after', 'writes work after the restart' );

# restart while a session is tied: the transaction is redone on a new connection
{
    tie my %s, $C, undef, $args;
    my $id3 = $s{_session_id};
    $s{v} = 'across-restart';
    $pg->restart;
    untie %s;
    is( read1($id3), 'across-restart', 'a session created across a restart is committed' );
}

# The server goes away between tie and untie: the failed save is reported.
# (Apache::Session saves from DESTROY, where Perl turns an error into an
# "(in cleanup)" warning only if the 'misc' warnings are on where it was
# raised -- they are not, in Apache/Session.pm: the module prints it.)
{
    my @w;
    local $SIG{__WARN__} = sub { push @w, @_ };
    tie( my %s, $C, undef, { %$args, FailoverTimeout => 0.3 } );
    my $lost = $s{_session_id};
    $s{v} = 'never saved';
    $pg->stop('immediate');
    untie %s;
    like( join( '', @w ), qr/\(in cleanup\) Apache::Session::Browseable::Patroni: no writable leader/,
        'a save that failed at untie is reported as a warning' );
    is( scalar @w, 1, 'exactly once' );
    $pg->start;
    tie( %s, $C, $id, $args );
    $s{v} = 'before';
    @w = ();
    $pg->stop('immediate');
    eval { untie %s };
    like( join( '', @w ), qr/in cleanup/, 'also for an update' );
    $pg->start;
    eval { read1($lost) };
    like( $@, qr/Object does not exist/, 'the unsaved session is indeed absent' );
}

# server down: clear error, bounded time, no password in the message
$pg->stop;
my $t0 = time;
eval { read1($id) };
my $err = $@;
my $dt  = time - $t0;
like( $err, qr/cannot connect to DataSource dbi:Pg:dbname=sessions;host=127\.0\.0\.1;port=\d+/,
    'error names the DataSource' );
like( $err, qr/FailoverTimeout/, 'error says the failover budget was spent' );
unlike( $err, qr/\Q$args->{Password}\E/, 'no password in the message' );
cmp_ok( $dt, '<', 1.5 + 1.0, "gave up within the budget (${\ sprintf '%.2f', $dt} s)" );
$pg->start;
is( read1($id), 'before', 'works again once the server is back' );

done_testing;
