/*
 * The retry loop of one operation (asbp_source_run): attempt, and on a
 * failover-class error find the leader (asbp_source_failover), watching
 * the members for a promotion while the cluster has none; on a
 * retry-class error try again on the same node, a few times.  A pooled
 * connection that the server has ended (a terminated backend, an
 * idle_session_timeout, a restart) is first replaced, once, by a new
 * connection to the same target: no failover for that.
 */
#include "asbp_source.h"
#include "asbp_source_int.h"

#include "asbp_pid.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define RETRY_MAX 3          /* retry-class errors, per operation */
#define RETRY_STEP_MS 10     /* wait before retry n: n times this */
#define BACKOFF_FIRST_MS 20  /* wait while no leader: doubles up to ... */
#define BACKOFF_MAX_MS 200
#define WATCH_POLL_MS 10     /* between two rounds of the watches */

typedef struct run_state {
    asbp_source *s;
    int64_t start_ms;
    int64_t deadline;        /* start + FailoverTimeout */
    int failovers, retries;
    int pooled;              /* the attempt's connection came from the pool */
    int replaced;            /* a stale pooled connection was replaced */
    int64_t backoff;         /* 0: reconnect at once */
    asbp_err first;          /* the error that started the failover */
    asbp_err last;           /* the latest failover-class error */
} run_state;

