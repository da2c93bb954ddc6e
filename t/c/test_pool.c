/* Unit tests: the pool of idle connections (asbp_pool) and the
 * connection checks it relies on, on a real PostgreSQL server (started by
 * t/05-c-pool.t, which passes its address in ASBP_TEST_PG_*): keep and take
 * by key, the idle limit per key, a connection that is broken, busy, in a
 * transaction, closed by the server or opened by another process is never
 * handed out, drop and free.  Also the row stream of asbp_conn (a first
 * row, the end, an error, the connection reused after both). */
#include "tap.h"
#include "asbp_pool.h"
#include "asbp_pid.h"

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *keys[] = { "host", "port", "dbname", "user", "password",
                              "connect_timeout", NULL };
static const char *values[7];
static asbp_connparams params = { keys, values, "test server" };
static asbp_clock clk = ASBP_CLOCK_INIT;

/* The limits of the connections given back (asbp_pool_checkin). */
static asbp_pool_limits lim = { 8, 0 };

static asbp_pool *pool_new(size_t max_idle)
{
    lim.max_idle = max_idle;
    lim.idle_timeout_ms = 0;
    return asbp_pool_new();
}

static int64_t deadline(void) { return asbp_clock_now_ms(&clk) + 10000; }

static asbp_conn *open_conn(void)
{
    asbp_conn *c = NULL;
    asbp_err e;
    asbp_err_clear(&e);
    if (asbp_conn_open(&params, &clk, deadline(), NULL, &c, &e) != ASBP_OK)
        tap_diag("cannot connect: %s", e.msg);
    return c;
}

/* Runs sql; copies the first value of its first row into out ("" when it
 * has no row).  Returns the code. */
