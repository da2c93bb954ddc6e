# The operator tool's metrics (bin/asbp-patroni --prometheus), against a
# real PostgreSQL and a fake Patroni API, read back with a strict parser of
# the Prometheus text exposition format (version 0.0.4) written here:
# Debian's promtool comes with the whole Prometheus server package.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use PgServer;
use FakePatroni;
use JSON::PP;
use File::Temp qw(tempdir);

# Skips (or fails with ASBP_REQUIRE_DB=1) before any test when there is no
# PostgreSQL.
my $pg = PgServer->start_or_skip( no_table => 1 );

# ---- the parser -------------------------------------------------------------

# Parses a whole exposition; returns { families => { name => { type, help,
# samples => [ { name, labels => {...}, value } ] } }, errors => [...] }.
# Beyond the grammar it enforces the conventions this tool promises: one
# HELP and one TYPE per family, the TYPE before the samples, a family's
# lines together, no series twice, counters (and only they) named *_total.
my $NAME  = qr/[a-zA-Z_:][a-zA-Z0-9_:]*/;
my $LNAME = qr/[a-zA-Z_][a-zA-Z0-9_]*/;
my $FLOAT = qr/(?:[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]Inf|NaN)/;

sub parse_exposition {
    my ($text) = @_;
    my ( %fam, %series, @errors, %done, $current );
    my $err = sub { push @errors, "line $_[0]: $_[1]" };
    push @errors, 'the text does not end with a newline' unless $text =~ /\n\z/;
    my @lines = split /\n/, $text, -1;
    pop @lines if @lines && $lines[-1] eq '';
    my $n = 0;
    for my $line (@lines) {
        $n++;
        if ( $line =~ /\A#/ ) {
            if ( $line =~ /\A#[ \t]*HELP[ \t]+(\S+)(?:[ \t](.*))?\z/ ) {
                my ( $name, $help ) = ( $1, $2 // '' );
                $err->( $n, "bad metric name '$name'" ), next unless $name =~ /\A$NAME\z/;
                $err->( $n, "bad escape in the HELP of $name" ) if $help =~ /\\(?![\\n])/;
                $err->( $n, "second HELP for $name" ) if defined $fam{$name}{help};
                $err->( $n, "HELP for $name after its samples" ) if $fam{$name}{samples};
                $fam{$name}{help} = $help =~ s/\\(.)/$1 eq 'n' ? "\n" : $1/ger;
                $current = family_switch( \%done, $current, $name, $n, $err );
            }
            elsif ( $line =~ /\A#[ \t]*TYPE[ \t]+(\S+)[ \t]+(\S+)[ \t]*\z/ ) {
                my ( $name, $type ) = ( $1, $2 );
                $err->( $n, "bad metric name '$name'" ), next unless $name =~ /\A$NAME\z/;
                $err->( $n, "bad type '$type' for $name" ) unless $type =~ /\A(?:counter|gauge|histogram|summary|untyped)\z/;
                $err->( $n, "second TYPE for $name" ) if defined $fam{$name}{type};
                $err->( $n, "TYPE for $name after its samples" ) if $fam{$name}{samples};
                $fam{$name}{type} = $type;
                $current = family_switch( \%done, $current, $name, $n, $err );
            }
            elsif ( $line =~ /\A#[ \t]*(?:HELP|TYPE)(?:[ \t]|\z)/ ) {
                $err->( $n, 'malformed HELP or TYPE line' );
            }
            next;    # any other comment
        }
        next if $line =~ /\A[ \t]*\z/;
        my $s = parse_sample( $line, sub { $err->( $n, $_[0] ) } ) or next;
        my $family = $s->{name};
        $family =~ s/_(?:bucket|sum|count)\z// if !$fam{$family} && $fam{ $family =~ s/_(?:bucket|sum|count)\z//r };
        my $f = $fam{$family};
        unless ( $f && defined $f->{type} ) {
            $err->( $n, "sample of $s->{name} without a TYPE before it" );
            $fam{$family}{samples} ||= [];
        }
        $current = family_switch( \%done, $current, $family, $n, $err );
        my $key = join "\0", $s->{name}, map { "$_=$s->{labels}{$_}" } sort keys %{ $s->{labels} };
        $err->( $n, "series $s->{name} given twice" ) if $series{$key}++;
        push @{ $fam{$family}{samples} }, $s;
    }
    for my $name ( sort keys %fam ) {
        my $f = $fam{$name};
        push @errors, "$name has no TYPE" unless defined $f->{type};
        push @errors, "$name has no HELP" unless defined $f->{help};
        my $type = $f->{type} // '';
        push @errors, "counter $name is not named *_total" if $type eq 'counter' && $name !~ /_total\z/;
        push @errors, "$name is named *_total but is a $type" if $type ne 'counter' && $name =~ /_total\z/;
    }
    return { families => \%fam, errors => \@errors };
}

# The lines of a family come together: leaving one closes it.
sub family_switch {
    my ( $done, $current, $name, $n, $err ) = @_;
    return $current if defined $current && $current eq $name;
    $done->{$current} = 1 if defined $current;
    $err->( $n, "the lines of $name are not together" ) if $done->{$name};
    return $name;
}

# name{label="value",...} value [timestamp]
sub parse_sample {
    my ( $line, $report ) = @_;
    my $err = sub { $report->($_[0]); return undef };
    my ( $name, $rest ) = $line =~ /\A($NAME)(.*)\z/s or return $err->("not a sample: '$line'");
    my %labels;
    if ( $rest =~ s/\A\{// ) {
        until ( $rest =~ s/\A\}// ) {
            my ($l) = $rest =~ /\A($LNAME)="/ or return $err->("bad label in '$line'");
            $rest = substr $rest, length($l) + 2;
            my $v = '';
            while (1) {
                return $err->("unterminated label value in '$line'") unless length $rest;
                my $c = substr $rest, 0, 1, '';
                last if $c eq '"';
                return $err->("raw newline in a label value") if $c eq "\n";
                if ( $c eq '\\' ) {
                    my $e = substr $rest, 0, 1, '';
                    return $err->("bad escape \\$e in a label value in '$line'") unless $e =~ /\A[\\"n]\z/;
                    $c = $e eq 'n' ? "\n" : $e;
                }
                $v .= $c;
            }
            return $err->("label $l given twice in '$line'") if exists $labels{$l};
            my $check = $v;
            return $err->("label value of $l is not UTF-8") unless utf8::decode($check);
            $labels{$l} = $v;
            next if $rest =~ s/\A,(?=[a-zA-Z_])//;
            return $err->("expected , or } after label $l in '$line'") unless $rest =~ /\A\}/;
        }
    }
    my ( $value, $ts ) = $rest =~ /\A[ \t]+(\S+)(?:[ \t]+(\S+))?[ \t]*\z/ or return $err->("no value in '$line'");
    return $err->("bad value '$value' in '$line'") unless $value =~ /\A$FLOAT\z/;
    return $err->("bad timestamp '$ts' in '$line'") if defined $ts && $ts !~ /\A-?[0-9]+\z/;
    return { name => $name, labels => \%labels, value => $value };
}

# The parser refuses what it must (a parser that accepts anything proves
# nothing).
{
    my $ok = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 2\n";
    is_deeply( parse_exposition($ok)->{errors}, [], 'parser: a valid exposition passes' );
    my %bad = (
        'no TYPE'                 => "# HELP g G.\ng 1\n",
        'no HELP'                 => "# TYPE g gauge\ng 1\n",
        'TYPE after a sample'     => "# HELP g G.\ng 1\n# TYPE g gauge\n",
        'two TYPE lines'          => "# HELP g G.\n# TYPE g gauge\n# TYPE g gauge\ng 1\n",
        'a series twice'          => "# HELP g G.\n# TYPE g gauge\ng{a=\"1\",b=\"2\"} 1\ng{b=\"2\",a=\"1\"} 1\n",
        'an unknown type'         => "# HELP g G.\n# TYPE g info\ng 1\n",
        'a counter not *_total'   => "# HELP c C.\n# TYPE c counter\nc 1\n",
        'a gauge named *_total'   => "# HELP g_total G.\n# TYPE g_total gauge\ng_total 1\n",
        'a bad metric name'       => "# HELP 1g G.\n# TYPE 1g gauge\n1g 1\n",
        'a bad label name'        => "# HELP g G.\n# TYPE g gauge\ng{1a=\"x\"} 1\n",
        'a bad value'             => "# HELP g G.\n# TYPE g gauge\ng 1,5\n",
        'an unescaped quote'      => "# HELP g G.\n# TYPE g gauge\ng{a=\"x\"y\"} 1\n",
        'a bad escape'            => "# HELP g G.\n# TYPE g gauge\ng{a=\"x\\ty\"} 1\n",
        'a family split in two'   => "# HELP g G.\n# TYPE g gauge\ng{a=\"1\"} 1\n# HELP h H.\n# TYPE h gauge\nh 1\ng{a=\"2\"} 1\n",
        'no final newline'        => "# HELP g G.\n# TYPE g gauge\ng 1",
        'invalid UTF-8 in labels' => "# HELP g G.\n# TYPE g gauge\ng{a=\"\xff\"} 1\n",
    );
    for ( sort keys %bad ) {
        ok( scalar @{ parse_exposition( $bad{$_} )->{errors} }, "parser: refuses $_" );
    }
}

# ---- the tool ---------------------------------------------------------------

my $PW = $pg->password;
my $weird = qq{no"de\\2 n\x{153}ud};    # a quote, a backslash, a non-ASCII letter
my $leader = { name => 'node1', role => 'leader', state => 'running', host => '127.0.0.1', port => $pg->port };
my @members = (
    $leader,
    { name => 'node2', role => 'sync_standby', state => 'streaming', host => '127.0.0.1', port => 9, lag => 1234 },
    { name => $weird, role => 'replica', state => 'running', host => '127.0.0.1', port => 10, lag => 'unknown' },
    { name => "line\nbreak", role => 'replica', state => 'stopped', host => '127.0.0.1', port => 11 },
);
my $body = JSON::PP->new->utf8->encode( { members => \@members } );
my $api  = FakePatroni->new( body => $body );
# A live endpoint slower than the discovery's grace window: it answers,
# and is counted as up.
my $slow = FakePatroni->new( body => $body, delay_ms => 300 );
my $dead = FakePatroni->refused_url;
my @base = ( '--set', 'DataSource=' . $pg->dsn, '--set', 'UserName=llng' );
my @api  = ( '--set', 'PatroniUrl=' . join( ',', $api->url, $slow->url, $dead ) );

sub tool {
    my (@a) = @_;
    local $ENV{ASBP_PASSWORD} = $PW;
    my $err = File::Temp->new;
    my $out = `$^X -Mblib bin/asbp-patroni @{[ map { quotemeta } @a ]} 2>$err`;
    my $rc = $? >> 8;
    seek $err, 0, 0;
    return ( $rc, $out, do { local $/; <$err> } // '' );
}

sub parsed_ok {
    my ( $text, $what ) = @_;
    my $p = parse_exposition($text);
    is_deeply( $p->{errors}, [], "$what: a valid exposition" ) or diag $text;
    return $p->{families};
}

sub samples {
    my ( $f, $name ) = @_;
    return @{ $f->{$name}{samples} || [] };
}

sub value_of {
    my ( $f, $name ) = @_;
    my @s = samples( $f, $name );
    return @s == 1 ? $s[0]{value} : undef;
}

my ( $rc, $out, $err ) = tool( 'schema', @base );
is( $rc, 0, 'schema: the table and its indexes made' ) or diag $out, $err;

( $rc, $out, $err ) = tool( @base, @api, '--prometheus' );
is( $rc, 1, 'one endpoint of three refusing: exit 1 (WARNING), as without --prometheus' ) or diag $err;
my $f = parsed_ok( $out, 'status' );
unlike( $out, qr/\Q$PW\E|\Q$FakePatroni::PASSWORD\E/, 'no password anywhere in the output' );
is( $err, '', 'nothing on STDERR' );

my $ds = $pg->dsn =~ s/;?(?:user|password)=[^;]*//gr;
my ($status) = samples( $f, 'asbp_patroni_status_code' );
is( $status->{value}, 1, 'asbp_patroni_status_code 1 (WARNING)' );
is( $status->{labels}{table}, 'sessions', 'labelled with the table' );
like( $status->{labels}{datasource}, qr/\Adbi:Pg:.*port=\d+/, 'and the DataSource' );

my @leader = samples( $f, 'asbp_patroni_leader' );
is( scalar @leader, 1, 'one leader' );
is( $leader[0]{labels}{host}, '127.0.0.1', 'leader host as the API said' );
is( $leader[0]{labels}{port}, $pg->port, 'leader port as the API said' );
is( $leader[0]{value}, 1, 'leader sample is 1' );
is( $f->{asbp_patroni_leader}{type}, 'gauge', 'a gauge' );
my %outcome = map { $_->{labels}{outcome} => $_->{value} } samples( $f, 'asbp_patroni_discovery_outcome' );
is_deeply( \%outcome, { leader => 1, transition => 0, split => 0, failed => 0 }, 'outcome: leader' );

is( value_of( $f, 'asbp_patroni_members' ), 4, 'asbp_patroni_members 4' );
my %info = map { $_->{labels}{member} => $_ } samples( $f, 'asbp_patroni_member_info' );
is( scalar keys %info, 4, 'four member_info series' );
is_deeply( [ @{ $info{node2}{labels} }{qw(role state host port)} ], [ 'sync_standby', 'streaming', '127.0.0.1', 9 ],
    'node2: role, state, host, port' );
my $weird_utf8 = $weird;
utf8::encode($weird_utf8);
ok( $info{$weird_utf8}, 'a name with a quote, a backslash and a non-ASCII letter comes back intact (escaped, UTF-8)' )
  or diag explain [ keys %info ];
like( $out, qr/member="no\\"de\\\\2 n\xc5\x93ud"/, 'escaped as the format says' );
ok( $info{'line?break'}, 'a control character in a name (the module shows it as ?)' );
my %lag = map { $_->{labels}{member} => $_->{value} } samples( $f, 'asbp_patroni_member_lag_bytes' );
is_deeply( \%lag, { node2 => 1234 }, 'lag only where the API gives a number (not the leader, not "unknown")' );

my %up   = map { $_->{labels}{endpoint} => $_->{value} } samples( $f, 'asbp_patroni_api_up' );
my %time = map { $_->{labels}{endpoint} => $_->{value} } samples( $f, 'asbp_patroni_api_response_seconds' );
( my $dead_masked = $dead ) =~ s/:\Q$FakePatroni::PASSWORD\E\@/:***\@/;
is_deeply( \%up, { $api->masked_url => 1, $slow->masked_url => 1, $dead_masked => 0 },
    'api_up: 1 for the live endpoints (also the slow one), 0 for the dead one; URLs masked' );
cmp_ok( $time{ $api->masked_url } // -1, '>', 0, 'the live endpoint\'s answer time' );
cmp_ok( $time{ $slow->masked_url } // -1, '>=', 0.29, 'the slow endpoint\'s answer time: its 300 ms delay' );
cmp_ok( $time{$dead_masked} // -1, '>=', 0, 'the dead one\'s time to refuse' );
cmp_ok( value_of( $f, 'asbp_patroni_discovery_duration_seconds' ), '>=', 0.29, 'the discovery waited for all' );

is( value_of( $f, 'asbp_patroni_breaker_open' ), 0, 'breaker closed' );
is( value_of( $f, 'asbp_check_ok' ), 1, 'asbp_check_ok 1' );
cmp_ok( value_of( $f, 'asbp_check_duration_seconds' ), '>', 0, 'asbp_check_duration_seconds' );
my @counters = grep { $f->{$_}{type} eq 'counter' } sort keys %$f;
is_deeply( \@counters, [ map { "asbp_patroni_${_}_total" }
    qw(api_failures breaker_skips discoveries failovers leader_changes retries transitions) ], 'the counters' );
is( scalar( grep { $_->{value} < 0 } map { samples( $f, $_ ) } @counters ), 0, 'none negative' );
like( $out, qr/^# Warning: only 2 of 3 Patroni endpoints answered$/m, 'the warning as a comment' );
like( $out, qr/^# Result: WARNING\n\z/m, 'the result last, as a comment' );

# The leader the module has used: its cache age, when it found one through
# the API (a DataSource that is not the leader makes it ask).
my $other = "dbi:Pg:dbname=sessions;host=127.0.0.1;port=" . PgServer::free_port();
( $rc, $out, $err ) = tool( '--set', "DataSource=$other", '--set', 'UserName=llng',
    '--set', 'PatroniUrl=' . $api->url, '--prometheus' );
is( $rc, 0, 'a DataSource that is not the leader: the check follows the API, exit 0' ) or diag $out, $err;
$f = parsed_ok( $out, 'after a discovery' );
my $age = value_of( $f, 'asbp_patroni_leader_cache_age_seconds' );
ok( defined $age && $age >= 0 && $age < 60, 'asbp_patroni_leader_cache_age_seconds' ) or diag $out;
cmp_ok( value_of( $f, 'asbp_patroni_discoveries_total' ), '>=', 1, 'asbp_patroni_discoveries_total counted it' );
is( scalar samples( $f, 'asbp_patroni_api_up' ), 1, 'one endpoint, one api_up' );

# An endpoint that never answers: down, and no answer time.
my $hang = FakePatroni->new( mode => 'hang' );
( $rc, $out, $err ) = tool( @base, '--set', 'PatroniUrl=' . join( ',', $api->url, $hang->url ),
    '--set', 'PatroniTimeout=1', '--prometheus', '--no-check' );
is( $rc, 1, 'one endpoint hanging: exit 1 (WARNING)' ) or diag $err;
$f = parsed_ok( $out, 'a hanging endpoint' );
%up   = map { $_->{labels}{endpoint} => $_->{value} } samples( $f, 'asbp_patroni_api_up' );
%time = map { $_->{labels}{endpoint} => $_->{value} } samples( $f, 'asbp_patroni_api_response_seconds' );
is_deeply( \%up, { $api->masked_url => 1, $hang->masked_url => 0 }, 'api_up 0 for the hanging one' );
is_deeply( [ keys %time ], [ $api->masked_url ], 'an answer time only for the one that answered' );
$hang->stop;

# No leader: no leader sample, the outcome says why, CRITICAL.
$api->set_answer( encode_json( { members => [ { %$leader, role => 'replica' } ] } ) );
( $rc, $out ) = tool( @base, '--set', 'PatroniUrl=' . $api->url, '--prometheus', '--no-check' );
is( $rc, 2, 'no leader: exit 2 (CRITICAL)' );
$f = parsed_ok( $out, 'no leader' );
is( scalar samples( $f, 'asbp_patroni_leader' ), 0, 'no leader sample (the family is still described)' );
%outcome = map { $_->{labels}{outcome} => $_->{value} } samples( $f, 'asbp_patroni_discovery_outcome' );
is( $outcome{transition}, 1, 'outcome: transition' );
ok( !$f->{asbp_check_ok}, '--no-check: no asbp_check_ok' );
$api->set_answer($body);

# ---- --output: the textfile collector's file --------------------------------

my $dir  = tempdir( CLEANUP => 1 );
my $file = "$dir/asbp.prom";
{
    open my $fh, '>', $file or die "$file: $!";
    print $fh "old\n";
    close $fh;
}
open my $old, '<', $file or die "$file: $!";
my $old_inode = ( stat $file )[1];
my $umask = umask 022;
( $rc, $out, $err ) = tool( @base, '--set', 'PatroniUrl=' . $api->url, '--prometheus', '--output', $file );
umask $umask;
is( $rc, 0, '--output: exit 0' ) or diag $err;
is( $out, '', 'nothing on STDOUT' );
my $text = do { open my $fh, '<', $file or die; local $/; <$fh> };
$f = parsed_ok( $text, 'the file' );
is( value_of( $f, 'asbp_check_ok' ), 1, 'the file has the metrics' );
like( $text, qr/# Result: OK\n\z/, 'the whole of them' );
isnt( ( stat $file )[1], $old_inode, 'a new file took the name (renamed over the old one)' );
is( do { local $/; <$old> }, "old\n", 'a reader of the old file still reads it whole: it was never rewritten in place' );
close $old;
is( ( stat $file )[2] & 07777, 0644, 'readable by the collector (0666 less the umask)' );
opendir my $dh, $dir or die;
is_deeply( [ sort grep { !/\A\.\.?\z/ } readdir $dh ], ['asbp.prom'], 'no temporary file left' );
closedir $dh;

( $rc, $out, $err ) = tool( @base, '--prometheus', '--output', "$dir/no/such/dir/x.prom" );
is( $rc, 3, 'a directory that does not exist: exit 3 (UNKNOWN)' );
like( $err, qr{cannot write \Q$dir\E/no/such/dir/x\.prom}, 'says which file' );
ok( !-e "$dir/no", 'nothing made' );

# UNKNOWN (the tool could not look): the status code alone, so that a stale
# file is not left to say all is well.
( $rc, $out, $err ) = tool( '--prometheus', '--set', 'UserName=llng' );
is( $rc, 3, 'no DataSource: exit 3 (UNKNOWN)' );
$f = parsed_ok( $out, 'UNKNOWN' );
is( value_of( $f, 'asbp_patroni_status_code' ), 3, 'asbp_patroni_status_code 3' );
like( $err, qr/no DataSource/, "the reason on STDERR" );
like( $out, qr/^# Problem: no DataSource/m, "and as a comment" );
( $rc, $out, $err ) = tool( '--prometheus', '--set', 'UserName=llng', '--output', $file );
is( $rc, 3, 'the same with --output' );
like( do { open my $fh, '<', $file or die; local $/; <$fh> }, qr/^asbp_patroni_status_code 3$/m,
    'the file says UNKNOWN (the previous metrics are gone)' );

# Usage errors: exit 3, nothing on STDOUT.
for my $bad ( [ '--prometheus', '--json' ], [ '--output', $file ], [ 'schema', '--prometheus' ],
    [ '--prometheus', '--output', '' ] ) {
    ( $rc, $out ) = tool( @base, @$bad );
    is( $rc, 3, "usage error: @$bad" );
    is( $out, '', '  nothing on STDOUT' );
}

done_testing;
