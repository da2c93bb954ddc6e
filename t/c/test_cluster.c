/*
 * Unit tests: asbp_cluster, the per-DataSource cluster state (leader
 * cache, circuit breaker, members, counters).  Pure state: every time is
 * a number chosen here, nothing sleeps.
 */
#include "tap.h"
#include "asbp_cluster.h"

#define T0 1000000   /* an arbitrary "now" on the injected clock */

static void test_new_free(void)
{
    asbp_cluster *c = asbp_cluster_new("dbi:Pg:host=a");
    asbp_cluster_stats st;
    ok(c != NULL, "new");
    is_str(asbp_cluster_key(c), "dbi:Pg:host=a", "key kept");
    is_int(asbp_cluster_last_failure(c), -1, "breaker closed when new");
    is_int(asbp_cluster_member_count(c), 0, "no members when new");
    is_int(asbp_cluster_members_gen(c), 0, "members generation 0 when new");
    ok(!asbp_cluster_last_leader(c, NULL, NULL, NULL), "no leader when new");
    asbp_cluster_stats_get(c, &st);
    ok(st.discoveries == 0 && st.api_failures == 0 && st.transitions == 0
       && st.leader_changes == 0 && st.failovers == 0 && st.retries == 0
       && st.breaker_skips == 0, "all counters 0 when new");
    asbp_cluster_free(c);

    c = asbp_cluster_new(NULL);
    is_str(asbp_cluster_key(c), "", "a NULL key is kept as \"\"");
    asbp_cluster_free(c);
    asbp_cluster_free(NULL);   /* no test: a crash ends the program before its plan */
}

static void test_leader_ttl(void)
{
    asbp_cluster *c = asbp_cluster_new("k");
    asbp_cluster_stats st0, st1;
    const char *host = NULL;
    int port = 0;
    int64_t age = -1, at = -1;

    is_int(asbp_cluster_set_leader(c, "10.0.0.1", 5432, T0), 0, "set_leader");
    ok(asbp_cluster_leader(c, T0, 5000, &host, &port, &age), "fresh leader is cached");
    is_str(host, "10.0.0.1", "cached host");
    is_int(port, 5432, "cached port");
    is_int(age, 0, "age 0 right after it was found");

    ok(asbp_cluster_leader(c, T0 + 4999, 5000, &host, &port, &age),
       "still cached 1 ms before the TTL");
    is_int(age, 4999, "age counts from when it was found");
    ok(!asbp_cluster_leader(c, T0 + 5000, 5000, &host, &port, &age),
       "expired exactly at the TTL");
    ok(!asbp_cluster_leader(c, T0 + 60000, 5000, NULL, NULL, NULL),
       "expired long after the TTL");
    ok(asbp_cluster_leader(c, T0 + 60000, 0x7fffffff, NULL, NULL, NULL),
       "the same leader is fresh for a longer TTL (the TTL is the caller's)");
    ok(!asbp_cluster_leader(c, T0, 0, NULL, NULL, NULL), "a TTL of 0 caches nothing");

    ok(asbp_cluster_leader(c, T0 - 100, 5000, NULL, NULL, &age),
       "a 'now' before the time it was found: fresh");
    is_int(age, 0, "and its age is 0, not negative");

    host = NULL;
    port = 0;
    ok(asbp_cluster_last_leader(c, &host, &port, &at), "last_leader kept after expiry");
    is_str(host, "10.0.0.1", "last_leader host");
    is_int(port, 5432, "last_leader port");
    is_int(at, T0, "last_leader: when it was found");
    ok(asbp_cluster_last_leader(c, NULL, NULL, NULL), "last_leader with NULL outputs");

    asbp_cluster_forget_leader(c);
    ok(!asbp_cluster_leader(c, T0, 5000, NULL, NULL, NULL), "forget: no cached leader");
    ok(!asbp_cluster_last_leader(c, NULL, NULL, NULL), "forget: no last leader either");
    asbp_cluster_stats_get(c, &st0);
    asbp_cluster_forget_leader(c);
    asbp_cluster_stats_get(c, &st1);
    ok(!asbp_cluster_leader(c, T0, 5000, NULL, NULL, NULL)
       && !asbp_cluster_last_leader(c, NULL, NULL, NULL), "forget twice: still no leader");
    ok(memcmp(&st0, &st1, sizeof st0) == 0, "forget twice: counters unchanged");

    is_int(asbp_cluster_set_leader(c, "h2", 6432, T0 + 10), 0, "set after forget");
    ok(asbp_cluster_leader(c, T0 + 20, 5000, &host, &port, &age), "new leader cached");
    is_str(host, "h2", "new host");
    is_int(age, 10, "new age");
    is_int(asbp_cluster_set_leader(c, NULL, 1, T0), -1, "a NULL host is refused");
    ok(asbp_cluster_leader(c, T0 + 20, 5000, &host, &port, NULL) && port == 6432,
       "and the cached leader is unchanged");
    is_str(host, "h2", "same host after the refusal");
    asbp_cluster_free(c);
}

