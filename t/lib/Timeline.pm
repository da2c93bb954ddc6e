package Timeline;

# Draws what a failover run measured, with gnuplot: operations per second
# (acknowledged reads and writes), the errors callers saw, each event
# (switchover, crash, ...) as a dashed vertical line, and under them one
# lane per measurer of the write-unavailable window (through the module,
# Patroni's own from the raw libpq probe, ...), each window a bar with its
# length written beside it.  Used by tools/demo.pl and bench/failover.pl.
#
#   my $out = Timeline::draw(
#       dir     => $dir,           # created if needed; files go there
#       name    => 'timeline',     # prefix of every file
#       title   => 'text',
#       t0      => $epoch,         # 0 of the x axis (default: first op)
#       xlabel  => 'seconds since the demo started',
#       ops     => $r->{ops},      # Workload ops: { t1, op, ok }
#       events  => [ { at => $epoch, name => 'switchover' }, ... ],
#       windows => [ { lane => "Patroni's own", from => $e, to => $e }, ... ],
#       spans   => [ [ $from, $to ], ... ],  # when the workload ran
#       bin     => 0.5,            # seconds per rate sample
#       formats => [qw(png svg)],
#       size    => [ 1200, 760 ],  # pixels (the SVG's too)
#   );
#   # $out: { script, log, data => { rates, events, windows },
#   #         png, svg (paths of the pictures drawn), error (undef or why
#   #         no picture), warnings (what gnuplot said, if anything) }
#
# The data files and the script stay beside the pictures: `cd DIR && gnuplot
# NAME.gp` draws them again.  Without gnuplot the data files and the script
# are still written and {error} says why there is no picture.
#
#   NAME-rates.dat    from  to  reads/s  writes/s  errors/s   (a blank
#                     line where the workload was not running: the lines
#                     break there)
#   NAME-events.dat   t  "name"
#   NAME-windows.dat  lane  from  to  seconds  "lane name"  "event"
#
# Times in the data files are seconds since t0.

use strict;
use warnings;
use File::Path qw(make_path);
use File::Spec;
use POSIX ();

our $VERSION = '0.01';

my @SIZE = ( 1200, 760 );

# The lanes' colours, in order of first appearance.
my @LANE_COLOUR = ( '#1f6fb4', '#e07b00', '#7a7a7a', '#2a9d3a' );

# gnuplot's path (ASBP_GNUPLOT, else PATH), or undef.
sub gnuplot {
    return $ENV{ASBP_GNUPLOT} if $ENV{ASBP_GNUPLOT} && -x $ENV{ASBP_GNUPLOT};
    for my $d ( File::Spec->path ) {
        my $p = File::Spec->catfile( $d, 'gnuplot' );
        return $p if -f $p && -x _;
    }
    return;
}

# (1) or (0, why): whether pictures can be drawn here.
sub available {
    my $g = gnuplot() or return ( 0, 'gnuplot not found in PATH (Debian: apt-get install gnuplot-nox;'
          . ' sh tools/install-deps installs it)' );
    my $v = _capture( [ $g, '--version' ] ) // '';
    my ($major) = $v =~ /^gnuplot (\d+)\./ or return ( 0, "$g --version answered no version" );
    return ( 0, "$g is gnuplot $major, the timeline needs 5.0 or later" ) if $major < 5;
    my %t = map { $_ => 1 } terminals($g);
    return ( 0, "$g has neither the pngcairo nor the png terminal" ) unless $t{pngcairo} || $t{png};
    return (1);
}

# The terminals this gnuplot was built with.
sub terminals {
    my ($g) = @_;
    $g //= gnuplot() or return;
    my $out = _capture( [ $g, '-e', q{set print '-'; print GPVAL_TERMINALS} ] );
    return split ' ', $out // '';
}

