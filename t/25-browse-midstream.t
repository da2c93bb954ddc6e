# A stream that fails in the middle (its server process is terminated while
# rows are being read): the forms that build a whole result start again
# from the first row, discarding what they had (at most 3 times); the code
# reference form reports the error, since rows already passed to the code
# cannot be taken back; a cursor reports it.  The table is large enough
# (about 50 MB of JSON) that the server is still sending when it is killed.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use PgServer;
use BrowseData qw();
use Apache::Session::Browseable::Patroni;
use JSON::XS ();

# Every pass of a restarted scan starts at the first row (the decoder below
# recognises a new pass by its first row).
my $pg   = PgServer->start_or_skip( settings => { synchronize_seqscans => 'off' } );
my $args = { $pg->options };
my $C    = 'Apache::Session::Browseable::Patroni';
my $N    = 20000;
my $pad  = 'x' x 2000;
BrowseData::load( $pg, [ 0 .. $N - 1 ], make => sub { my $s = BrowseData::session( $_[0] ); $s->{pad} = $pad; $s } );

# Terminates the server process streaming "SELECT id, a_session FROM ...".
sub kill_stream {
    my $n = $pg->psql_super(q{SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
        WHERE query LIKE 'SELECT id, a_session FROM%' AND pid <> pg_backend_pid()});
    diag("no stream to terminate: " . $pg->psql_super(q{SELECT pid, state, left(query, 60) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname IS NOT NULL})) unless $n;
    return $n;
}

# A JSON decoder (what unserialize uses) that terminates the stream when
# it has decoded the kill_at-th row of a pass (a pass starts with the
# first row of the table), at most kills times in all.
package KillingDecoder {
    sub new { my ( $c, %o ) = @_; bless { json => JSON::XS->new->allow_nonref, n => 0, %o }, $c }
    sub decode {
        my ( $self, $text ) = @_;
        $self->{first} //= $text;
        $self->{n} = 0 if $text eq $self->{first};
        if ( ++$self->{n} == $self->{kill_at} and $self->{kills} > 0 ) {
            $self->{kills}--;
            $self->{killed} += main::kill_stream();
        }
        return $self->{json}->decode($text);
    }
}

{
    my $dec = KillingDecoder->new( kill_at => 10, kills => 1 );
    my ( $err, $got ) = BrowseData::capture_stderr(
        sub { Apache::Session::Browseable::Patroni::_browse_collect( $args, 'all', undef, undef, undef, $dec ) } );
    is( $dec->{killed}, 1, 'the stream was terminated once, after 10 rows' );
    is( scalar keys %$got, $N, 'whole-session form: complete result after the restart' );
    is_deeply( $got->{ BrowseData::id(4321) }, { %{ BrowseData::session(4321) }, pad => $pad }, '... and correct' );
    like( $err, qr/info: .*restarting a read of table sessions from its first row \(restart 1 of at most 3\)/,
        'the restart is logged' );
}

{
    my $dec = KillingDecoder->new( kill_at => 10, kills => 10 );
    my $e;
    my ( $err, $got ) = BrowseData::capture_stderr(
        sub { eval { Apache::Session::Browseable::Patroni::_browse_collect( $args, 'all', undef, undef, undef, $dec ) }; $e = $@ } );
    is( $dec->{killed}, 4, 'killed at every pass: three restarts, then ...' );
    like( $e, qr/reading the rows of table sessions stopped after \d+ rows/, '... the error is raised' );
    # (the restart lines differ from the one of the block above, printed
    # less than 10 s ago, only by their numbers: the module's repeat
    # suppression holds them back)
    unlike( $err, qr/restarting a read/, 'the restart lines, repeats of one printed just before, are held back' );
}

{
    my ( $calls, $killed ) = ( 0, 0 );
    eval {
        $C->get_key_from_all_sessions( $args, sub { $killed += kill_stream() if ++$calls == 10; undef } );
    };
    my $e = $@;
    is( $killed, 1, 'code reference form: stream terminated after 10 sessions' );
    like( $e, qr/get_key_from_all_sessions: \d+ sessions had already been passed to the code reference, so the read was not restarted/,
        '... the error is raised, not hidden by a restart' );
    ok( $calls < $N, "... after $calls of $N sessions" );
}

{
    my $it = Apache::Session::Browseable::Patroni::_browse_open( $args, 'all', undef, undef, undef );
    my $n = 0;
    my $ok = eval {
        while ( $it->next ) { kill_stream() if ++$n == 10 }
        1;
    };
    ok( !$ok, 'cursor: next() dies when the stream is cut' );
    like( $@, qr/terminating connection|server closed the connection|connection/i, '... with the server\'s reason' );
}

# everything works again afterwards (new connections)
is( scalar keys %{ $C->searchOn( $args, '_whatToTrace', 'user7', 'id' ) }, 3, 'queries work afterwards' );
is( scalar keys %{ $C->get_key_from_all_sessions( $args, ['_utime'] ) }, $N, 'a full read works afterwards' );

done_testing;