static unsigned long leader_changes(const asbp_cluster *c)
{
    asbp_cluster_stats st;
    asbp_cluster_stats_get(c, &st);
    return st.leader_changes;
}

static void test_leader_changes(void)
{
    asbp_cluster *c = asbp_cluster_new("k");
    int64_t at;

    asbp_cluster_set_leader(c, "a", 5432, T0);
    is_int(leader_changes(c), 1, "the first leader counts as a change");
    asbp_cluster_set_leader(c, "a", 5432, T0 + 1000);
    is_int(leader_changes(c), 1, "same leader again: not a change");
    asbp_cluster_last_leader(c, NULL, NULL, &at);
    is_int(at, T0 + 1000, "but the time it was found is refreshed");
    asbp_cluster_set_leader(c, "a", 5433, T0 + 2000);
    is_int(leader_changes(c), 2, "another port is a change");
    asbp_cluster_set_leader(c, "b", 5433, T0 + 3000);
    is_int(leader_changes(c), 3, "another host is a change");
    asbp_cluster_set_leader(c, "B", 5433, T0 + 3000);
    is_int(leader_changes(c), 4, "host compared case-sensitively");
    asbp_cluster_forget_leader(c);
    asbp_cluster_set_leader(c, "B", 5433, T0 + 4000);
    is_int(leader_changes(c), 5, "the same leader after forget counts again");

    /* set_leader resets the breaker. */
    asbp_cluster_trip(c, T0 + 5000);
    ok(asbp_cluster_breaker_open(c, T0 + 5001, 1000, NULL), "tripped");
    asbp_cluster_set_leader(c, "B", 5433, T0 + 5002);
    ok(!asbp_cluster_breaker_open(c, T0 + 5003, 1000, NULL), "set_leader closes the breaker");
    is_int(asbp_cluster_last_failure(c), -1, "and clears the last failure");
    is_int(leader_changes(c), 5, "resetting the breaker is not a leader change");
    asbp_cluster_free(c);
}