sub draw {
    my (%o) = @_;
    my $dir  = $o{dir} or die "Timeline::draw: dir is required\n";
    my $name = $o{name} // 'timeline';
    my $bin  = $o{bin} || 0.5;
    my @ops  = @{ $o{ops} || [] };
    my @ev   = sort { $a->{at} <=> $b->{at} } @{ $o{events} || [] };
    my @win  = @{ $o{windows} || [] };
    my $t0   = $o{t0} // ( @ops ? _min( map { $_->{t1} } @ops ) : time );
    my @spans = @{ $o{spans} || [] };
    @spans = ( [ _min( map { $_->{t1} } @ops ), _max( map { $_->{t1} } @ops ) ] ) if !@spans && @ops;
    make_path($dir);

    my %out = ( data => {} );
    my $rates = _bin_rates( \@ops, \@spans, $t0, $bin );
    $out{data}{rates}   = _write( $dir, "$name-rates.dat",   _rates_text($rates) );
    $out{data}{events}  = _write( $dir, "$name-events.dat",  _events_text( \@ev, $t0 ) );
    my ( $lanes, $wtext ) = _windows_text( \@win, $t0 );
    $out{data}{windows} = _write( $dir, "$name-windows.dat", $wtext );

    my @all_t = ( map( { @$_ } @spans ), map( { $_->{at} } @ev ), map( { ( $_->{from}, $_->{to} ) } @win ) );
    my ( $xmin, $xmax ) = @all_t ? ( _min(@all_t) - $t0, _max(@all_t) - $t0 ) : ( 0, 1 );
    my $pad = ( $xmax - $xmin ) * 0.02 || 1;    # and 4 times that on the right, for the windows' lengths
    my %s = (
        name  => $name, title => $o{title} // 'failover timeline', bin => $bin,
        xlabel => $o{xlabel} // 'seconds', size => $o{size} || \@SIZE,
        xmin  => $xmin - $pad, xmax => $xmax + 4 * $pad,
        ymax  => _nice( _max( 1, map { ( $_->[2], $_->[3] ) } grep {$_} @$rates ) * 1.25 ),
        y2max => _nice( _max( 1, map { $_->[4] } grep {$_} @$rates ) * 2 ),
        lanes => $lanes, events => [ map { [ $_->{at} - $t0, $_->{name} ] } @ev ],
        windows => [ map { [ $_->{from} - $t0, $_->{to} - $t0 ] } @win ],
    );

    my ( $usable, $why ) = available();
    my $g = $usable ? gnuplot() : undef;
    my %term = map { $_ => 1 } ( $g ? terminals($g) : () );
    my @formats = @{ $o{formats} || ['png'] };
    my @plots;
    for my $f (@formats) {
        my $t = $f eq 'svg' ? ( $term{svg} ? 'svg' : undef ) : $term{pngcairo} ? 'pngcairo' : $term{png} ? 'png' : undef;
        push @plots, [ $f, $t, "$name.$f" ] if $t || !$g;
    }
    my $script = join '', map { _script( %s, format => $_->[0], terminal => $_->[1] // 'pngcairo',
            output => $_->[2] ) } @plots;
    $out{script} = _write( $dir, "$name.gp", $script );
    unless ($g) {
        $out{error} = $why;
        return \%out;
    }
    unless (@plots) {
        $out{error} = "$g can draw none of: @formats";
        return \%out;
    }
    unlink map { File::Spec->catfile( $dir, $_->[2] ) } @plots;
    $out{log} = File::Spec->catfile( $dir, "$name-gnuplot.log" );
    my $rc = _run( $dir, $out{log}, $g, "$name.gp" );
    my $said = do { local ( @ARGV, $/ ) = $out{log}; <> } // '';
    $out{warnings} = $said if $said =~ /\S/;
    for (@plots) {
        my $p = File::Spec->catfile( $dir, $_->[2] );
        $out{ $_->[0] } = $p if -s $p;
    }
    if ( $rc != 0 || grep { !$out{ $_->[0] } } @plots ) {
        ( my $first = $said ) =~ s/\s+/ /g;
        $out{error} = sprintf 'gnuplot %s (%s): %s', $rc ? "exited $rc" : 'drew nothing', $out{log},
          substr( $first, 0, 300 ) || 'no message';
    }
    return \%out;
}

# One row per bin: [ from, to, reads/s, writes/s, errors/s ], times since
# t0.  Each span is cut into equal bins close to $bin seconds, so that every
# bin is fully inside a span; undef between spans (the lines break there).
# Operations outside every span are not counted.
sub _bin_rates {
    my ( $ops, $spans, $t0, $bin ) = @_;
    my @rows;
    for my $s ( sort { $a->[0] <=> $b->[0] } @$spans ) {
        my ( $from, $to ) = @$s;
        next unless $to > $from;
        my $n = POSIX::floor( ( $to - $from ) / $bin + 0.5 ) || 1;
        my $w = ( $to - $from ) / $n;
        my @c = map { [ 0, 0, 0 ] } 1 .. $n;
        for my $op (@$ops) {
            next if $op->{t1} < $from || $op->{t1} > $to;
            my $i = POSIX::floor( ( $op->{t1} - $from ) / $w );
            $i = $n - 1 if $i >= $n;
            $c[$i][ !$op->{ok} ? 2 : $op->{op} eq 'read' ? 0 : 1 ]++;
        }
        push @rows, undef if @rows;
        push @rows, map { [ $from + $_ * $w - $t0, $from + ( $_ + 1 ) * $w - $t0, map { $_ / $w } @{ $c[$_] } ] }
          0 .. $n - 1;
    }
    return \@rows;
}

