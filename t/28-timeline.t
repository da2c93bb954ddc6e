# The timeline picture of the demo and of bench/failover.pl (t/lib/Timeline.pm):
# from a small synthetic recording, gnuplot must draw a real PNG and SVG,
# and the data files beside them must hold what was recorded.  Skipped
# without gnuplot, unless ASBP_REQUIRE_DB=1 (CI installs it with
# tools/install-deps).
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use lib 't/lib';
use Timeline;

my ( $ok, $why ) = Timeline::available();
unless ($ok) {
    plan skip_all => "no picture can be drawn here: $why" unless $ENV{ASBP_REQUIRE_DB};
    fail("gnuplot is required here (ASBP_REQUIRE_DB set): $why");
    done_testing;
    exit;
}

# SVG when this gnuplot has the terminal (Debian's has it)
my $SVG = grep { $_ eq 'svg' } Timeline::terminals();
my $T   = 1_800_000_000;
my $dir = tempdir( CLEANUP => 1 );

# Two runs of a workload: 0-10 s and 15-20 s.  A read every 0.1 s, a write
# every 0.25 s except during the 4-5 s window; three caller errors.
my ( @ops, %n );
for my $span ( [ 0, 10 ], [ 15, 20 ] ) {
    for ( my $t = $span->[0] + 0.05 ; $t < $span->[1] ; $t += 0.1 ) {
        push @ops, { t1 => $T + $t, op => 'read', ok => 1 };
        $n{read}++;
    }
    for ( my $t = $span->[0] + 0.1 ; $t < $span->[1] ; $t += 0.25 ) {
        next if $t > 4 && $t < 5;
        push @ops, { t1 => $T + $t, op => 'update', ok => 1 };
        $n{write}++;
    }
}
push @ops, map { { t1 => $T + $_, op => 'create', ok => 0 } } 6.1, 6.2, 7.3;
my @events = ( { at => $T + 3.9, name => 'switchover node1 -> node2' },
    { at => $T + 16, name => 'freeze "node2" \\ SIGSTOP' } );
my @windows = (
    { lane => 'through the module', from => $T + 3.85, to => $T + 5.1, event => 'switchover' },
    { lane => "Patroni's own (raw libpq probe)", from => $T + 3.9, to => $T + 5.0, event => 'switchover' },
    { lane => 'through the module', from => $T + 16.2, to => $T + 17.0, event => 'freeze' },
);

my $out = Timeline::draw(
    dir => "$dir/out", name => 'tl', title => 'synthetic recording', t0 => $T, ops => \@ops,
    events => \@events, windows => \@windows, spans => [ [ $T, $T + 10 ], [ $T + 15, $T + 20 ] ],
    bin => 0.5, formats => [ 'png', $SVG ? 'svg' : () ], size => [ 1000, 640 ],
);
is( $out->{error}, undef, 'gnuplot drew the pictures' ) or diag explain $out;
is( $out->{warnings}, undef, 'gnuplot said nothing (no warning about the script)' );

