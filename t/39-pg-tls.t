# The store against a PostgreSQL server with TLS and SCRAM, the DataSource
# pinning the server (sslmode=verify-full with the test CA) and the
# authentication (channel_binding=require, require_auth with libpq 16+):
# create, read, update, delete and searchOn work, the server sees a TLS
# connection, and each pin refuses the server it is meant to refuse (md5,
# trust, a certificate for another name, a self-signed one) at once, with
# a message that says why and holds no password.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use PgServer;
use TestCA;
use Time::HiRes qw(time);
use Apache::Session::Browseable::Patroni;

my $C   = 'Apache::Session::Browseable::Patroni';
my $APP = 'Apache::Session::Browseable::Patroni';    # its fallback_application_name

TestCA::skip_all_unless_available();

my $pg = PgServer->start_or_skip( tls => 1 );
my $PW = $pg->password;
my $CA = $pg->ca_file;
my $BASE = $pg->dsn . ";sslmode=verify-full;sslrootcert=$CA";
my $DS   = "$BASE;channel_binding=require";
my $FAILOVER = 6;    # seconds; a refusal must be reported well before

# A DataSource of its own for each case (application_name=asbp-tls-N), so
# that no case reuses a connection a previous one left in the pool.
my $case = 0;
sub fresh { my ($ds) = @_; return $ds . ';application_name=asbp-tls-' . ++$case }

sub args { my ($ds) = @_; return { $pg->options, DataSource => $ds, FailoverTimeout => $FAILOVER } }

# Tries to create a session; (error or '', seconds, warnings).
sub attempt {
    my ($ds) = @_;
    my @warn;
    local $SIG{__WARN__} = sub { push @warn, $_[0] };
    my $t0 = time;
    my $ok = eval {
        tie my %s, $C, undef, args($ds);
        $s{probe} = 1;
        untie %s;
        1;
    };
    my $dt = time - $t0;
    return ( $ok ? '' : ( $@ || 'unknown error' ), $dt, join '', @warn );
}

# A refusal: the tie fails, at once, saying why, without the password.
sub refused {
    my ( $ds, $why, $name ) = @_;
    my ( $err, $dt, $warn ) = attempt($ds);
    ok( $err, "$name: the tie fails" );
    like( $err, $why, "$name: the message says why" ) or diag $err;
    unlike( $err . $warn, qr/\Q$PW\E/, "$name: no password in the message or warnings" );
    cmp_ok( $dt, '<', $FAILOVER / 2, "$name: reported without waiting for FailoverTimeout" );
}

sub accepted {
    my ( $ds, $name ) = @_;
    my ($err) = attempt($ds);
    is( $err, '', "$name: the tie works" );
}

# ---- the store over TLS + SCRAM with channel binding ---------------------
my $args = args($DS);
tie my %s, $C, undef, $args;
my $id = $s{_session_id};
$s{uid}          = 'dwho';
$s{_whatToTrace} = 'dwho';
untie %s;
is( $pg->psql("SELECT a_session->>'uid' FROM sessions WHERE id = '$id'"), 'dwho', 'created' );

tie %s, $C, $id, $args;
is( $s{uid}, 'dwho', 'read back' );
# The module's connection is open now: the server's view of it.
my $ssl = $pg->psql_super( "SELECT s.ssl, coalesce(s.version, '') FROM pg_stat_ssl s "
      . "JOIN pg_stat_activity a USING (pid) WHERE a.application_name = '$APP' "
      . "AND a.usename = '" . $pg->user . "' ORDER BY s.ssl LIMIT 1" );
like( $ssl, qr/^t\|TLSv1\.[23]\z/, "pg_stat_ssl: the module's backend uses TLS ($ssl)" );
is( $pg->psql_super( "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
          . "WHERE a.usename = '" . $pg->user . "' AND NOT s.ssl" ), 0,
    'no connection of the application user without TLS' );
$s{uid} = 'rtyler';
$s{_whatToTrace} = 'rtyler';
untie %s;

tie %s, $C, $id, $args;
is( $s{uid}, 'rtyler', 'updated' );
untie %s;

my $found = $C->searchOn( $args, '_whatToTrace', 'rtyler' );
is_deeply( [ keys %$found ], [$id], 'searchOn over TLS finds the session' );

tie %s, $C, $id, $args;
tied(%s)->delete;
untie %s;
is( $pg->psql("SELECT count(*) FROM sessions WHERE id = '$id'"), 0, 'deleted' );

# ---- channel_binding=require against a server without SCRAM -------------
$pg->set_host_auth('md5');
accepted( fresh($BASE), 'md5 server, no channel_binding (the server does accept the user)' );
refused( fresh($DS), qr/channel binding/, 'md5 server, channel_binding=require' );
$pg->set_host_auth('trust');
accepted( fresh($BASE), 'trust server, no channel_binding' );
refused( fresh($DS), qr/channel binding/, 'trust server, channel_binding=require' );
$pg->set_host_auth('scram-sha-256');
accepted( fresh($DS), 'SCRAM again, channel_binding=require' );

# ---- sslmode=verify-full against a certificate it must refuse -----------
$pg->use_certificate('wrong');
accepted( fresh( $pg->dsn . ';sslmode=require' ),
    'certificate for wrong.example.org, sslmode=require (no verification)' );
refused( fresh($DS), qr/does not match host name "127\.0\.0\.1"/,
    'certificate for wrong.example.org, sslmode=verify-full' );
$pg->use_certificate('self');
refused( fresh($DS), qr/certificate verify failed/, 'self-signed certificate, sslmode=verify-full' );
$pg->use_certificate('server');
accepted( fresh($DS), 'the CA-signed certificate again' );

# ---- require_auth=scram-sha-256 (libpq 16+) ------------------------------
# The version of the libpq this process loaded (its file is libpq.so.5.N).
sub libpq_version {
    if ( open my $fh, '<', '/proc/self/maps' ) {
        while (<$fh>) { return $1 if m{/libpq\.so\.5\.(\d+)\s*$} }
    }
    my $v = `pg_config --version 2>/dev/null` // '';
    return $v =~ /(\d+)/ ? $1 : 'unknown';
}
SKIP: {
    my $ra = "$BASE;require_auth=scram-sha-256";
    my ($err) = attempt( fresh($ra) );
    skip 'require_auth needs libpq 16 or later; the libpq in use is version '
      . libpq_version() . ' (unknown connection parameter)', 5
      if $err =~ /unknown connection parameter 'require_auth'/;
    is( $err, '', 'require_auth=scram-sha-256 against the SCRAM server: the tie works' );
    $pg->set_host_auth('md5');
    refused( fresh($ra), qr/authentication method requirement/,
        'md5 server, require_auth=scram-sha-256' );
    $pg->set_host_auth('scram-sha-256');
}

done_testing;
