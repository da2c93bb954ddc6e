# The operator tool (bin/asbp-patroni) and the status class method, against
# a real PostgreSQL and a fake Patroni API.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use PgServer;
use FakePatroni;
use JSON::PP;
use File::Temp qw(tempdir);
use POSIX ();
use Apache::Session::Browseable::Patroni;

my $pg  = PgServer->start_or_skip( no_table => 1 );
my $PW  = $pg->password;
my $leader = { name => 'node1', role => 'leader', state => 'running', host => '127.0.0.1', port => $pg->port };
my $api = FakePatroni->new( body => encode_json( { members => [ $leader,
    { name => 'node2', role => 'replica', state => 'running', host => '127.0.0.1', port => 9, lag => 0 } ] } ) );
my @base = ( '--set', 'DataSource=' . $pg->dsn, '--set', 'UserName=llng', '--set', 'PatroniUrl=' . $api->url );

sub tool {
    my (@a) = @_;
    local $ENV{ASBP_PASSWORD} = $PW;
    my $out = `$^X -Mblib bin/asbp-patroni @{[ map { quotemeta } @a ]} 2>&1`;
    return ( $? >> 8, $out );
}

# The same, STDOUT only (STDERR discarded): for --json when it fails.
sub tool_stdout {
    my (@a) = @_;
    local $ENV{ASBP_PASSWORD} = $PW;
    my $out = `$^X -Mblib bin/asbp-patroni @{[ map { quotemeta } @a ]} 2>/dev/null`;
    return ( $? >> 8, $out );
}

# Every --json answer decoded here is checked, at the end, against the
# JSON schema in the tool's POD.
my @answers;
sub report_json {
    my ( $text, $what ) = @_;
    my $r = eval { decode_json($text) };
    push @answers, [ $what, $r ] if ref $r eq 'HASH';
    return $r || {};
}

# Exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.

my ( $rc, $out ) = tool( @base, '--json' );
is( $rc, 2, 'no table yet: status exits 2 (CRITICAL)' );
my $j = report_json( $out, 'no table' );
is( $j->{status}, 'CRITICAL', 'JSON: status CRITICAL' );
is( $j->{exit}, 2, 'JSON: exit 2' );
like( join( ' ', @{ $j->{problems} } ), qr/does not exist/, 'the missing table is the problem' );

( $rc, $out ) = tool( 'schema', @base );
is( $rc, 0, 'schema: exit 0' );
like( $out, qr/created\s+CREATE TABLE IF NOT EXISTS "sessions"/, 'table created' );
like( $out, qr/text_pattern_ops/, 'with a text_pattern_ops index for prefix searches' );
is( $pg->psql("SELECT relpersistence FROM pg_class WHERE relname = 'sessions'"), 'p', 'the table is LOGGED' );
( $rc, $out ) = tool( 'schema', @base );
is( $rc, 0, 'schema again: exit 0' );
unlike( $out, qr/\bcreated\b/, 'idempotent: nothing created the second time' );
my $nidx = $pg->psql("SELECT count(*) FROM pg_indexes WHERE tablename = 'sessions'");
cmp_ok( $nidx, '>=', 9, "$nidx indexes (primary key + 8 recommended)" );

( $rc, $out ) = tool( @base, '--json' );
is( $rc, 0, 'status: exit 0 when all is well' ) or diag $out;
$j = report_json( $out, 'all well' );
ok( $j->{ok}, 'JSON: ok' );
is( $j->{status}, 'OK', 'JSON: status OK' );
is_deeply( [ @{ $j->{problems} }, @{ $j->{warnings} } ], [], 'no problem, no warning' );
is( $j->{patroni}{outcome}, 'leader', 'JSON: the API names a leader' );
is( $j->{patroni}{leader}, '127.0.0.1:' . $pg->port, 'the right one' );
is( scalar @{ $j->{patroni}{members} }, 2, 'members listed' );
ok( $j->{check}{ok}, 'write/read check passed' );
is( $j->{check}{server}, '127.0.0.1:' . $pg->port, 'on the leader' );
is( $pg->psql("SELECT count(*) FROM sessions"), 0, 'the check session was deleted' );

( $rc, $out ) = tool(@base);
is( $rc, 0, 'text output: exit 0' );
like( $out, qr/^Patroni API\s+http:\/\/llng:\*\*\*\@127\.0\.0\.1/m, 'API URL with its password masked' );
like( $out, qr/^Check\s+wrote, read back and deleted a session on 127\.0\.0\.1:\d+ in \d+ ms: OK/m, 'check reported' );
like( $out, qr/^Result\s+OK/m, 'result OK' );
unlike( $out, qr/\Q$PW\E|s3cr3t-pw/, 'no password anywhere in the output' );