static void sleep_ms(int64_t ms)
{
    struct timespec ts;
    if (ms <= 0)
        return;
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* One call of fn, on *conn or, when NULL, on a connection acquired now. */
static asbp_code attempt(run_state *rs, asbp_conn **conn, asbp_attempt_fn fn,
                         void *ud, asbp_err *err)
{
    asbp_code rc = ASBP_OK;
    rs->pooled = 0;
    if (!*conn)
        rc = asbp_source_acquire_from(rs->s, rs->deadline, conn, &rs->pooled, err);
    if (rc == ASBP_OK)
        rc = fn(ud, *conn, err);
    return rc;
}

static void log_recovered(const run_state *rs, const asbp_conn *conn)
{
    const asbp_source *s = rs->s;
    asbp_log(asbp_ctx_logger(s->ctx), ASBP_LOG_INFO,
             "DataSource %s: reconnected to %s, operation succeeded after "
             "%lld ms (first error: %s)", asbp_dsn_display(s->dsn),
             asbp_conn_server(conn), (long long)(asbp_ctx_now(s->ctx) - rs->start_ms),
             rs->first.msg);
}

/* Drops a connection that failed, with the idle ones to the same node
 * (they are suspect too). */
static void drop_conn(asbp_source *s, asbp_conn **conn)
{
    if (!*conn)
        return;
    asbp_pool_drop(asbp_ctx_pool(s->ctx), asbp_conn_key(*conn));
    asbp_conn_free(*conn);
    *conn = NULL;
}

/* Before retry n on the same node: 1 after the wait, 0 to give up. */
static int retry_pause(run_state *rs)
{
    asbp_source *s = rs->s;
    rs->retries++;
    if (rs->retries > RETRY_MAX
        || asbp_ctx_now(s->ctx) + RETRY_STEP_MS * rs->retries >= rs->deadline)
        return 0;
    asbp_cluster_count(s->cluster, ASBP_COUNT_RETRIES);
    sleep_ms(RETRY_STEP_MS * rs->retries);
    return 1;
}

/*
 * A connection taken from the pool for this attempt was lost (the server
 * ended it while it was idle, and the check at checkout did not see it
 * yet: the goodbye still in flight, or a host that forgot the connection
 * and resets it): 1 when the attempt may be redone at once on a new
 * connection to the same target, without a failover.  Once per operation:
 * a second loss is a server in trouble (failover).  A timeout is not a
 * loss: a frozen server would cost the budget twice.
 */
static int replace_stale(run_state *rs, asbp_conn **conn, const asbp_err *err)
{
    asbp_source *s = rs->s;
    if (!rs->pooled || rs->replaced || err->code != ASBP_E_IO
        || err->eclass != ASBP_EC_FAILOVER)
        return 0;
    rs->replaced = 1;
    ASBP_TRACE(asbp_ctx_logger(s->ctx), "pid %ld: DataSource %s: pooled connection to "
               "%s ended by the server (%s): replaced by a new one",
               (long)asbp_pid(), asbp_dsn_display(s->dsn), asbp_conn_server(*conn), err->msg);
    drop_conn(s, conn);
    return 1;
}

/*
 * Too many connections (SQLSTATE 53300: max_connections, or the CONNECTION
 * LIMIT of the role or the database) after the retries: says what it
 * means and what fixes it.  Not a wrong node: no failover, no discovery.
 */
static void explain_full(const asbp_source *s, asbp_err *err)
{
    char msg[ASBP_ERR_MSG_MAX];
    if (strcmp(err->sqlstate, "53300") != 0)
        return;
    snprintf(msg, sizeof msg, "%s", err->msg);
    asbp_err_set(err, err->code, err->eclass,
                 "DataSource %s: the server has no connection slot left (too many "
                 "connections: max_connections, or the CONNECTION LIMIT of the role or "
                 "the database): raise it, lower PoolMaxIdle (idle connections each "
                 "process keeps), or put PgBouncer in front of PostgreSQL; %s",
                 asbp_dsn_display(s->dsn), msg);
    memcpy(err->sqlstate, "53300", 6);
}

static asbp_code out_of_time(const run_state *rs, asbp_err *err)
{
    *err = rs->last;
    asbp_err_prefix(err, "no writable leader within FailoverTimeout (%lld ms) for "
                    "DataSource %s; last error", (long long)rs->s->failover_ms,
                    asbp_dsn_display(rs->s->dsn));
    return err->code;
}

/* Waits until until_ms for a member to be promoted: 1 and the member (its
 * watch connection now the caller's) when one left recovery, else 0. */
static int wait_for_promotion(asbp_source *s, int64_t until_ms, const char **host,
                              int *port, asbp_conn **conn)
{
    asbp_route r;
    if (!s->nurls) {
        sleep_ms(until_ms - asbp_ctx_now(s->ctx));
        return 0;
    }
    asbp_source_route(s, &r);
    asbp_watches_open(&s->watches, &r, s->cluster, s->ctx);
    for (;;) {
        int64_t left;
        if (asbp_watches_poll(&s->watches, s->ctx, host, port, conn))
            return 1;
        left = until_ms - asbp_ctx_now(s->ctx);
        if (left <= 0)
            return 0;
        sleep_ms(left < WATCH_POLL_MS ? left : WATCH_POLL_MS);
    }
}

/* The backoff wait, watching for a promotion: 1 when a member was
 * promoted (it is the leader now; *conn its connection when it could be
 * pooled under the new route). */
static int await_promotion(run_state *rs, int64_t now, asbp_conn **conn)
{
    asbp_source *s = rs->s;
    const char *ph;
    int pp;
    asbp_conn *wc = NULL;
    int64_t until = now + (rs->backoff < rs->deadline - now ? rs->backoff : rs->deadline - now);

    rs->backoff = rs->backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : rs->backoff * 2;
    if (!wait_for_promotion(s, until, &ph, &pp, &wc))
        return 0;
    asbp_log(asbp_ctx_logger(s->ctx), ASBP_LOG_INFO,
             "DataSource %s: member %s:%d was promoted, using it as the leader",
             asbp_dsn_display(s->dsn), ph, pp);
    asbp_cluster_set_leader(s->cluster, ph, pp, asbp_ctx_now(s->ctx));
    s->use_members = 0;
    if (asbp_source_adopt(s, wc) == 0)
        *conn = wc;
    else
        asbp_conn_free(wc);
    return 1;
}

/*
 * When the leader the API named is a member with an open watch connection
 * out of recovery, makes that connection the operation's (pooled under the
 * route's key): saves a connection set-up (a fork and an authentication on
 * the server) at the moment it matters.
 */
static void handover_watch(asbp_source *s, asbp_conn **conn)
{
    asbp_route r;
    asbp_conn *c;
    if (*conn || !asbp_watches_count(&s->watches))
        return;
    asbp_source_route(s, &r);
    if (!r.leader_host)
        return;
    c = asbp_watches_take(&s->watches, s->ctx, r.leader_host, r.leader_port);
    if (c && asbp_source_adopt(s, c) == 0)
        *conn = c;
    else
        asbp_conn_free(c);
}

/* After a failover-class error: ASBP_OK when the next attempt can go (a
 * leader found or promoted), else the error to return. */
static asbp_code find_leader(run_state *rs, asbp_conn **conn, asbp_err *err)
{
    asbp_source *s = rs->s;
    for (;;) {
        asbp_err ferr;
        asbp_code rc;
        int64_t now = asbp_ctx_now(s->ctx);
        if (now >= rs->deadline)
            return out_of_time(rs, err);
        if (rs->backoff && await_promotion(rs, now, conn))
            return ASBP_OK;
        asbp_err_clear(&ferr);
        rc = asbp_source_failover(s, rs->deadline, &ferr);
        if (rc == ASBP_OK) {
            /* The API names a leader we are already watching: that
             * connection is open and authenticated, use it. */
            handover_watch(s, conn);
            return ASBP_OK;
        }
        if (ferr.eclass != ASBP_EC_FAILOVER) {
            *err = ferr;
            return rc;
        }
        /* "Patroni API not asked" (no time left) tells nothing new: the
         * error of the last answer (or connection) is the one to report. */
        if (rc != ASBP_E_TIMEOUT)
            rs->last = ferr;
        if (!rs->backoff)
            rs->backoff = BACKOFF_FIRST_MS;
    }
}

static asbp_code run_inner(asbp_source *s, asbp_conn **conn, int64_t start_ms,
                           asbp_attempt_fn fn, void *ud, asbp_err *err)
{
    run_state rs;
    memset(&rs, 0, sizeof rs);
    rs.s = s;
    rs.start_ms = start_ms;
    rs.deadline = start_ms + s->failover_ms;
    asbp_err_clear(&rs.first);
    asbp_err_clear(&rs.last);
    for (;;) {
        asbp_code rc = attempt(&rs, conn, fn, ud, err);
        if (rc == ASBP_OK) {
            if (rs.failovers)
                log_recovered(&rs, *conn);
            return ASBP_OK;
        }
        if (err->eclass != ASBP_EC_FAILOVER && err->eclass != ASBP_EC_RETRY)
            return rc;
        if (replace_stale(&rs, conn, err))
            continue;
        drop_conn(s, conn);
        if (err->eclass == ASBP_EC_RETRY) {
            if (!retry_pause(&rs)) {
                explain_full(s, err);
                return rc;
            }
            continue;
        }
        rs.last = *err;
        if (rs.failovers++ == 0) {
            asbp_cluster_count(s->cluster, ASBP_COUNT_FAILOVERS);
            rs.first = *err;
        }
        rc = find_leader(&rs, conn, err);
        if (rc != ASBP_OK)
            return rc;
        /* Reconnect at once the first time; later, after a short wait. */
        if (!rs.backoff && rs.failovers > 1)
            rs.backoff = BACKOFF_FIRST_MS;
    }
}

asbp_code asbp_source_run(asbp_source *s, asbp_conn **conn, int64_t start_ms,
                          asbp_attempt_fn fn, void *ud, asbp_err *err)
{
    asbp_code rc = run_inner(s, conn, start_ms, fn, ud, err);
    /* The watches end with the failover.  An operation that gave up while
     * the cluster still has no leader leaves them open for the next one:
     * reopening them (a connection per member) would blind it for a while,
     * just when the promotion may come. */
    if (asbp_watches_count(&s->watches) && !(rc && err->eclass == ASBP_EC_FAILOVER))
        asbp_watches_close(&s->watches);
    return rc;
}