static void test_breaker(void)
{
    asbp_cluster *c = asbp_cluster_new("k");
    int64_t rem = -1;

    ok(!asbp_cluster_breaker_open(c, T0, 1000, &rem), "closed when never tripped");
    is_int(rem, -1, "remaining_ms untouched when closed");

    asbp_cluster_trip(c, T0);
    is_int(asbp_cluster_last_failure(c), T0, "last_failure is the trip time");
    ok(asbp_cluster_breaker_open(c, T0, 1000, &rem), "open right after the trip");
    is_int(rem, 1000, "remaining: the whole delay");
    ok(asbp_cluster_breaker_open(c, T0 + 999, 1000, &rem), "open 1 ms before the delay");
    is_int(rem, 1, "remaining: 1 ms");
    rem = -1;
    ok(!asbp_cluster_breaker_open(c, T0 + 1000, 1000, &rem), "closed exactly at the delay");
    is_int(rem, -1, "remaining_ms untouched once closed");
    ok(asbp_cluster_breaker_open(c, T0 + 1000, 2000, &rem), "the delay is the caller's");
    is_int(rem, 1000, "remaining for the longer delay");
    ok(asbp_cluster_breaker_open(c, T0 + 500, 1000, NULL), "remaining_ms may be NULL");
    ok(asbp_cluster_breaker_open(c, T0 - 50, 1000, &rem), "a 'now' before the trip: open");
    is_int(rem, 1000, "and the remaining time is the whole delay");
    ok(!asbp_cluster_breaker_open(c, T0, 0, NULL), "a delay of 0 never opens");
    is_int(asbp_cluster_last_failure(c), T0, "expiry does not clear last_failure");

    asbp_cluster_trip(c, T0 + 5000);
    is_int(asbp_cluster_last_failure(c), T0 + 5000, "a new trip moves last_failure");
    ok(asbp_cluster_breaker_open(c, T0 + 5500, 1000, &rem), "open again after a new trip");
    is_int(rem, 500, "remaining from the new trip");

    asbp_cluster_reset_breaker(c);
    ok(!asbp_cluster_breaker_open(c, T0 + 5500, 1000, NULL), "reset closes it");
    is_int(asbp_cluster_last_failure(c), -1, "reset clears last_failure");
    ok(!asbp_cluster_last_leader(c, NULL, NULL, NULL), "the breaker does not touch the leader");
    asbp_cluster_free(c);
}

static void test_members(void)
{
    asbp_cluster *c = asbp_cluster_new("k");
    const char *h3[] = { "n1", "n2", "n3" };
    int p3[] = { 5432, 5433, 5434 };
    const char *h3b[] = { "n1", "n2", "n4" };
    int p3b[] = { 5432, 5433, 5435 };
    const char *h2[] = { "n1", "n2" };
    char mutable_host[] = "n1";
    const char *hm[] = { mutable_host, "n2", "n3" };
    unsigned long gen;

    is_int(asbp_cluster_set_members(c, 3, h3, p3, T0), 0, "set 3 members");
    is_int(asbp_cluster_member_count(c), 3, "3 members");
    is_int(asbp_cluster_members_gen(c), 1, "generation 1");
    is_str(asbp_cluster_member_host(c, 0), "n1", "member 0 host");
    is_int(asbp_cluster_member_port(c, 2), 5434, "member 2 port");
    ok(asbp_cluster_member_host(c, 3) == NULL, "host out of range: NULL");
    is_int(asbp_cluster_member_port(c, 3), 0, "port out of range: 0");

    is_int(asbp_cluster_set_members(c, 3, h3, p3, T0 + 1000), 0, "set the same list");
    is_int(asbp_cluster_members_gen(c), 1, "same list: generation unchanged");

    p3[1] = 6000;
    is_int(asbp_cluster_set_members(c, 3, h3, p3, T0 + 2000), 0, "one port differs");
    is_int(asbp_cluster_members_gen(c), 2, "a changed port: new generation");
    is_int(asbp_cluster_member_port(c, 1), 6000, "new port stored");

    is_int(asbp_cluster_set_members(c, 3, h3b, p3b, T0 + 3000), 0, "a host and a port differ");
    is_int(asbp_cluster_members_gen(c), 3, "a changed host: new generation");
    is_str(asbp_cluster_member_host(c, 2), "n4", "replaced host");

    is_int(asbp_cluster_set_members(c, 2, h2, p3b, T0 + 4000), 0, "a shorter list");
    is_int(asbp_cluster_members_gen(c), 4, "another count: new generation");
    is_int(asbp_cluster_member_count(c), 2, "now 2 members");
    ok(asbp_cluster_member_host(c, 2) == NULL, "the third one is gone");

    gen = asbp_cluster_members_gen(c);
    is_int(asbp_cluster_set_members(c, 0, NULL, NULL, T0 + 5000), 0,
           "an empty list is accepted");
    is_int(asbp_cluster_member_count(c), 2, "but keeps the last members");
    is_int(asbp_cluster_members_gen(c), gen, "and their generation");

    p3[1] = 5433;
    is_int(asbp_cluster_set_members(c, 3, hm, p3, T0 + 6000), 0, "set from a mutable buffer");
    mutable_host[1] = 'X';
    is_str(mutable_host, "nX", "the caller's text changed");
    is_str(asbp_cluster_member_host(c, 0), "n1", "members are copied");
    is_int(asbp_cluster_members_gen(c), gen + 1, "generation moved once");
    is_int(asbp_cluster_set_members(c, 3, h3, p3, T0 + 7000), 0, "same content, other pointers");
    is_int(asbp_cluster_members_gen(c), gen + 1, "compared by content, not by pointer");
    asbp_cluster_free(c);
}