# ---------------------------------------------------------------- PNG
sub slurp { my ($f) = @_; open my $fh, '<:raw', $f or return ''; local $/; <$fh> }
my $png = slurp( $out->{png} // '' );
ok( length $png > 10_000, 'the PNG is not empty (' . length($png) . ' bytes)' );
is( substr( $png, 0, 8 ), "\x89PNG\r\n\x1a\n", 'it starts with the PNG signature' );
is( substr( $png, 12, 4 ), 'IHDR', 'its first chunk is IHDR' );
my ( $w, $h ) = unpack 'NN', substr( $png, 16, 8 );
is( "${w}x$h", '1000x640', 'IHDR gives the size asked for' );
is( substr( $png, -8, 4 ), 'IEND', 'it ends with the IEND chunk (complete file)' );

# ---------------------------------------------------------------- SVG
SKIP: {
    skip 'this gnuplot has no svg terminal', 13 unless $SVG;
    my $svg = slurp( $out->{svg} // '' );
    like( $svg, qr/\A<\?xml[^>]*>\s*<svg\b[^>]*\bwidth="1000"[^>]*\bheight="640"/, 'the SVG is an svg document of that size' );
    like( $svg, qr{</svg>\s*\z}, 'the SVG is complete' );
    for my $text ( 'switchover node1 -', 'freeze "node2" \\ SIGSTOP', 'through the module', "Patroni's own (raw libpq probe)",
        'reads/s', 'writes/s', 'caller errors/s', 'write-unavailable windows', '1.25 s', '1.10 s', '0.80 s' )
    {
        like( $svg, qr/\Q$text\E/, "the picture has the text '$text'" );
    }
}

# ---------------------------------------------------------------- data
sub rows {
    my ($f) = @_;
    open my $fh, '<', $f or return;
    return map { chomp; $_ eq '' ? [] : [ map { s/^"(.*)"$/$1/sr } split /\t/ ] } grep { !/^#/ } <$fh>;
}
my @rates = rows( $out->{data}{rates} );
my @breaks = grep { !@{ $rates[$_] } } 0 .. $#rates;
is_deeply( \@breaks, [20], 'rates: 20 bins of 0.5 s for the first run, a blank line, then the second run' );
is( scalar @rates, 31, 'rates: and 10 bins for the second run' );
my @bins = grep {@$_} @rates;
my %sum;
for my $b (@bins) {
    my $width = $b->[1] - $b->[0];
    $sum{read}  += $b->[2] * $width;
    $sum{write} += $b->[3] * $width;
    $sum{error} += $b->[4] * $width;
}
is( sprintf( '%.0f', $sum{read} ),  $n{read},  "rates: $n{read} reads in all" );
is( sprintf( '%.0f', $sum{write} ), $n{write}, "rates: $n{write} writes in all" );
is( sprintf( '%.0f', $sum{error} ), 3,         'rates: 3 errors in all' );
my %bin_at = map { sprintf( '%.1f', $_->[0] ) => $_ } @bins;
is( $bin_at{'6.0'}[4], '4.000', 'rates: 2 errors in the 6.0-6.5 s bin, 4/s' );
is( $bin_at{'7.0'}[4], '2.000', 'rates: 1 error in the 7.0-7.5 s bin, 2/s' );
is( $bin_at{'4.5'}[3], '0.000', 'rates: no write during the window' );
is( $bin_at{'3.0'}[2], '10.000', 'rates: 10 reads/s outside it' );
ok( !exists $bin_at{'12.0'}, 'rates: nothing between the runs' );

is_deeply( [ rows( $out->{data}{events} ) ],
    [ [ '3.900', 'switchover node1 -> node2' ], [ '16.000', 'freeze \\"node2\\" \\\\ SIGSTOP' ] ],
    'events: both, at their time since t0 (quotes escaped for gnuplot)' );
is_deeply( [ map { $_->[3] = sprintf '%.3f', $_->[3]; $_ } rows( $out->{data}{windows} ) ], [
        [ 1, '3.850',  '5.100',  '1.250', 'through the module',              'switchover' ],
        [ 2, '3.900',  '5.000',  '1.100', "Patroni's own (raw libpq probe)", 'switchover' ],
        [ 1, '16.200', '17.000', '0.800', 'through the module',              'freeze' ],
    ], 'windows: one lane per measurer, in order of appearance, with their lengths' );

# ---------------------------------------------------------------- redraw
ok( -s $out->{script}, 'the gnuplot script is kept beside the data' );
unlink $out->{png};
{
    my $pid = fork // die;
    if ( !$pid ) { chdir "$dir/out" or exit 1; open STDERR, '>', '/dev/null'; exec Timeline::gnuplot(), 'tl.gp' or exit 1 }
    waitpid $pid, 0;
}
ok( -s $out->{png}, '`cd DIR && gnuplot NAME.gp` draws the picture again' );

# ---------------------------------------------------------------- no gnuplot
{
    local $ENV{PATH} = "$dir/empty";
    local $ENV{ASBP_GNUPLOT};
    mkdir "$dir/empty";
    my $o = Timeline::draw( dir => "$dir/none", name => 'tl', t0 => $T, ops => \@ops, events => \@events,
        windows => \@windows, formats => [qw(png svg)] );
    like( $o->{error}, qr/gnuplot not found.*gnuplot-nox/, 'without gnuplot: the reason, with the package to install' );
    ok( !$o->{png} && !-e "$dir/none/tl.png", 'without gnuplot: no picture' );
    ok( -s $o->{data}{rates} && -s $o->{script}, 'without gnuplot: the data and the script are still written' );
}

# ---------------------------------------------------------------- too old
{
    my $fake = "$dir/gnuplot-4";
    open my $fh, '>', $fake or die;
    print $fh "#!/bin/sh\necho 'gnuplot 4.6 patchlevel 2'\n";
    close $fh;
    chmod 0755, $fake;
    local $ENV{ASBP_GNUPLOT} = $fake;
    my ( $ok, $why ) = Timeline::available();
    ok( !$ok, 'gnuplot 4 is not used' );
    like( $why, qr/\Q$fake\E is gnuplot 4, the timeline needs 5\.0 or later/, '... and the reason says so' );
    my $o = Timeline::draw( dir => "$dir/old", name => 'tl', t0 => $T, ops => \@ops, events => \@events );
    is( $o->{error}, $why, 'draw gives that reason instead of a picture' );
}

done_testing;
