# The C unit tests of the password's copies in memory (t/c/test_secrets.c).
# With a throwaway PostgreSQL (its role gets a distinctive password) the
# program connects once, so route and pool keys exist; without one it runs
# with a refused connection (failed under ASBP_REQUIRE_DB instead).
# The server trusts TCP connections: with SCRAM, libpq keeps its own copy
# of the password in the exchange's state and frees it without wiping it
# (libpq 15), out of this module's reach; the scan would find it.
use strict;
use warnings;
use lib 't/lib';
use PgServer;

my $bin = 't/c/bin/test_secrets';
-x $bin or do { print "1..1\nnot ok 1 - $bin is not built (run perl Makefile.PL && make)\n"; exit 1 };
my ( $ok, $why ) = PgServer::available();
my $pg;
if ($ok) {
    $pg = eval { PgServer->new( password => 'asbp-Pw-Zq8-Wx3-Nv7-Hm2Ke6-Ty4Rb1-distinct', host_auth => 'trust' ) }
      or $why = "cannot start PostgreSQL: $@";
}
if ( !$pg && PgServer::required() ) {
    print "1..1\nnot ok 1 - PostgreSQL is required here (ASBP_REQUIRE_DB set): $why\n";
    exit 1;
}
print "# no server ($why): the program runs without one\n" unless $pg;
local $ENV{ASBP_TEST_PG_HOST}     = $pg ? '127.0.0.1'   : '';
local $ENV{ASBP_TEST_PG_PORT}     = $pg ? $pg->port     : '';
local $ENV{ASBP_TEST_PG_DBNAME}   = $pg ? $pg->dbname   : '';
local $ENV{ASBP_TEST_PG_USER}     = $pg ? $pg->user     : '';
local $ENV{ASBP_TEST_PG_PASSWORD} = $pg ? $pg->password : '';
system($bin);
my $rc = $? == -1 ? 255 : $? & 127 ? 128 + ( $? & 127 ) : $? >> 8;
$pg->stop if $pg;
exit $rc;