# Problems a probe must report.
$api->set_answer( '', 503 );
( $rc, $out ) = tool( @base, '--json' );
is( $rc, 1, 'API down, the database fine: exit 1 (WARNING)' );
like( $out, qr/Patroni API unavailable/, 'says so' );
$j = report_json( $out, 'API down' );
is( $j->{status}, 'WARNING', 'JSON: status WARNING' );
ok( $j->{check}{ok}, 'the check still passed' );
$api->set_answer( encode_json( { members => [ { %$leader, role => 'replica' } ] } ) );
( $rc, $out ) = tool(@base);
is( $rc, 2, 'no leader: exit 2 (CRITICAL)' );
like( $out, qr/No leader found/, 'says so' );
like( $out, qr/^Result\s+CRITICAL$/m, 'Result CRITICAL' );
$api->set_answer( encode_json( { members => [$leader] } ) );
$pg->psql('ALTER TABLE sessions SET UNLOGGED');
( $rc, $out ) = tool(@base);
is( $rc, 2, 'UNLOGGED table: exit 2 (CRITICAL)' );
like( $out, qr/UNLOGGED: it is not replicated/, 'explained' );
( $rc, $out ) = tool( 'schema', '--fix-unlogged', @base );
is( $rc, 0, 'schema --fix-unlogged' );
is( $pg->psql("SELECT relpersistence FROM pg_class WHERE relname = 'sessions'"), 'p', 'the table is LOGGED again' );
( $rc, $out ) = tool( @base, '--set', 'Password=wrong' );
is( $rc, 2, 'wrong password on the command line: exit 2 (CRITICAL)' );
like( $out, qr/password authentication failed/, 'check failure explained' );
like( $out, qr/visible to other users/, 'warned about a password on the command line' );

# WARNING: degraded but working.
my $ix = $pg->psql("SELECT indexname FROM pg_indexes WHERE tablename = 'sessions' AND indexname <> 'sessions_pkey' LIMIT 1");
$pg->psql(qq{DROP INDEX "$ix"});
( $rc, $out ) = tool(@base);
is( $rc, 1, 'a recommended index missing: exit 1 (WARNING)' );
like( $out, qr/^Warning\s+1 of the \d+ recommended indexes \(global\) are missing: \Q$ix\E$/m, 'says which' );
like( $out, qr/^Result\s+WARNING$/m, 'Result WARNING' );
( $rc, $out ) = tool( 'schema', @base, '--json' );
is( $rc, 0, 'schema puts it back' );
$j = report_json( $out, 'schema' );
is( scalar( grep { $_->{done} } @{ $j->{schema}{items} } ), 1, 'schema --json: one statement run' );
my @two = ( @base[ 0 .. 3 ], '--set', 'PatroniUrl=' . $api->url . ',' . FakePatroni->refused_url );
( $rc, $out ) = tool(@two);
is( $rc, 1, 'one of two API endpoints refusing: exit 1 (WARNING)' );
like( $out, qr/^Warning\s+only 1 of 2 Patroni endpoints answered/m, 'says so' );
( $rc, $out ) = tool( @base[ 0 .. 3 ] );
is( $rc, 1, 'no PatroniUrl: exit 1 (WARNING)' );
like( $out, qr/^Warning\s+no PatroniUrl/m, 'says so' );

# A dead database is CRITICAL, with or without the check.
( $rc, $out ) = tool( @base, '--no-check' );
is( $rc, 0, '--no-check, database alive: exit 0' );
like( $out, qr/^Check\s+not done \(--no-check\)/m, 'says the check was not done' );
my $dead_port = PgServer::free_port();
my $dead_api = FakePatroni->new( body => encode_json( { members => [ { %$leader, port => $dead_port } ] } ) );
my @dead = ( '--set', "DataSource=dbi:Pg:dbname=sessions;host=127.0.0.1;port=$dead_port", '--set', 'UserName=llng',
    '--set', 'PatroniUrl=' . $dead_api->url, '--set', 'FailoverTimeout=1' );
