#!/usr/bin/perl
# Before/after: runs bench/tie.pl and bench/browse.pl of two built trees
# (each tree's own script, its own blib) in alternating order, several
# rounds, on the same machine in the same run, and prints for each
# operation the median of our module's figures in each tree and their ratio.
# For a refactor that must not change speed ("within 5%").
#
#   perl bench/ab.pl --before DIR --after DIR [--rounds 3]
#        [--tie-args '--runs 1 --seconds 3 --rows 40000']
#        [--browse-args '--runs 3 --rows 20000 --calls 500'] [--no-browse]
#
# Both trees must be built (perl Makefile.PL && make).  tie.pl figures are
# ops/s (higher is better); browse.pl figures are seconds or ms p50 (lower
# is better): the ratio column is always "after is this much faster" (>1
# better, <1 worse).
use strict;
use warnings;
use Getopt::Long;

my %o = (
    rounds      => 3,
    'tie-args'    => '--runs 1 --seconds 3 --rows 40000',
    'browse-args' => '--runs 3 --rows 20000 --calls 500',
);
GetOptions( \%o, 'before=s', 'after=s', 'rounds=i', 'tie-args=s', 'browse-args=s', 'no-browse' )
  && $o{before} && $o{after}
  or die "usage: $0 --before DIR --after DIR [--rounds N] [--tie-args ..] [--browse-args ..] [--no-browse]\n";
$| = 1;

my @trees = ( before => $o{before}, after => $o{after} );
my %fig;    # {bench}{case}{tree} = [values]

sub run_bench {
    my ( $tree, $dir, $script, $args ) = @_;
    my $out = `cd '$dir' && $^X bench/$script $args 2>&1`;
    die "ab: $dir/bench/$script failed:\n$out" if $?;
    return $out;
}

sub parse_tie {
    my ($out) = @_;
    my ($last) = $out =~ /.*== median of \d+ runs[^\n]*\n(.*)/s or die "ab: no median table in tie.pl output\n";
    my %r;
    for ( split /\n/, $last ) {
        next unless /^(\w+)\s+\S+\s+([\d.]+)\s/;
        next if $1 eq 'op';
        $r{$1} = $2;
    }
    return \%r;
}

sub parse_browse {
    my ($out) = @_;
    my ($sum) = $out =~ /== summary[^\n]*\n[^\n]*\n(.*?)(?:\n\n|\n==|\z)/s or die "ab: no summary in browse.pl output\n";
    my %r;
    for ( split /\n/, $sum ) {
        # case (up to 46 chars), PgJSON, ours, ratio, ...
        next unless /^(.{46})\s+(\S+)\s+([\d.]+)\s/;
        my ( $case, $ours ) = ( $1, $3 );
        $case =~ s/\s+$//;
        $r{$case} = $ours;
    }
    return \%r;
}

for my $round ( 1 .. $o{rounds} ) {
    my @order = $round % 2 ? ( 0, 1 ) : ( 1, 0 );
    for my $i (@order) {
        my ( $name, $dir ) = @trees[ 2 * $i, 2 * $i + 1 ];
        print "round $round: $name: tie.pl ... ";
        my $t = parse_tie( run_bench( $name, $dir, 'tie.pl', $o{'tie-args'} ) );
        push @{ $fig{tie}{$_}{$name} }, $t->{$_} for keys %$t;
        unless ( $o{'no-browse'} ) {
            print "browse.pl ... ";
            my $br = parse_browse( run_bench( $name, $dir, 'browse.pl', $o{'browse-args'} ) );
            push @{ $fig{browse}{$_}{$name} }, $br->{$_} for keys %$br;
        }
        print "done\n";
    }
}

sub median { my @s = sort { $a <=> $b } @_; @s ? ( @s % 2 ? $s[$#s / 2] : ( $s[@s / 2 - 1] + $s[@s / 2] ) / 2 ) : undef }

print "\n== tie.pl: our module, ops/s, median of $o{rounds} rounds ==\n";
printf "%-10s %12s %12s %8s\n", 'op', 'before', 'after', 'ratio';
for my $op ( sort keys %{ $fig{tie} } ) {
    my ( $bv, $av ) = map { median( @{ $fig{tie}{$op}{$_} || [] } ) } qw(before after);
    printf "%-10s %12.0f %12.0f %8.3f\n", $op, $bv, $av, $av / $bv;
}
unless ( $o{'no-browse'} ) {
    print "\n== browse.pl: our module, s (ms p50 for latencies), median of $o{rounds} rounds ==\n";
    printf "%-46s %10s %10s %8s\n", 'case', 'before', 'after', 'ratio';
    for my $c ( sort keys %{ $fig{browse} } ) {
        my ( $bv, $av ) = map { median( @{ $fig{browse}{$c}{$_} || [] } ) } qw(before after);
        printf "%-46s %10.4f %10.4f %8.3f\n", $c, $bv, $av, $av > 0 ? $bv / $av : 0;
    }
}
