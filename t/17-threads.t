# ithreads: each interpreter gets its own connections and cluster state;
# a store object cloned into a thread refuses to be used there instead of
# sharing the parent's C store.
use strict;
use warnings;
use Config;
use Test::More;
BEGIN {
    plan skip_all => 'perl built without ithreads' unless $Config{useithreads};
}
use threads;
use lib 't/lib';
use PgServer;
use File::Temp ();
use Apache::Session::Browseable::Patroni;

my $pg   = PgServer->start_or_skip;
my $args = { $pg->options };
my $C    = 'Apache::Session::Browseable::Patroni';

tie my %s, $C, undef, {%$args};
$s{who} = 'main';
my $id = $s{_session_id};
untie %s;

my @t = map {
    my $n = $_;
    threads->create( sub {
        my @ids;
        for my $i ( 1 .. 20 ) {
            tie my %h, $C, undef, {%$args};
            $h{who} = "thread$n-$i";
            push @ids, $h{_session_id};
            untie %h;
        }
        my $ok = 0;
        for my $i ( 1 .. 20 ) {
            tie my %h, $C, $ids[ $i - 1 ], {%$args};
            $ok++ if $h{who} eq "thread$n-$i";
            untie %h;
        }
        return $ok;
    } );
} 1 .. 3;
is( $_->join, 20, 'a thread wrote and read back its 20 sessions' ) for @t;

tie %s, $C, $id, {%$args};
is( $s{who}, 'main', 'the main thread still works' );
untie %s;

# A tied session's store cloned into a thread is not usable there.
tie %s, $C, $id, {%$args};
my $store = tied(%s)->{object_store};
# STDERR goes to a file for the thread's life (a File::Temp object would be
# cloned into the thread, and its copy would remove the file there).
my ( undef, $errfile ) = File::Temp::tempfile( UNLINK => 0 );
open my $saved, '>&', \*STDERR or die "dup STDERR: $!";
open STDERR, '>', $errfile or die "$errfile: $!";
my $r = threads->create( sub {
    my $sess = { args => {%$args}, data => { _session_id => $id } };
    eval { $store->materialize($sess) };
    return $@;
} )->join;
open STDERR, '>&', $saved or die "restore STDERR: $!";
my $stderr = do { local ( @ARGV, $/ ) = ($errfile); <> };
unlink $errfile;
like( $r, qr/belongs to another thread/, 'a store cloned into a thread refuses to work there' );
is( $stderr, '', '... and goes away silently when the thread ends' );
untie %s;
is( $pg->psql('SELECT count(*) FROM sessions'), 61, 'every session stored' );

done_testing;
