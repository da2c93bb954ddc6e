package WriteProbe;

# Test helper: a forked DBD::Pg loop that tries, every `interval` seconds,
# INSERT INTO asbp_probe(k, node) on every node of a cluster and logs each
# outcome; stopping it tells how long no write was acknowledged.
#
#   my $p = WriteProbe->start(dsn => { 1 => $dsn1, ... }, user => U,
#                             password => P, dir => D, interval => 0.02);
#   my $r = $p->stop;   # { tag, ok, local, errors, acked => [keys], by_node,
#                       #   max_gap, gap_from, gap_to, first_ok, last_ok }
#
# Log lines (D/TAG.log): time, node, ok|local|err|noconn, key or error.
# "local": committed but not acknowledged by the synchronous standby.

use strict;
use warnings;

use Carp qw(croak);
use POSIX ();
use ProcSpawn ();
use ProcTree ();
use Time::HiRes qw(time sleep);

our $VERSION = '0.01';

my $SEQ = 0;

sub start {
    my ($class, %o) = @_;
    eval { require DBI; require DBD::Pg; 1 } or croak 'start_probe needs DBD::Pg (libdbd-pg-perl)';
    my $self = bless {
        interval => $o{interval} // 0.02,
        tag      => sprintf('probe-%d-%d', $$, ++$SEQ),
        dsn      => $o{dsn},
        user     => $o{user},
        password => $o{password},
    }, $class;
    $self->{file} = "$o{dir}/$self->{tag}.log";
    my $pid = fork;
    croak "fork: $!" unless defined $pid;
    if (!$pid) {
        # a forked child must not keep the guardians' pipes open, and must
        # not outlive the test process
        ProcSpawn::close_guardian_pipes();
        $self->_loop;
        POSIX::_exit(0);
    }
    $self->{pid} = $pid;
    $self->{started} = time;
    return $self;
}

sub tag { $_[0]{tag} }

sub _connect {
    my ($self, $i) = @_;
    my $h = DBI->connect("$self->{dsn}{$i}", $self->{user}, $self->{password},
        { RaiseError => 1, PrintError => 0, PrintWarn => 0, AutoCommit => 1 });
    $h->do('SET statement_timeout = 2000');
    return $h;
}

sub _loop {
    my ($self) = @_;
    my $parent = getppid;
    my $stop = 0;
    $SIG{TERM} = sub { $stop = 1 };
    $SIG{INT} = 'IGNORE';
    open my $out, '>', $self->{file} or POSIX::_exit(1);
    $out->autoflush(1);
    my @nodes = sort { $a <=> $b } keys %{ $self->{dsn} };
    my (%dbh, $n);
    until ($stop || getppid != $parent) {
        my $round = time;
        for my $i (@nodes) {
            last if $stop;
            my $dbh = $dbh{$i} //= eval { $self->_connect($i) };
            unless ($dbh) {
                (my $e = $@ // '') =~ s/\s+/ /g;
                printf $out "%.6f\t%d\tnoconn\t%s\n", time, $i, substr($e, 0, 120);
                next;
            }
            my $k = "$self->{tag}-" . ++$n;
            my $warn = '';
            local $SIG{__WARN__} = sub { $warn .= $_[0] };
            my $ok = eval { $dbh->do('INSERT INTO asbp_probe(k, node) VALUES (?, ?)', undef, $k, "node$i"); 1 };
            my $t = time;
            if ($ok) {
                printf $out "%.6f\t%d\t%s\t%s\n", $t, $i, ($warn =~ /synchronous/i ? 'local' : 'ok'), $k;
            } else {
                (my $e = $@ // '') =~ s/\s+/ /g;
                printf $out "%.6f\t%d\terr\t%s\n", $t, $i, substr($e, 0, 120);
                delete $dbh{$i} unless eval { $dbh->ping };
            }
        }
        my $left = $self->{interval} - (time - $round);
        sleep $left if $left > 0 && !$stop;
    }
    close $out;
}

# Stops the loop (once) and returns the result; max_gap is the longest time
# without any acknowledged write.
sub stop {
    my ($self) = @_;
    return $self->{result} if $self->{result};
    ProcTree::terminate('TERM', 5, $self->{pid});
    waitpid $self->{pid}, POSIX::WNOHANG();
    my %r = (tag => $self->{tag}, ok => 0, local => 0, errors => 0, acked => [], by_node => {}, max_gap => 0);
    my @t;
    if (open my $fh, '<', $self->{file}) {
        while (<$fh>) {
            chomp;
            my ($t, $i, $what, $rest) = split /\t/, $_, 4;
            next unless defined $what;
            if ($what eq 'ok') {
                $r{ok}++;
                push @{ $r{acked} }, $rest;
                $r{by_node}{$i}++;
                push @t, $t;
            } elsif ($what eq 'local') {
                $r{local}++;
            } else {
                $r{errors}++;
            }
        }
    }
    if (@t) {
        @r{qw(first_ok last_ok)} = ($t[0], $t[-1]);
        for my $j (1 .. $#t) {
            my $g = $t[$j] - $t[ $j - 1 ];
            @r{qw(max_gap gap_from gap_to)} = ($g, $t[ $j - 1 ], $t[$j]) if $g > $r{max_gap};
        }
    }
    return $self->{result} = \%r;
}

1;
