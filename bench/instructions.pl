#!/usr/bin/perl
# Instructions per operation (valgrind's callgrind counts instructions, not
# seconds: the figures repeat whatever else the machine is doing) for the
# module of one or more built trees, against one throwaway PostgreSQL.
# For changes that must not make the module cost more CPU per operation,
# measured on a busy machine where bench/tie.pl's timings drift.
#
#   perl bench/instructions.pl [--ops 200] TREE [TREE...]
#
# Each workload runs in a fresh perl under callgrind: setup only, then
# setup + N creates, + N reads, + N updates, + N deletes, + N searchOn
# calls; an operation's cost is the difference between two workloads
# divided by N (perl start-up and module loading cancel out).  The client
# process only: the server's work is not counted.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib";
use Getopt::Long;
use File::Temp qw(tempfile);
use PgServer;

my %o = ( ops => 200 );
GetOptions( \%o, 'ops=i' ) && @ARGV or die "usage: $0 [--ops N] TREE [TREE...]\n";
my @trees = @ARGV;
-d "$_/blib/arch" or die "$_ is not built (perl Makefile.PL && make)\n" for @trees;
system('valgrind --version >/dev/null 2>&1') == 0 or die "valgrind is needed\n";
$| = 1;

my $pg = PgServer->new( host_auth => 'trust' );
my %opt = $pg->options;

# The workload, run by a child perl: stages up to $stage, N each.
my ( $fh, $script ) = tempfile( SUFFIX => '.pl', UNLINK => 1 );
print $fh <<'CHILD';
use strict; use warnings;
use Apache::Session::Browseable::Patroni;
my ( $stage, $n, $tag, %args ) = @ARGV;
my $C = 'Apache::Session::Browseable::Patroni';
my @ids;
{ my %h; tie %h, $C, undef, \%args; $h{_utime} = time; $h{uid} = 'warm'; push @ids, $h{_session_id}; untie %h; }
my $rows = sub { [ map { my %h; tie %h, $C, undef, \%args; $h{_utime} = 1000 + $_; $h{uid} = "$tag$_";
    $h{_session_kind} = 'SSO'; $h{ipAddr} = '10.0.0.1'; my $id = $h{_session_id}; untie %h; $id } 1 .. $n ] };
my @stages = (
    sub { @ids = @{ $rows->() } },
    sub { for (@ids) { my %h; tie %h, $C, $_, \%args; my $x = $h{uid}; untie %h } },
    sub { for (@ids) { my %h; tie %h, $C, $_, \%args; $h{seen} = 1; untie %h } },
    sub { for (@ids) { my %h; tie %h, $C, $_, \%args; tied(%h)->delete; untie %h } },
    sub { $C->searchOn( \%args, 'uid', "${tag}1" ) for 1 .. $n },
);
$stages[$_]->() for 0 .. $stage - 1;
CHILD
close $fh;

my @names = ( 'setup', 'create', 'read', 'update', 'delete', 'searchOn' );
my %ins;    # {tree}{stage}
my $k = 0;
# Perl's hash order and seed fixed, so that two runs of a tree do the same work.
local $ENV{PERL_HASH_SEED} = 0;
local $ENV{PERL_PERTURB_KEYS} = 0;
for my $t (@trees) {
    for my $stage ( 0 .. $#names ) {
        my $tag = sprintf 'i%d_', ++$k;
        my $out = `valgrind --tool=callgrind --callgrind-out-file=/dev/null $^X -I$t/blib/lib -I$t/blib/arch $script $stage $o{ops} $tag @{[ map { quotemeta } %opt ]} 2>&1`;
        my ($n) = $out =~ /Collected\s*:\s*(\d+)/ or die "no count from callgrind for $t stage $names[$stage]:\n$out";
        $ins{$t}{$stage} = $n;
        printf "%-40s %-9s %14d instructions\n", $t, $names[$stage], $n;
    }
}

print "\n== instructions per operation (client process), $o{ops} each ==\n";
printf "%-10s" . ( " %14s" x @trees ) . ( @trees > 1 ? " %8s" : '' ) . "\n", 'op', @trees, ( @trees > 1 ? 'last/1st' : () );
for my $stage ( 1 .. $#names ) {
    my @per = map { ( $ins{$_}{$stage} - $ins{$_}{ $stage - 1 } ) / $o{ops} } @trees;
    printf "%-10s" . ( " %14.0f" x @per ) . ( @per > 1 ? " %8.3f" : '' ) . "\n", $names[$stage], @per,
      ( @per > 1 ? $per[-1] / $per[0] : () );
}