static void test_counters(void)
{
    asbp_cluster *c = asbp_cluster_new("k");
    asbp_cluster_stats st, st2;
    int i;

    asbp_cluster_count(c, ASBP_COUNT_DISCOVERIES);
    asbp_cluster_count(c, ASBP_COUNT_DISCOVERIES);
    for (i = 0; i < 3; i++)
        asbp_cluster_count(c, ASBP_COUNT_API_FAILURES);
    for (i = 0; i < 4; i++)
        asbp_cluster_count(c, ASBP_COUNT_TRANSITIONS);
    for (i = 0; i < 5; i++)
        asbp_cluster_count(c, ASBP_COUNT_FAILOVERS);
    for (i = 0; i < 6; i++)
        asbp_cluster_count(c, ASBP_COUNT_RETRIES);
    for (i = 0; i < 7; i++)
        asbp_cluster_count(c, ASBP_COUNT_BREAKER_SKIPS);
    asbp_cluster_stats_get(c, &st);
    is_int(st.discoveries, 2, "discoveries counted");
    is_int(st.api_failures, 3, "api_failures counted");
    is_int(st.transitions, 4, "transitions counted");
    is_int(st.failovers, 5, "failovers counted");
    is_int(st.retries, 6, "retries counted");
    is_int(st.breaker_skips, 7, "breaker_skips counted");
    is_int(st.leader_changes, 0, "leader_changes not counted by asbp_cluster_count");

    st.discoveries = 999;
    asbp_cluster_stats_get(c, &st2);
    is_int(st2.discoveries, 2, "stats_get returns a copy");

    asbp_cluster_trip(c, T0);
    asbp_cluster_set_members(c, 1, (const char *const[]){ "x" }, (const int[]){ 1 }, T0);
    asbp_cluster_forget_leader(c);
    asbp_cluster_stats_get(c, &st2);
    ok(st2.discoveries == 2 && st2.api_failures == 3 && st2.transitions == 4
       && st2.failovers == 5 && st2.retries == 6 && st2.breaker_skips == 7
       && st2.leader_changes == 0, "trip, members and forget count nothing");
    asbp_cluster_free(c);
}

static void test_null(void)
{
    asbp_cluster_stats st;
    int64_t rem = -7;
    const char *host = "untouched";

    is_str(asbp_cluster_key(NULL), "", "key(NULL) is \"\"");
    ok(!asbp_cluster_leader(NULL, T0, 5000, &host, NULL, NULL), "leader(NULL): none");
    is_str(host, "untouched", "leader(NULL) leaves the outputs alone");
    ok(!asbp_cluster_last_leader(NULL, &host, NULL, NULL), "last_leader(NULL): none");
    asbp_cluster_forget_leader(NULL);
    asbp_cluster_trip(NULL, T0);
    asbp_cluster_reset_breaker(NULL);
    asbp_cluster_count(NULL, ASBP_COUNT_RETRIES);
    /* (no test for these four: a crash ends the program before its plan) */
    ok(!asbp_cluster_breaker_open(NULL, T0, 1000, &rem), "breaker_open(NULL): closed");
    is_int(rem, -7, "remaining untouched");
    is_int(asbp_cluster_last_failure(NULL), -1, "last_failure(NULL): -1");
    is_int(asbp_cluster_member_count(NULL), 0, "member_count(NULL): 0");
    is_int(asbp_cluster_members_gen(NULL), 0, "members_gen(NULL): 0");
    ok(asbp_cluster_member_host(NULL, 0) == NULL, "member_host(NULL): NULL");
    is_int(asbp_cluster_member_port(NULL, 0), 0, "member_port(NULL): 0");
    memset(&st, 0xff, sizeof st);
    asbp_cluster_stats_get(NULL, &st);
    ok(st.discoveries == 0 && st.api_failures == 0 && st.transitions == 0
       && st.leader_changes == 0 && st.failovers == 0 && st.retries == 0
       && st.breaker_skips == 0, "stats_get(NULL): zeros");
}