static asbp_code run_sql(asbp_conn *c, const char *sql, char *out, size_t n)
{
    asbp_query q = { sql, 0, 0, NULL, NULL };
    PGresult *r = NULL;
    asbp_err e;
    asbp_code rc;
    asbp_err_clear(&e);
    rc = asbp_conn_pipeline(c, &q, 1, &r, &clk, deadline(), NULL, &e);
    if (rc) {
        tap_diag("%s: %s", sql, e.msg);
        if (out)
            snprintf(out, n, "%.*s", (int)n - 1, e.msg);
    } else if (out) {
        snprintf(out, n, "%.*s", (int)n - 1, PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
    }
    PQclear(r);
    return rc;
}

static int works(asbp_conn *c)
{
    char v[64];
    return c && run_sql(c, "SELECT 40 + 2", v, sizeof v) == ASBP_OK && strcmp(v, "42") == 0;
}

static void keep_and_take(void)
{
    asbp_pool *p = pool_new(2);
    asbp_conn *c1 = open_conn(), *c2 = open_conn(), *c3 = open_conn();

    ok(p && c1 && c2 && c3, "a pool and three connections");
    ok(asbp_pool_checkout(p, "k1", 0) == NULL, "an empty pool has nothing to hand out");
    asbp_pool_checkin(p, "k1", c1, &lim, 0);
    is_int(asbp_pool_idle_count(p), 1, "kept: one idle connection");
    ok(asbp_pool_idle_at(p, 0) == c1 && asbp_pool_idle_at(p, 1) == NULL,
       "asbp_pool_idle_at lists it");
    ok(asbp_pool_checkout(p, "k2", 0) == NULL, "another key has nothing");
    ok(asbp_pool_checkout(p, "k1", 0) == c1, "the key gives its connection back");
    is_int(asbp_pool_idle_count(p), 0, "taken: no idle connection left");
    ok(works(c1), "the connection taken works");

    /* The idle limit is per key: the oldest connection of k1 is freed. */
    asbp_pool_checkin(p, "k1", c1, &lim, 0);
    asbp_pool_checkin(p, "k1", c2, &lim, 0);
    asbp_pool_checkin(p, "k1", c3, &lim, 0);
    is_int(asbp_pool_idle_count(p), 2, "at most 2 idle connections for a key");
    ok(asbp_pool_checkout(p, "k1", 0) == c3, "the last one given back comes first");
    ok(asbp_pool_checkout(p, "k1", 0) == c2, "then the one before");
    ok(asbp_pool_checkout(p, "k1", 0) == NULL, "the oldest, over the limit, was closed");
    c1 = c3;
    asbp_pool_checkin(p, "k1", c1, &lim, 0);
    asbp_pool_checkin(p, "k2", c2, &lim, 0);
    is_int(asbp_pool_idle_count(p), 2, "two keys, one idle connection each");

    asbp_pool_drop(p, "k1");
    is_int(asbp_pool_idle_count(p), 1, "drop(k1) frees the connections of k1 only");
    ok(asbp_pool_checkout(p, "k1", 0) == NULL, "k1 is empty");
    asbp_pool_drop(p, NULL);
    is_int(asbp_pool_idle_count(p), 0, "drop(NULL) frees every idle connection");

    asbp_pool_checkin(p, "k1", open_conn(), &lim, 0);
    asbp_pool_checkin(p, "k2", open_conn(), &lim, 0);
    asbp_pool_free(p);   /* frees both (valgrind checks) */
    ok(1, "a pool with idle connections freed");

    asbp_pool_checkin(NULL, "k1", open_conn(), &lim, 0);   /* freed */
    asbp_pool_checkin(p = pool_new(1), "k1", NULL, &lim, 0);
    ok(asbp_pool_checkout(NULL, "k1", 0) == NULL && asbp_pool_idle_count(p) == 0,
       "no pool, no connection: nothing kept, nothing handed out");
    asbp_pool_free(p);
}

/* PoolMaxIdle: the limits come with each connection given back. */
static void limits(void)
{
    asbp_pool *p = pool_new(3);
    asbp_pool_limits none = { 0, 0 }, one = { 1, 0 };
    asbp_conn *c[3];
    int i;

    for (i = 0; i < 3; i++)
        c[i] = open_conn();
    for (i = 0; i < 3; i++)
        asbp_pool_checkin(p, "k", c[i], &lim, 0);
    is_int(asbp_pool_idle_count(p), 3, "3 kept under a limit of 3");
    c[0] = open_conn();
    asbp_pool_checkin(p, "k", c[0], &one, 0);
    is_int(asbp_pool_idle_count(p), 1, "given back under a limit of 1: the key keeps 1");
    ok(asbp_pool_checkout(p, "k", 0) == c[0],
       "... the one just given back (the older ones were closed)");
    asbp_conn_free(c[0]);
    asbp_pool_checkin(p, "k", open_conn(), &lim, 0);
    asbp_pool_checkin(p, "k", open_conn(), &lim, 0);
    asbp_pool_checkin(p, "k2", open_conn(), &lim, 0);
    asbp_pool_checkin(p, "k", open_conn(), &none, 0);
    is_int(asbp_pool_idle_count(p), 1,
           "given back under a limit of 0 (PoolMaxIdle 0): not kept, the key emptied");
    c[0] = asbp_pool_checkout(p, "k2", 0);
    ok(c[0] != NULL, "... another key keeps its own");
    asbp_conn_free(c[0]);
    asbp_pool_checkin(NULL, "k", open_conn(), &lim, 0);
    asbp_pool_checkin(p, "k", open_conn(), NULL, 0);
    is_int(asbp_pool_idle_count(p), 0, "no pool or no limits: not kept");
    asbp_pool_free(p);
}

/* PoolIdleTimeout: by the caller's time, at the next pool operation. */
static void idle_timeout(void)
{
    asbp_pool *p = pool_new(4);
    asbp_pool_limits short_t = { 4, 1000 }, long_t = { 4, 5000 }, forever = { 4, 0 };
    asbp_conn *a = open_conn(), *b = open_conn(), *c = open_conn();

    asbp_pool_checkin(p, "k", a, &short_t, 10000);
    asbp_pool_checkin(p, "k", b, &long_t, 10000);
    asbp_pool_checkin(p, "k2", c, &forever, 10000);
    is_int(asbp_pool_idle_count(p), 3, "three idle connections");
    is_int(asbp_pool_expire(p, 10999), 0, "none expired before its timeout");
    ok(asbp_pool_checkout(p, "k2", 11000) == c, "a checkout at 1 s (k2)");
    is_int(asbp_pool_idle_count(p), 1,
           "... closed the one of k that was idle for its 1 s timeout; the 5 s one is left");
    asbp_pool_checkin(p, "k2", c, &forever, 11000);
    ok(asbp_pool_checkout(p, "k", 14999) == b, "the 5 s one is handed out before 5 s");
    asbp_pool_checkin(p, "k", b, &long_t, 14999);
    is_int(asbp_pool_expire(p, 19998), 0, "its idle time counts from when it was given back");
    is_int(asbp_pool_expire(p, 19999), 1, "... and it is closed after 5 s");
    ok(asbp_pool_checkout(p, "k", 20000) == NULL, "k is empty");
    is_int(asbp_pool_expire(p, INT64_MAX - 1), 0, "timeout 0: kept forever");
    c = asbp_pool_checkout(p, "k2", INT64_MAX - 1);
    ok(works(c), "... and handed out, working");
    asbp_conn_free(c);
    asbp_pool_free(p);
}

static void never_handed_out(void)
{
    asbp_pool *p = pool_new(4);
    asbp_conn *c, *killer = open_conn();
    asbp_query rb = { "ROLLBACK", 0, 0, NULL, NULL };
    asbp_err e;
    char pid[32], sql[128], v[64];

    asbp_err_clear(&e);
    c = open_conn();
    asbp_conn_set_broken(c);
    asbp_pool_checkin(p, "k", c, &lim, 0);
    is_int(asbp_pool_idle_count(p), 0, "a broken connection is not kept");

    c = open_conn();
    ok(run_sql(c, "BEGIN", NULL, 0) == ASBP_OK && asbp_conn_in_transaction(c),
       "a connection inside a transaction");
    asbp_pool_checkin(p, "k", c, &lim, 0);
    is_int(asbp_pool_idle_count(p), 0, "... is not kept");

    c = open_conn();
    run_sql(c, "BEGIN", NULL, 0);
    ok(asbp_conn_send_nowait(c, &rb, 1, &clk, deadline(), &e) == ASBP_OK
       && asbp_conn_pending(c) && !asbp_conn_in_transaction(c),
       "a ROLLBACK sent without waiting: no transaction any more");
    asbp_pool_checkin(p, "k", c, &lim, 0);
    is_int(asbp_pool_idle_count(p), 1, "... the connection is kept");
    ok(asbp_pool_checkout(p, "k", 0) == c, "... and handed out");
    ok(works(c) && !asbp_conn_pending(c), "its next statement reads the ROLLBACK's answer");

    /* The server ends an idle connection (pg_terminate_backend waits for
     * the backend to be gone): the pool must not hand it out. */
    ok(run_sql(c, "SELECT pg_backend_pid()", pid, sizeof pid) == ASBP_OK, "backend pid %s", pid);
    asbp_pool_checkin(p, "k", c, &lim, 0);
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%s, 10000)", pid);
    ok(run_sql(killer, sql, v, sizeof v) == ASBP_OK && strcmp(v, "t") == 0,
       "the server ended the idle connection");
    is_int(asbp_pool_idle_count(p), 1, "it is still in the pool");
    ok(asbp_pool_checkout(p, "k", 0) == NULL, "... but never handed out");
    is_int(asbp_pool_idle_count(p), 0, "... and freed");

    asbp_conn_free(killer);
    asbp_pool_free(p);
}

