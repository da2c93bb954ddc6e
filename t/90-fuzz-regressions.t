# Replays every fuzzing seed (fuzz/corpus/<target>/) and every input that
# once crashed a fuzz target (fuzz/regressions/<target>/) through the same
# target code, built without libFuzzer by `make` (t/c/fuzz_replay_probe,
# which includes fuzz/fuzz_*.c).  A crash, a sanitizer abort or a broken
# property (the targets check more than memory safety: e.g. that a
# DataSource's display never shows its password) fails the file's test.
use strict;
use warnings;
use Test::More;
use POSIX ();

my $probe = 't/c/bin/fuzz_replay_probe';
-x $probe or do { print "1..1\nnot ok 1 - $probe not built (run make)\n"; exit 1 };

my %files;
for my $t (qw(patroni dsn)) {
    $files{$t} = [ sort grep { -f } glob("fuzz/corpus/$t/* fuzz/regressions/$t/*") ];
}
cmp_ok( scalar @{ $files{patroni} }, '>=', 3, 'Patroni answers to replay' );
cmp_ok( scalar @{ $files{dsn} },     '>=', 3, 'DataSources to replay' );

# One process for all the files of a target (starting the probe costs more
# than running it); after a crash, the file that crashed is the one after
# the last "ok" line, and the replay goes on from the next one.
for my $t ( sort keys %files ) {
    my @todo = @{ $files{$t} };
    while (@todo) {
        my $out = run( $probe, $t, @todo );
        my $st  = $?;
        my %done = map { $_ => 1 } $out =~ /^ok (.*)$/mg;
        while ( @todo and $done{ $todo[0] } ) {
            pass("$t: $todo[0]");
            shift @todo;
        }
        last if $st == 0 and !@todo;
        my $how = $st == -1 ? "cannot run: $!"
          : $st & 127 ? 'killed by signal ' . ( $st & 127 )
          : 'exit ' . ( $st >> 8 );
        if ( !@todo ) {
            fail("$t: replay ended badly after the last file ($how)");
            diag($out);
            last;
        }
        my $bad = shift @todo;
        fail("$t: $bad ($how)");
        diag( join "\n", grep { !/^ok / } split /\n/, $out );
    }
}

# Output (stdout and stderr) of a command run without a shell.
sub run {
    my @cmd = @_;
    my $pid = open( my $fh, '-|' ) // die "fork: $!";
    if ( !$pid ) {
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return $out;
}

done_testing;