/* The synchronous standby (BrowseFromStandby): named, none, stale,
 * forgotten, replaced; it leaves the leader and the counters alone. */
static void test_standby(void)
{
    asbp_cluster *c = asbp_cluster_new("k");
    asbp_cluster_stats st;
    const char *host = "untouched";
    int port = -1;

    is_int(asbp_cluster_standby(c, T0, 5000, &host, &port), -1, "no standby known when new");
    is_str(host, "untouched", "... outputs left alone");
    is_int(asbp_cluster_set_standby(c, "10.0.0.2", 5433, T0), 0, "set a standby");
    is_int(asbp_cluster_standby(c, T0 + 4999, 5000, &host, &port), 1, "known within the ttl");
    is_str(host, "10.0.0.2", "... its host");
    is_int(port, 5433, "... its port");
    is_int(asbp_cluster_standby(c, T0 + 5000, 5000, NULL, NULL), -1, "stale at the ttl: ask again");
    is_int(asbp_cluster_set_standby(c, NULL, 5433, T0 + 6000), 0, "an answer naming none");
    host = "untouched";
    is_int(asbp_cluster_standby(c, T0 + 6000, 5000, &host, &port), 0, "known: none");
    is_str(host, "untouched", "... no host given");
    is_int(asbp_cluster_set_standby(c, "10.0.0.3", 6000, T0 + 7000), 0, "another standby");
    is_int(asbp_cluster_standby(c, T0 + 7000, 5000, &host, &port), 1, "the new one is known");
    ok(!strcmp(host, "10.0.0.3") && port == 6000, "... with its address");
    ok(!asbp_cluster_standby_forgotten(c), "not forgotten while named");
    asbp_cluster_forget_standby(c, T0 + 8000);
    ok(asbp_cluster_standby_forgotten(c), "forgotten: said so");
    is_int(asbp_cluster_standby(c, T0 + 12999, 5000, NULL, NULL), 0,
           "forgotten: none until the ttl passes");
    is_int(asbp_cluster_standby(c, T0 + 13000, 5000, NULL, NULL), -1,
           "... then unknown (ask the API again)");
    asbp_cluster_set_standby(c, NULL, 0, T0 + 14000);
    ok(!asbp_cluster_standby_forgotten(c), "an answer clears the forgotten mark");
    ok(!asbp_cluster_standby_forgotten(NULL), "standby_forgotten(NULL): 0");
    ok(!asbp_cluster_last_leader(c, NULL, NULL, NULL), "the standby is not a leader");
    asbp_cluster_stats_get(c, &st);
    ok(st.leader_changes == 0 && st.discoveries == 0, "the standby counts nothing");
    is_int(asbp_cluster_standby(NULL, T0, 5000, NULL, NULL), -1, "standby(NULL): unknown");
    asbp_cluster_forget_standby(NULL, T0);
    asbp_cluster_free(c);   /* frees the host (valgrind) */
    c = asbp_cluster_new("k");
    asbp_cluster_set_standby(c, "h", 1, T0);
    asbp_cluster_free(c);
}

int main(void)
{
    test_new_free();
    test_leader_ttl();
    test_leader_changes();
    test_breaker();
    test_members();
    test_counters();
    test_null();
    test_standby();
    return tap_done();
}
