package Workload;

# An LL::NG-shaped workload through Apache::Session::Browseable::Patroni,
# run by forked worker processes, recording what every caller saw:
#
#   create = tie undef + store keys + untie
#   read   = tie id, read, untie (the value must be the last acknowledged one)
#   update = tie id, store a key, untie
#   delete = tie id, tied(%h)->delete, untie
#
# An operation is acknowledged when it returned without an exception and
# without a warning (an error in untie becomes Perl's "(in cleanup)"
# warning).  Each worker writes one line per operation to its log:
#   t_start t_end op id value ok|ERR message
# and Workload::collect reads the logs back, and Workload::verify checks
# every acknowledged write against the table.
#
#   my $w = Workload->start(workers => 4, args => \%opts, dir => $dir);
#   ... (events) ...
#   my $r = $w->stop;            # { ops, errors, by_id, ... }

use strict;
use warnings;
use POSIX ();
use Time::HiRes qw(time sleep);
use Apache::Session::Browseable::Patroni;

my $CLASS = 'Apache::Session::Browseable::Patroni';

sub start {
    my ( $class, %o ) = @_;
    my $self = bless { workers => 4, pause => 0.005, %o, pids => [], t0 => time }, $class;
    mkdir $self->{dir};
    unlink "$self->{dir}/stop";
    for my $n ( 1 .. $self->{workers} ) {
        my $pid = fork // die "fork: $!";
        if ( !$pid ) {
            $self->_worker($n);
            POSIX::_exit(0);
        }
        push @{ $self->{pids} }, $pid;
    }
    return $self;
}