static void foreign_pid(void)
{
    asbp_pool *p = pool_new(4);
    asbp_conn *held = open_conn();
    pid_t kid;
    int status = -1;

    asbp_pool_checkin(p, "k", open_conn(), &lim, 0);
    asbp_pool_checkin(p, "k2", open_conn(), &lim, 0);
    fflush(stdout);
    kid = fork();
    if (kid == 0) {
        /* Child: nothing of the parent's may be handed out or kept. */
        int bad = 0;
        if (asbp_pool_checkout(p, "k", 0) != NULL)
            bad |= 1;
        asbp_pool_checkin(p, "k", held, &lim, 0);   /* abandoned, not kept */
        if (asbp_pool_idle_count(p) != 1)  /* only k2's is left */
            bad |= 2;
        asbp_pool_after_fork(p);
        if (asbp_pool_idle_count(p) != 0)
            bad |= 4;
        asbp_pool_free(p);
        _exit(bad);
    }
    ok(kid > 0 && waitpid(kid, &status, 0) == kid, "a child process ran");
    ok(WIFEXITED(status) && (WEXITSTATUS(status) & 1) == 0,
       "a connection of the parent is never handed out in the child");
    ok(WIFEXITED(status) && (WEXITSTATUS(status) & 2) == 0,
       "the child's checkin of a parent's connection does not keep it");
    ok(WIFEXITED(status) && (WEXITSTATUS(status) & 4) == 0,
       "asbp_pool_after_fork empties the child's pool");
    ok(works(held), "the parent's connections still work (the child sent nothing on them)");
    asbp_conn_free(held);
    held = asbp_pool_checkout(p, "k2", 0);
    ok(works(held), "... pooled ones too");
    asbp_conn_free(held);
    asbp_pool_free(p);
}

