/*
 * The synchronous standby of BrowseFromStandby: learnt from the answers of
 * the Patroni API, asked for when stale, connected to on request.
 */
#include "asbp_standby.h"
#include "asbp_source_int.h"
#include "asbp_discovery.h"
#include "asbp_pool.h"

#include <string.h>

int asbp_standby_wanted(const asbp_source *s)
{
    return s->browse_standby && s->nurls > 0;
}

void asbp_standby_learn(asbp_cluster *c, const asbp_topology *t, int64_t now_ms)
{
    const asbp_member *m;
    if (!c || !t)
        return;
    m = asbp_topology_sync_standby(t);
    /* Out of memory: the last standby stays known, for its ttl. */
    (void)asbp_cluster_set_standby(c, m ? m->host : NULL, m ? m->port : 0, now_ms);
}

/*
 * Asks the API which member is the synchronous standby (respecting the
 * circuit breaker; counted as a discovery).  Only the standby is learnt:
 * the leader and the members are left to the failover of the writes
 * (asbp_failover.c).  An answer naming a leader that is not allowed is not
 * used at all, as there.
 */
static void ask_api(asbp_source *s, int64_t deadline_ms)
{
    asbp_discovery_cfg cfg;
    asbp_discovery_result res;
    asbp_err e;
    int64_t now = asbp_ctx_now(s->ctx);

    if (asbp_cluster_breaker_open(s->cluster, now, s->p_breaker_ms, NULL)) {
        asbp_cluster_count(s->cluster, ASBP_COUNT_BREAKER_SKIPS);
        return;
    }
    memset(&cfg, 0, sizeof cfg);
    cfg.urls = (const char *const *)s->urls;
    cfg.n_urls = s->nurls;
    cfg.timeout_ms = s->p_timeout_ms;
    cfg.verify_ssl = s->verify_ssl;
    cfg.ca_file = s->ca_file;
    cfg.ca_path = s->ca_path;
    cfg.cert_file = s->cert_file;
    cfg.key_file = s->key_file;
    memset(&res, 0, sizeof res);
    asbp_err_clear(&e);
    asbp_cluster_count(s->cluster, ASBP_COUNT_DISCOVERIES);
    if (asbp_discover(&cfg, asbp_ctx_clock(s->ctx), deadline_ms, asbp_ctx_logger(s->ctx),
                      &res, &e) == ASBP_OK) {
        now = asbp_ctx_now(s->ctx);
        if (res.outcome == ASBP_DISC_FAILED) {
            asbp_cluster_count(s->cluster, ASBP_COUNT_API_FAILURES);
            asbp_cluster_trip(s->cluster, now);
        } else if (res.outcome != ASBP_DISC_LEADER
                   || asbp_allow_match(s->allow, res.leader_host)) {
            asbp_standby_learn(s->cluster, res.topology, now);
        }
    }
    asbp_discovery_result_clear(&res);
}

/* A new connection to target t, within deadline_ms and ConnectTimeout. */
static asbp_code open_standby(const asbp_source *s, const asbp_target *t,
                              int64_t deadline_ms, asbp_conn **out, asbp_err *err)
{
    asbp_connparams p;
    asbp_code rc;
    int64_t dl = asbp_ctx_now(s->ctx) + s->connect_ms;
    if (deadline_ms < dl)
        dl = deadline_ms;
    asbp_target_params(t, NULL, &p);
    rc = asbp_conn_open(&p, asbp_ctx_clock(s->ctx), dl, asbp_ctx_logger(s->ctx), out, err);
    if (rc == ASBP_OK && asbp_conn_set_key(*out, asbp_target_key(t)) < 0) {
        asbp_conn_free(*out);
        *out = NULL;
        rc = asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT, "out of memory");
    }
    return rc;
}

/* The standby known now (asking the API when nothing recent is known):
 * 1 and host/port, else 0 with the reason in err. */
static int known_standby(asbp_source *s, int64_t deadline_ms, const char **host,
                         int *port, asbp_err *err)
{
    int k = asbp_cluster_standby(s->cluster, asbp_ctx_now(s->ctx), s->p_ttl_ms, host, port);
    if (k < 0) {
        ask_api(s, deadline_ms);
        k = asbp_cluster_standby(s->cluster, asbp_ctx_now(s->ctx), s->p_ttl_ms, host, port);
    }
    if (k < 0)
        asbp_err_set(err, ASBP_E_DISCOVERY, ASBP_EC_REPORT,
                     "no synchronous standby known (the Patroni API gave no "
                     "usable answer)");
    else if (k == 0 && asbp_cluster_standby_forgotten(s->cluster))
        asbp_err_set(err, ASBP_E_DISCOVERY, ASBP_EC_NONE,
                     "the synchronous standby failed recently (the leader serves "
                     "the reads until the Patroni API is asked again)");
    else if (k == 0)
        asbp_err_set(err, ASBP_E_DISCOVERY, ASBP_EC_REPORT,
                     "the Patroni API names no synchronous standby (is Patroni's "
                     "synchronous_mode on?)");
    else if (!asbp_allow_match(s->allow, *host))
        asbp_err_set(err, ASBP_E_DISCOVERY, ASBP_EC_REPORT,
                     "synchronous standby %s:%d is a host that is not allowed: never "
                     "connected to (hosts allowed are those of DataSource and "
                     "PatroniUrl, and %s)", *host, *port, ASBP_ALLOW_OPTION);
    else
        return 1;
    return 0;
}

asbp_code asbp_standby_acquire(asbp_source *s, int64_t deadline_ms, asbp_conn **out,
                               asbp_err *err)
{
    const char *host;
    int port;
    asbp_route r;
    asbp_target t;
    asbp_code rc;

    *out = NULL;
    asbp_ctx_check_fork(s->ctx);
    if (!known_standby(s, deadline_ms, &host, &port, err))
        return err->code;
    asbp_source_route(s, &r);
    if (asbp_route_standby_target(&r, host, port, &t) < 0) {
        asbp_target_free(&t);
        return asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT, "out of memory");
    }
    *out = asbp_pool_checkout(asbp_ctx_pool(s->ctx), asbp_target_key(&t),
                              asbp_ctx_now(s->ctx));
    rc = *out ? ASBP_OK : open_standby(s, &t, deadline_ms, out, err);
    asbp_target_free(&t);
    if (rc == ASBP_OK)
        asbp_conn_set_prepared(*out, s->prepared);   /* PreparedStatements */
    return rc;
}

void asbp_standby_fallback(asbp_source *s, const asbp_err *err)
{
    if (err->eclass == ASBP_EC_FAILOVER || err->eclass == ASBP_EC_RETRY)
        asbp_cluster_forget_standby(s->cluster, asbp_ctx_now(s->ctx));
    /* Class NONE: the standby was forgotten, which was said then. */
    asbp_log(asbp_ctx_logger(s->ctx), err->eclass == ASBP_EC_NONE ? ASBP_LOG_TRACE : ASBP_LOG_INFO,
             "DataSource %s: BrowseFromStandby: reading table %s from the leader, not "
             "the synchronous standby: %s",
             asbp_dsn_display(s->dsn), s->table.name, err->msg);
}
