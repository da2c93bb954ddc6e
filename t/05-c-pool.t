# The C unit tests of the pool (t/c/test_pool.c) need a real server: start
# a throwaway one (skipped without PostgreSQL, failed under
# ASBP_REQUIRE_DB=1) and pass its address to the program.
use strict;
use warnings;
use lib 't/lib';
use PgServer;

my $bin = 't/c/bin/test_pool';
-x $bin or do { print "1..1\nnot ok 1 - $bin is not built (run perl Makefile.PL && make)\n"; exit 1 };
my $pg = PgServer->start_or_skip;
local $ENV{ASBP_TEST_PG_HOST}     = '127.0.0.1';
local $ENV{ASBP_TEST_PG_PORT}     = $pg->port;
local $ENV{ASBP_TEST_PG_DBNAME}   = $pg->dbname;
local $ENV{ASBP_TEST_PG_USER}     = $pg->user;
local $ENV{ASBP_TEST_PG_PASSWORD} = $pg->password;
system($bin);
my $rc = $? == -1 ? 255 : $? & 127 ? 128 + ( $? & 127 ) : $? >> 8;
$pg->stop;
exit $rc;