static void streams(void)
{
    asbp_pool *p = pool_new(2);
    asbp_conn *c = open_conn();
    const char *pv[1] = { "3" };
    asbp_stream_query q = { "SELECT i, CASE WHEN i = 2 THEN NULL ELSE 'v' || i END "
                            "FROM generate_series(1, $1::int) i", 1, pv, 0, "test" };
    asbp_row *row = NULL;
    asbp_err e;
    size_t len = 99;
    int n = 0, nulls = 0;

    asbp_err_clear(&e);
    ok(asbp_conn_stream_open(c, &q, &clk, 10000, &row, &e) == ASBP_OK && row,
       "a stream opens with its first row");
    is_str(asbp_row_value(row, 0, &len), "1", "first column of row 1");
    is_int(len, 1, "its length");
    ok(asbp_row_value(row, 5, &len) == NULL && len == 0, "past the last column: NULL");
    asbp_pool_checkin(p, "k", c, &lim, 0);
    is_int(asbp_pool_idle_count(p), 0, "a connection in the middle of a stream is not kept");

    c = open_conn();
    q.max_prepared = 4;   /* prepared (in the round trip of the first run) */
    while (row) {
        n++;
        nulls += asbp_row_value(row, 1, NULL) == NULL;
        asbp_row_free(row);
        row = NULL;
        if (n == 1)
            ok(asbp_conn_stream_open(c, &q, &clk, 10000, &row, &e) == ASBP_OK && row,
               "a prepared stream opens");
        else if (asbp_conn_stream_next(c, &row, &e) != ASBP_OK)
            break;
    }
    is_int(n, 4, "the prepared stream gives its 3 rows, then the end");
    is_int(nulls, 1, "a SQL NULL reads as NULL");
    ok(asbp_conn_reusable(c), "after the end the connection can go back to the pool");
    ok(works(c), "... and runs a pipeline");
    ok(asbp_conn_stream_open(c, &q, &clk, 10000, &row, &e) == ASBP_OK && row,
       "the prepared statement runs again");
    is_int(asbp_conn_prepare_count(c), 1, "... prepared once on the connection");
    asbp_row_free(row);
    asbp_conn_free(c);   /* stops the stream early */

    c = open_conn();
    q.sql = "SELECT * FROM no_such_table";
    q.nparams = 0;
    q.max_prepared = 0;
    row = NULL;
    is_int(asbp_conn_stream_open(c, &q, &clk, 10000, &row, &e), ASBP_E_QUERY,
           "a failing statement");
    like_str(e.msg, "no_such_table", "... its message");
    is_str(e.sqlstate, "42P01", "... its SQLSTATE");
    ok(row == NULL && asbp_conn_reusable(c), "the connection is read back to idle");
    q.sql = "SELECT 1 WHERE false";
    ok(asbp_conn_stream_open(c, &q, &clk, 10000, &row, &e) == ASBP_OK && row == NULL,
       "an empty result: no first row");
    ok(asbp_conn_reusable(c), "the connection is idle");
    ok(works(c), "... and works");
    asbp_conn_free(c);
    asbp_pool_free(p);
}

/* Prepared statements are named after their text: the same statement has
 * the same name on every connection, two statements never share one (with
 * a per-connection counter, a DELETE prepared first on one session and a
 * SELECT on another were both "asbp_0": behind a transaction pooler, one
 * client's EXECUTE could run the other's statement). */
static void statement_names(void)
{
    asbp_conn *a = open_conn(), *b = open_conn(), *c = open_conn();
    const char *pv[1] = { "1" };
    asbp_query qa = { "SELECT $1::int + 1", 1, 1, pv, NULL };
    asbp_query qb = { "SELECT $1::int + 2", 1, 1, pv, NULL };
    const char *list = "SELECT string_agg(name, ',' ORDER BY name) FROM pg_prepared_statements";
    char na[128] = "", nb[128] = "", nc[128] = "";
    PGresult *r = NULL;
    asbp_err e;
    asbp_err_clear(&e);
    ok(asbp_conn_pipeline(a, &qa, 1, &r, &clk, deadline(), NULL, &e) == ASBP_OK, "A prepared on one connection");
    PQclear(r);
    ok(asbp_conn_pipeline(b, &qb, 1, &r, &clk, deadline(), NULL, &e) == ASBP_OK, "B prepared on another");
    PQclear(r);
    ok(asbp_conn_pipeline(c, &qa, 1, &r, &clk, deadline(), NULL, &e) == ASBP_OK, "A prepared on a third");
    PQclear(r);
    run_sql(a, list, na, sizeof na);
    run_sql(b, list, nb, sizeof nb);
    run_sql(c, list, nc, sizeof nc);
    like_str(na, "asbp_", "the statement's name: %s", na);
    ok(strcmp(na, nb) != 0, "two statements, each first on its connection, have two names (%s, %s)", na, nb);
    is_str(nc, na, "the same statement has the same name on another connection");
    asbp_conn_free(a);
    asbp_conn_free(b);
    asbp_conn_free(c);
}

int main(void)
{
    const char *port = getenv("ASBP_TEST_PG_PORT");
    if (!port || !*port) {
        printf("1..0 # SKIP no server given (run through t/05-c-pool.t)\n");
        return 0;
    }
    values[0] = getenv("ASBP_TEST_PG_HOST") ? getenv("ASBP_TEST_PG_HOST") : "127.0.0.1";
    values[1] = port;
    values[2] = getenv("ASBP_TEST_PG_DBNAME");
    values[3] = getenv("ASBP_TEST_PG_USER");
    values[4] = getenv("ASBP_TEST_PG_PASSWORD");
    values[5] = "10";
    keep_and_take();
    limits();
    idle_timeout();
    never_handed_out();
    foreign_pid();
    streams();
    statement_names();
    return tap_done();
}