sub _worker {
    my ( $self, $n ) = @_;
    srand( $$ ^ time );
    open my $log, '>', "$self->{dir}/worker$n.log" or die;
    select( ( select($log), $| = 1 )[0] );
    my @mine;    # [ id, value ] of sessions this worker created and not deleted
    my $seq = 0;
    my $args = $self->{args};
    while ( !-e "$self->{dir}/stop" ) {
        my $r = rand;
        my $op = @mine < 5 || $r < 0.25 ? 'create' : $r < 0.60 ? 'read' : $r < 0.90 ? 'update' : 'delete';
        my $k = int rand @mine;
        my ( $id, $value ) = $op eq 'create' ? ( '', "w$n-" . ++$seq ) : @{ $mine[$k] };
        my $newv = $op eq 'update' ? "w$n-" . ++$seq : $value;
        my @warn;
        # errors only: the module's log lines (warnings too) stay on STDERR
        local $SIG{__WARN__} = sub { $_[0] =~ /^\Q$CLASS\E\[\d+\] / ? print STDERR $_[0] : push @warn, $_[0] };
        my $t0 = time;
        my $got;
        my $ok = eval {
            if ( $op eq 'create' ) {
                tie my %s, $CLASS, undef, {%$args};
                $id = $s{_session_id};
                @s{qw(_session_kind _utime _lastSeen uid _whatToTrace ipAddr v)} =
                  ( 'SSO', int time, int time, "user$n", "user$n", "10.0.0.$n", $value );
                untie %s;
            }
            elsif ( $op eq 'read' ) {
                tie my %s, $CLASS, $id, {%$args};
                $got = $s{v};
                untie %s;
            }
            elsif ( $op eq 'update' ) {
                tie my %s, $CLASS, $id, {%$args};
                $s{v}         = $newv;
                $s{_lastSeen} = int time;
                untie %s;
            }
            else {
                tie my %s, $CLASS, $id, {%$args};
                tied(%s)->delete;
                untie %s;
            }
            1;
        };
        my $t1  = time;
        my $err = $ok ? join( ' ', @warn ) : $@;
        $err =~ s/\s+/ /g;
        my $status = $err eq '' ? 'ok' : "ERR $err";
        if ( $op eq 'read' && $status eq 'ok' && ( $got // '' ) ne $value ) {
            $status = "STALE got " . ( $got // 'undef' ) . " expected $value";
        }
        printf $log "%.4f %.4f %s %s %s %s\n", $t0, $t1, $op, $id || '-', $newv, $status;
        if ( $status eq 'ok' ) {
            push @mine, [ $id, $value ] if $op eq 'create';
            $mine[$k][1] = $newv if $op eq 'update';
            splice @mine, $k, 1 if $op eq 'delete';
        }
        elsif ( $op ne 'read' && $op ne 'create' ) {
            # Unknown outcome: leave this session alone from now on.
            splice @mine, $k, 1;
        }
        sleep $self->{pause} if $self->{pause};
    }
    close $log;
}

sub stop {
    my ($self) = @_;
    open my $fh, '>', "$self->{dir}/stop" or die;
    close $fh;
    waitpid $_, 0 for @{ $self->{pids} };
    return $self->collect;
}

# Reads the logs: every operation, and per id the states a later check
# must accept.
sub collect {
    my ($self) = @_;
    my ( @ops, %by_id );
    for my $n ( 1 .. $self->{workers} ) {
        open my $fh, '<', "$self->{dir}/worker$n.log" or next;
        while (<$fh>) {
            chomp;
            my ( $t0, $t1, $op, $id, $v, $status ) = split / /, $_, 6;
            my $o = { t0 => $t0, t1 => $t1, op => $op, id => $id, v => $v, status => $status,
                ok => $status eq 'ok', worker => $n };
            push @ops, $o;
            next if $id eq '-' || $op eq 'read';
            my $s = $by_id{$id} ||= { acked => undef, maybe => [] };
            if ( $o->{ok} ) {
                $s->{acked} = $op eq 'delete' ? 'DELETED' : $v;
                $s->{maybe} = [];
            }
            else {
                push @{ $s->{maybe} }, $op eq 'delete' ? 'DELETED' : $v;
            }
        }
    }
    @ops = sort { $a->{t1} <=> $b->{t1} } @ops;
    my @errors = grep { !$_->{ok} } @ops;
    my @lat = sort { $a <=> $b } map { $_->{t1} - $_->{t0} } @ops;
    return {
        ops     => \@ops,
        errors  => \@errors,
        stale   => [ grep { $_->{status} =~ /^STALE/ } @ops ],
        by_id   => \%by_id,
        count   => scalar @ops,
        elapsed => @ops ? $ops[-1]{t1} - $ops[0]{t0} : 0,
        p50     => @lat ? $lat[ $#lat * 0.50 ] : 0,
        p99     => @lat ? $lat[ $#lat * 0.99 ] : 0,
        max     => @lat ? $lat[-1] : 0,
    };
}

# Longest time without an acknowledged write between $from and $to.
sub write_gap {
    my ( $r, $from, $to ) = @_;
    my @t = map { $_->{t1} } grep { $_->{ok} && $_->{op} ne 'read' && $_->{t1} >= $from && $_->{t1} <= $to } @{ $r->{ops} };
    my ( $gap, $a, $b ) = ( 0, $from, $from );
    my $prev = $from;
    for ( @t, $to ) {
        ( $gap, $a, $b ) = ( $_ - $prev, $prev, $_ ) if $_ - $prev > $gap;
        $prev = $_;
    }
    return wantarray ? ( $gap, $a, $b ) : $gap;
}

# The rows on the leader of a PatroniCluster: { id => value of key v }
# (ids matching $skip, a regexp, left out).
sub rows {
    my ( $c, $skip ) = @_;
    my %r;
    for ( split /\n/, $c->psql( 'leader', "SELECT id, coalesce(a_session->>'v', '') FROM sessions" ) ) {
        my ( $id, $v ) = split /\|/, $_, 2;
        next if $skip && $id =~ $skip;
        $r{$id} = $v;
    }
    return \%r;
}

# Checks every acknowledged write against the rows: $rows is { id => v }
# for the ids that exist.  Returns the list of problems (empty: none lost).
sub verify {
    my ( $r, $rows ) = @_;
    my @bad;
    for my $id ( sort keys %{ $r->{by_id} } ) {
        my $s = $r->{by_id}{$id};
        next unless defined $s->{acked};    # never acknowledged: nothing promised
        my @ok = ( $s->{acked}, @{ $s->{maybe} } );
        my $now = exists $rows->{$id} ? $rows->{$id} : 'DELETED';
        push @bad, "$id: row is " . ( $now // 'undef' ) . ", acknowledged $s->{acked}"
          unless grep { defined $now && $_ eq $now } @ok;
    }
    return @bad;
}

1;