( $rc, $out ) = tool( @dead, '--no-check' );
is( $rc, 2, '--no-check, database dead: exit 2 (CRITICAL)' ) or diag $out;
like( $out, qr/^Problem\s+database not reached/m, 'says the database was not reached' );
unlike( $out, qr/^Result\s+OK/m, 'not "Result OK"' );
like( $out, qr/^Result\s+CRITICAL$/m, 'Result CRITICAL' );
( $rc, $out ) = tool( @dead, '--no-check', '--json' );
$j = report_json( $out, 'dead, --no-check' );
is_deeply( [ $rc, $j->{status}, $j->{ok} ? 1 : 0 ], [ 2, 'CRITICAL', 0 ], '--no-check, dead, JSON: CRITICAL, not ok' );
( $rc, $out ) = tool(@dead);
is( $rc, 2, 'database dead, with the check: exit 2 (CRITICAL)' );
like( $out, qr/^Problem\s+write\/read check failed/m, 'the check failed' );
$dead_api->stop;

# UNKNOWN: the tool did not look.
( $rc, $out ) = tool('--bogus');
is( $rc, 3, 'unknown option: exit 3 (UNKNOWN)' );
like( $out, qr/Unknown option: bogus/, 'says which' );
like( $out, qr/^Usage:/m, 'with the usage' );
( $rc, $out ) = tool( 'frobnicate', @base );
is( $rc, 3, 'unknown command: exit 3' );
( $rc, $out ) = tool( @base, '--kind', 'nonsense' );
is( $rc, 3, 'unknown --kind: exit 3' );
( $rc, $out ) = tool( '--set', 'UserName=llng' );
is( $rc, 3, 'no DataSource: exit 3' );
like( $out, qr/no DataSource/, 'says so' );
like( $out, qr/^Result\s+UNKNOWN$/m, 'Result UNKNOWN' );
( $rc, $out ) = tool( '-f', '/nonexistent/asbp-options.json' );
is( $rc, 3, 'unreadable options file: exit 3' );
like( $out, qr/cannot read \/nonexistent/, 'says so' );
( $rc, $out ) = tool_stdout( '-f', '/nonexistent/asbp-options.json', '--json' );
is( $rc, 3, 'unreadable options file, --json: exit 3' );
$j = report_json( $out, 'UNKNOWN' );
is( $j->{status}, 'UNKNOWN', 'JSON on STDOUT: status UNKNOWN' );
like( $j->{error} // '', qr/cannot read/, 'JSON: the reason' );
( $rc, $out ) = tool( @base, '--set', 'PatroniTimeout=soon' );
is( $rc, 3, 'an option the module refuses: exit 3' );
like( $out, qr/invalid PatroniTimeout/, 'says so' );
{
    local $ENV{ASBP_NO_SUCH_VAR};
    ( $rc, $out ) = tool( @base, '--password-env', 'ASBP_NO_SUCH_VAR' );
    is( $rc, 3, 'password variable not set: exit 3' );
}

# --version, --help, --man.
( $rc, $out ) = tool('--version');
is( $rc, 0, '--version: exit 0' );
is( $out, "asbp-patroni (Apache::Session::Browseable::Patroni) $Apache::Session::Browseable::Patroni::VERSION\n",
    '--version prints the module version' );
( $rc, $out ) = tool('--help');
is( $rc, 0, '--help: exit 0' );
like( $out, qr/^Usage:/m, '--help: the synopsis' );
like( $out, qr/--no-check/, '--help: the options' );
like( $out, qr/^Exit Status:.*\b3 UNKNOWN\b/ms, '--help: the exit codes' );
unlike( $out, qr/^Description:/mi, '--help: not the whole manual' );
( $rc, $out ) = tool('--man');
is( $rc, 0, '--man: exit 0' );
like( $out, qr/^DESCRIPTION/m, '--man: the whole manual' );
like( $out, qr/^EXIT STATUS/m, '--man: with the exit codes' );

# The module's messages are captured in no file of a predictable name: a
# symbolic link planted at the old name (/tmp/asbp-patroni-PID.log) must
# not be followed.  The tool's pid is known: the child plants the link at
# its own pid, then execs the tool (exec keeps the pid).  TMPDIR points at
# an empty directory, which must still be empty afterwards.
{
    my $dir    = tempdir( CLEANUP => 1 );
    my $tmpdir = "$dir/tmp";
    mkdir $tmpdir or die;
    my $target = "$dir/precious";
    my $text   = "precious content\n";
    open my $t, '>', $target or die;
    print $t $text;
    close $t;
    my $outf = "$dir/out";
    my $link;
    my $pid = fork // die "fork: $!";
    if ( !$pid ) {
        $link = "/tmp/asbp-patroni-$$.log";
        unlink $link;
        symlink( $target, $link ) or POSIX::_exit(126);
        open STDOUT, '>', $outf or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(126);
        $ENV{ASBP_PASSWORD} = $PW;
        $ENV{TMPDIR}        = $tmpdir;
        # Dead DataSource, the API names the real leader: the module logs
        # its failover, so a log is written during the run.
        {
            exec $^X, '-Mblib', 'bin/asbp-patroni', '--set',
              'DataSource=dbi:Pg:dbname=sessions;host=127.0.0.1;port=' . PgServer::free_port(),
              @base[ 2 .. 5 ];
        }
        POSIX::_exit(127);
    }
    waitpid $pid, 0;
    $rc   = $? >> 8;
    $link = "/tmp/asbp-patroni-$pid.log";
    $out  = do { local ( @ARGV, $/ ) = ($outf); <> } // '';
    is( $rc, 0, 'with a symlink planted at the old log name: the tool works' ) or diag $out;
    like( $out, qr/^Log\s+.*reconnected to 127\.0\.0\.1:\d+/m, 'the module\'s messages are still in the report' );
    is( do { local ( @ARGV, $/ ) = ($target); <> }, $text, 'the symlink target is untouched' );
    ok( -l $link, 'the planted link is left alone' );
    unlink $link;
    opendir my $dh, $tmpdir or die;
    is_deeply( [ grep { !/^\.\.?\z/ } readdir $dh ], [], 'no file left in TMPDIR' );
}

# Options from a file (JSON and a Perl hash as LL::NG shows them).
my $f_tmp = File::Temp->new( TEMPLATE => 'asbp-tool-XXXXXXXX', TMPDIR => 1 );   # exclusive, unpredictable
my $f = $f_tmp->filename;
open my $fh, '>', $f or die;
printf $fh "{ DataSource => '%s', UserName => 'llng', PatroniUrl => '%s' }\n", $pg->dsn, $api->url;
close $fh;
( $rc, $out ) = tool( '-f', $f );
is( $rc, 0, 'options from a Perl hash file' ) or diag $out;
unlink $f;

# Options from LemonLDAP::NG's own configuration (--llng).
SKIP: {
    skip 'LemonLDAP::NG (Lemonldap::NG::Common::Conf) not installed', 15
      unless eval { require Lemonldap::NG::Common::Conf; 1 };
    require LLNGConf;
    my %env = LLNGConf::write( $pg, options => { PatroniUrl => $api->url }, ptable => 'psessions' );
    {
        local @ENV{ keys %env } = values %env;
        local $ENV{ASBP_PASSWORD};
        ( $rc, $out ) = tool('--llng');
        is( $rc, 0, '--llng: globalStorageOptions from the configuration, exit 0' ) or diag $out;
        like( $out, qr/^LL::NG\s+globalStorageOptions from configuration 1$/m, 'says where the options came from' );
        like( $out, qr/^DataSource\s+\Q${\ $pg->dsn }\E \(table sessions\)/m, 'the DataSource of the configuration' );
        ( $rc, $out ) = tool( '--llng', '--storage', 'persistent' );
        is( $rc, 2, '--llng --storage persistent: its table does not exist yet (CRITICAL)' );
        like( $out, qr/table psessions does not exist/, 'persistentStorageOptions used' );
        ( $rc, $out ) = tool( 'schema', '--llng', '--storage', 'persistent' );
        is( $rc, 0, 'schema --llng --storage persistent' ) or diag $out;
        like( $out, qr/^Table\s+psessions \(created\)/m, 'creates that table' );
        ( $rc, $out ) = tool( '--llng', '--storage', 'persistent', '--json' );
        $j = report_json( $out, '--llng' );
        is_deeply( [ $rc, $j->{status}, $j->{schema}{table} ], [ 0, 'OK', 'psessions' ],
            'with the indexes of its kind: OK' );
        ( $rc, $out ) = tool( '--llng', '--storage', 'saml' );
        is( $rc, 0, '--storage saml, not set: globalStorage, as in LL::NG' ) or diag $out;
        like( $out, qr/^LL::NG\s+globalStorageOptions .*\(samlStorage is not set\)/m, 'says so' );
        ( $rc, $out ) = tool( '--storage', 'saml' );
        is( $rc, 3, '--storage without --llng: usage error, exit 3' );
        ( $rc, $out ) = tool( '--llng', '--llng-ini', '/nonexistent/lemonldap-ng.ini' );
        is( $rc, 3, '--llng-ini not readable: exit 3 (UNKNOWN)' );
    }
    %env = LLNGConf::write( $pg, extra => { samlStorage => 'Apache::Session::File', samlStorageOptions => { Directory => '/tmp' } } );
    {
        local @ENV{ keys %env } = values %env;
        ( $rc, $out ) = tool( '--llng', '--storage', 'saml' );
        is( $rc, 3, 'a storage of another class: exit 3 (UNKNOWN)' );
        like( $out, qr/samlStorage is Apache::Session::File, not Apache::Session::Browseable::Patroni/, 'says so' );
        ( $rc, $out ) = tool( '--llng', '--llng-ini', $env{LLNG_DEFAULTCONFFILE} );
        is( $rc, 1, '--llng-ini FILE (no PatroniUrl in this configuration: WARNING)' ) or diag $out;
    }
}

# The status class method: this process's view.
my %args = ( DataSource => $pg->dsn, UserName => 'llng', Password => $PW, PatroniUrl => $api->url );
tie my %s, 'Apache::Session::Browseable::Patroni', undef, {%args};
untie %s;
my $st = Apache::Session::Browseable::Patroni->status( \%args );
is( $st->{counters}{failovers}, 0, 'status: no failover yet' );
ok( !$st->{breaker_open}, 'status: breaker closed' );
is( $st->{pid}, $$, 'status: this process' );
like( $st->{datasource}, qr/^dbi:Pg:dbname=sessions/, 'status: the DataSource' );
my $dead = { %args, DataSource => 'dbi:Pg:dbname=sessions;host=127.0.0.1;port=' . PgServer::free_port() };
{
    local *STDERR;
    open STDERR, '>', '/dev/null';
    tie my %t, 'Apache::Session::Browseable::Patroni', undef, {%$dead};
    untie %t;
}
$st = Apache::Session::Browseable::Patroni->status($dead);
is( $st->{counters}{failovers}, 1, 'status: one failover counted' );
is( $st->{counters}{discoveries}, 1, 'status: one discovery' );
is( $st->{leader}, '127.0.0.1:' . $pg->port, 'status: the leader found' );
ok( $st->{leader_cached}, 'status: cached' );
cmp_ok( $st->{leader_age}, '<', 5, 'status: cache age in seconds' );
is_deeply( $st->{members_last_seen}, [ '127.0.0.1:' . $pg->port ], 'status: members last seen (the API lists one now)' );

# The JSON schema in the POD, and the answers above checked against it (a
# small checker: type, enum, required, properties, items).
{
    open my $fh, '<', 'bin/asbp-patroni' or die;
    my $pod = do { local $/; <$fh> };
    my ($block) = $pod =~ /^=head2 JSON schema\n.*?\n((?:  [^\n]*\n|\n)+?)(?=\S)/ms;
    my $schema = eval { decode_json( ( $block // '' ) =~ s/^  //mgr ) };
    ok( ref $schema eq 'HASH', 'the POD has a JSON schema that parses' ) or diag $@;
    cmp_ok( scalar @answers, '>=', 7, scalar(@answers) . ' answers to check' );
    for (@answers) {
        my ( $what, $r ) = @$_;
        my @err = check_schema( $schema || {}, $r, '' );
        ok( !@err, "JSON answer ($what) follows the schema" ) or diag join "\n", @err;
    }
}

sub json_type {
    my ($v) = @_;
    return 'null' unless defined $v;
    return 'boolean' if JSON::PP::is_bool($v);
    return lc ref $v eq 'hash' ? 'object' : 'array' if ref $v;
    require B;
    # A number that was printed also has a string form: numbers first (no
    # string decoded from JSON is ever used as a number here).
    my $f = B::svref_2object( \$v )->FLAGS;
    return 'integer' if $f & B::SVp_IOK();
    return ( $v == int $v ? 'integer' : 'number' ) if $f & B::SVp_NOK();
    return 'string';
}

sub check_schema {
    my ( $s, $v, $path ) = @_;
    my @err;
    my $t = json_type($v);
    if ( my $want = $s->{type} ) {
        my @w = ref $want ? @$want : ($want);
        return "$path: $t, not @w" unless grep { $_ eq $t || ( $_ eq 'number' && $t eq 'integer' ) } @w;
    }
    if ( my $e = $s->{enum} ) {
        return "$path: '" . ( $v // 'null' ) . "' not in the enum"
          unless grep { defined $v && !ref $v && json_type($_) eq ( $t eq 'integer' ? 'integer' : 'string' ) && $_ eq $v } @$e;
    }
    if ( $t eq 'object' ) {
        push @err, map { "$path: no $_" } grep { !exists $v->{$_} } @{ $s->{required} || [] };
        my $p = $s->{properties} || {};
        push @err, check_schema( $p->{$_}, $v->{$_}, "$path/$_" ) for grep { exists $v->{$_} } sort keys %$p;
    }
    if ( $t eq 'array' && $s->{items} ) {
        push @err, check_schema( $s->{items}, $v->[$_], "$path/$_" ) for 0 .. $#$v;
    }
    return @err;
}

done_testing;