sub _rates_text {
    my ($rows) = @_;
    my $t = "# from(s)\tto(s)\treads/s\twrites/s\terrors/s"
      . "  (acknowledged reads, acknowledged writes, caller errors, per second)\n";
    $t .= $_ ? sprintf( "%.4f\t%.4f\t%.3f\t%.3f\t%.3f\n", @$_ ) : "\n" for @$rows;
    return $t;
}

sub _events_text {
    my ( $ev, $t0 ) = @_;
    return "# t(s)\tevent\n" . join '', map { sprintf "%.3f\t%s\n", $_->{at} - $t0, _q( $_->{name} ) } @$ev;
}

# Lanes numbered from the top in order of first appearance.
sub _windows_text {
    my ( $win, $t0 ) = @_;
    my ( @lanes, %lane );
    my $t = "# lane\tfrom(s)\tto(s)\tseconds\tlane name\tevent\n";
    for my $w (@$win) {
        $lane{ $w->{lane} } //= do { push @lanes, $w->{lane}; scalar @lanes };
        $t .= sprintf "%d\t%.3f\t%.3f\t%.6f\t%s\t%s\n", $lane{ $w->{lane} }, $w->{from} - $t0, $w->{to} - $t0,
          $w->{to} - $w->{from}, _q( $w->{lane} ), _q( $w->{event} // '' );
    }
    return ( \@lanes, $t );
}

# The gnuplot commands drawing one picture: rates and errors on top, the
# window lanes below, the events across both.
sub _script {
    my (%s) = @_;
    my ( $w, $h ) = @{ $s{size} };
    my $n      = @{ $s{lanes} } || 1;
    my $font   = $s{terminal} eq 'svg' ? "font 'Sans,12'" : "font 'Sans,11'";
    my $lower  = 0.13 + 0.06 * $n;
    my $q      = sub { _q( $_[0] ) };
    my $g = <<"EOT";
# drawn by t/lib/Timeline.pm: cd to this directory and run gnuplot $s{name}.gp
reset
set terminal $s{terminal} size $w,$h $font noenhanced background rgb 'white'
set output @{[ $q->($s{output}) ]}
set datafile separator tab
set multiplot title @{[ $q->($s{title}) ]}
set lmargin at screen 0.23
set rmargin at screen 0.91
set xrange [$s{xmin}:$s{xmax}]
set grid xtics ytics lc rgb '#dddddd'
EOT
    for my $e ( @{ $s{events} } ) {
        $g .= sprintf "set arrow from %.3f, graph 0 to %.3f, graph 1 nohead lw 1.5 dt 2 lc rgb '#b00000' front\n",
          $e->[0], $e->[0];
    }
    # top: operations per second and caller errors
    $g .= "set tmargin at screen 0.90\nset bmargin at screen " . ( $lower + 0.05 ) . "\n";
    $g .= <<"EOT";
set format x ''
set ylabel 'acknowledged operations / s'
set yrange [0:$s{ymax}]
set y2label 'caller errors / s' textcolor rgb '#c00000'
set y2range [0:$s{y2max}]
set y2tics textcolor rgb '#c00000'
set ytics nomirror
set key at screen 0.57, screen 0.935 center center horizontal maxcols 3 maxrows 1 samplen 2 width -3 noopaque nobox
set style fill solid 0.6 noborder
EOT
    my $i = 0;
    for my $e ( @{ $s{events} } ) {
        # alternate the heights of the labels so that close events stay
        # readable; in the last quarter, the labels go left of their line
        my $right = $e->[0] > $s{xmin} + 0.75 * ( $s{xmax} - $s{xmin} );
        $g .= sprintf "set label %s at %.3f, graph %.2f %s textcolor rgb '#b00000' front\n", $q->( $e->[1] ),
          $e->[0], ( $i++ % 2 ? 0.84 : 0.93 ), $right ? 'right offset -0.4,0' : 'left offset 0.4,0';
    }
    my $rates = $q->("$s{name}-rates.dat");
    $g .= "plot $rates using ((\$1+\$2)/2):3 with lines lw 2 lc rgb '#1f6fb4' title 'reads/s', \\\n"
      . "     $rates using ((\$1+\$2)/2):4 with lines lw 2 lc rgb '#2a9d3a' title 'writes/s', \\\n"
      . "     $rates using ((\$1+\$2)/2):5:(\$2-\$1) axes x1y2 with boxes lc rgb '#d00000'"
      . " title 'caller errors/s (right)'\n";

    # below: one lane per window measurer
    $g .= "unset label\nunset y2tics\nunset y2label\nset ytics mirror\nset key off\n";
    $g .= "set tmargin at screen $lower\nset bmargin at screen 0.08\n";
    $g .= "set format x '%g'\nset xlabel " . $q->( $s{xlabel} ) . "\n";
    $g .= "unset ylabel\nset title 'write-unavailable windows (the longest time without an acknowledged write)'"
      . " offset 0,-0.6\n";
    $g .= sprintf "set yrange [%.1f:0.4] reverse\n", $n + 0.6;
    $g .= "set ytics (" . join( ', ', map { sprintf '%s %d', $q->( $s{lanes}[$_] ), $_ + 1 } 0 .. $#{ $s{lanes} } ) . ")\n"
      if @{ $s{lanes} };
    $g .= "unset ytics\n" unless @{ $s{lanes} };
    $g .= "set grid noytics\n";
    my $win = $q->("$s{name}-windows.dat");
    my @p;
    for my $l ( 1 .. @{ $s{lanes} } ) {
        my $c = $LANE_COLOUR[ ( $l - 1 ) % @LANE_COLOUR ];
        push @p, "$win using ((\$2+\$3)/2):(\$1==$l ? \$1 : NaN):2:3:(\$1-0.3):(\$1+0.3) with boxxyerror fs solid 0.8 noborder lc rgb '$c'",
          "$win using 3:(\$1==$l ? \$1 : NaN):(sprintf(' %.2f s', \$4)) with labels left textcolor rgb '$c'";
    }
    # an empty plot still draws the axes and the event lines
    push @p, 'NaN notitle' unless @p;
    $g .= "plot " . join( ", \\\n     ", @p ) . "\n";
    $g .= "unset multiplot\nunset output\n";
    return $g;
}

sub _q {
    my ($s) = @_;
    $s =~ s/(["\\])/\\$1/g;
    $s =~ s/[\t\n]/ /g;
    return qq{"$s"};
}

# A round axis top, at least $v and less than 1.25 times it.
sub _nice {
    my ($v) = @_;
    return 1 if $v <= 1;
    my $p = 10**POSIX::floor( log($v) / log(10) );
    for my $m ( 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10 ) { return $m * $p if $m * $p >= $v }
}

sub _min { my $m = shift; $_ < $m and $m = $_ for @_; $m }
sub _max { my $m = shift; $_ > $m and $m = $_ for @_; $m }

sub _write {
    my ( $dir, $file, $text ) = @_;
    my $p = File::Spec->catfile( $dir, $file );
    open my $fh, '>', $p or die "Timeline: cannot write $p: $!\n";
    print $fh $text;
    close $fh or die "Timeline: cannot write $p: $!\n";
    return $p;
}

# Runs gnuplot in $dir with its output in $log; its exit status.
sub _run {
    my ( $dir, $log, @cmd ) = @_;
    my $pid = fork // die "Timeline: fork: $!\n";
    if ( !$pid ) {
        open STDIN,  '<', File::Spec->devnull;
        open STDOUT, '>', $log;
        open STDERR, '>&', \*STDOUT;
        chdir $dir or POSIX::_exit(126);
        exec @cmd or POSIX::_exit(127);
    }
    waitpid $pid, 0;
    return $? >> 8 || ( $? & 127 ? 128 + ( $? & 127 ) : 0 );
}

# The standard output of a command (its standard error discarded).
sub _capture {
    my ($cmd) = @_;
    my $pid = open( my $fh, '-|' ) // return;
    if ( !$pid ) {
        open STDERR, '>', File::Spec->devnull;
        exec @$cmd or POSIX::_exit(127);
    }
    local $/;
    my $out = <$fh>;
    close $fh;
    return $out;
}

1;
