/*
 * Finding the writable node after a failover-class error: Patroni
 * discovery (respecting the circuit breaker), else the cached leader, else
 * the members last seen (DESIGN.md section 4).
 */
#include "asbp_source.h"
#include "asbp_source_int.h"
#include "asbp_discovery.h"
#include "asbp_standby.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The members last seen whose host is allowed, as text; their number. */
static size_t members_text(const asbp_source *s, char *buf, size_t n)
{
    const asbp_cluster *c = s->cluster;
    size_t i, off = 0, k = 0;
    buf[0] = '\0';
    for (i = 0; i < asbp_cluster_member_count(c); i++) {
        const char *h = asbp_cluster_member_host(c, i);
        int w;
        if (!asbp_allow_match(s->allow, h))
            continue;
        k++;
        if (off >= n)
            continue;
        w = snprintf(buf + off, n - off, "%s%s:%d", off ? ", " : "", h,
                     asbp_cluster_member_port(c, i));
        if (w > 0)
            off += (size_t)w;
    }
    return k;
}

/* Says which members of an answer are not allowed (they are kept in the
 * cluster state, shared with the option sets of the same DataSource, but
 * this source never connects to them: see asbp_route and asbp_watch). */
static void report_members(const asbp_source *s, const asbp_discovery_result *res)
{
    char list[512];
    size_t i, off = 0, k = 0;
    const asbp_topology *t = res->topology;
    for (i = 0; t && i < t->n; i++) {
        const asbp_member *m = &t->members[i];
        int w;
        if (!m->host || m->port <= 0 || asbp_allow_match(s->allow, m->host))
            continue;
        k++;
        if (off >= sizeof list)
            continue;
        w = snprintf(list + off, sizeof list - off, "%s%s:%d", off ? ", " : "", m->host, m->port);
        if (w > 0)
            off += (size_t)w;
    }
    if (k)
        asbp_log(asbp_ctx_logger(s->ctx), ASBP_LOG_WARN,
                 "DataSource %s: Patroni endpoint %s lists %lu member%s whose host is "
                 "not allowed (%s): never connected to; hosts allowed are those of "
                 "DataSource and PatroniUrl, and %s", asbp_dsn_display(s->dsn),
                 res->endpoint, (unsigned long)k, k > 1 ? "s" : "", list, ASBP_ALLOW_OPTION);
}

static void remember_members(asbp_source *s, const asbp_topology *t, int64_t now)
{
    const char *hosts[64];
    int ports[64];
    size_t i, n = 0;
    if (!t)
        return;
    for (i = 0; i < t->n && n < 64; i++) {
        if (t->members[i].host && t->members[i].port > 0) {
            hosts[n] = t->members[i].host;
            ports[n] = t->members[i].port;
            n++;
        }
    }
    asbp_cluster_set_members(s->cluster, n, hosts, ports, now);
    asbp_standby_learn(s->cluster, t, now);   /* for BrowseFromStandby */
}

/* No usable answer from the API: cached leader, then the members last seen. */
static asbp_code fall_back(asbp_source *s, const char *why, int64_t now)
{
    const char *h;
    int p;
    int64_t age;
    char members[512];
    const asbp_logger *lg = asbp_ctx_logger(s->ctx);
    size_t nmembers = members_text(s, members, sizeof members);

    /* A leader cached under another option set of this DataSource may not
     * be allowed here. */
    if (asbp_cluster_leader(s->cluster, now, s->p_ttl_ms, &h, &p, &age)
        && asbp_allow_match(s->allow, h)) {
        asbp_log(lg, ASBP_LOG_WARN, "%s for DataSource %s, using cached leader "
                 "%s:%d (%llds old)", why, asbp_dsn_display(s->dsn), h, p,
                 (long long)(age / 1000));
        s->use_members = nmembers > 0;
        return ASBP_OK;
    }
    if (nmembers) {
        asbp_log(lg, ASBP_LOG_WARN, "%s for DataSource %s and no cached leader: "
                 "trying the members last seen (%s) for a writable one",
                 why, asbp_dsn_display(s->dsn), members);
        s->use_members = 1;
        return ASBP_OK;
    }
    asbp_log(lg, ASBP_LOG_WARN, "%s for DataSource %s and no leader known: "
             "trying the DataSource as configured", why, asbp_dsn_display(s->dsn));
    s->use_members = 0;
    return ASBP_OK;
}

static void discovery_cfg(const asbp_source *s, asbp_discovery_cfg *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->urls = (const char *const *)s->urls;
    cfg->n_urls = s->nurls;
    cfg->timeout_ms = s->p_timeout_ms;
    cfg->verify_ssl = s->verify_ssl;
    cfg->ca_file = s->ca_file;
    cfg->ca_path = s->ca_path;
    cfg->cert_file = s->cert_file;
    cfg->key_file = s->key_file;
}

asbp_code asbp_source_discover_now(const asbp_source *s, asbp_endpoint_result *per_endpoint,
                                   asbp_discovery_result *res, asbp_err *err)
{
    asbp_discovery_cfg cfg;
    memset(res, 0, sizeof *res);
    if (!s->nurls)
        return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                            "DataSource %s has no PatroniUrl", asbp_dsn_display(s->dsn));
    discovery_cfg(s, &cfg);
    cfg.per_endpoint = per_endpoint;
    cfg.wait_all = per_endpoint != NULL;
    return asbp_discover(&cfg, asbp_ctx_clock(s->ctx),
                         asbp_ctx_now(s->ctx) + s->p_timeout_ms,
                         asbp_ctx_logger(s->ctx), res, err);
}

/*
 * The API named a leader whose host is not allowed: a bad answer, not used
 * at all (neither its leader nor its members), counted as an API failure.
 * The breaker is not tripped: the falling back it would cause hides the
 * refusal (the operation would end on another error); the operation keeps
 * asking, watching the members it may use, until FailoverTimeout.
 */
static asbp_code refuse_leader(asbp_source *s, const asbp_discovery_result *res,
                               asbp_err *err)
{
    asbp_cluster_count(s->cluster, ASBP_COUNT_API_FAILURES);
    asbp_err_set(err, ASBP_E_DISCOVERY, ASBP_EC_FAILOVER,
                 "DataSource %s: Patroni endpoint %s names leader %s:%d, a host that is "
                 "not allowed: not connected to (hosts allowed are those of DataSource "
                 "and PatroniUrl, and %s; list it there if it is one of your servers)",
                 asbp_dsn_display(s->dsn), res->endpoint, res->leader_host,
                 res->leader_port, ASBP_ALLOW_OPTION);
    asbp_log(asbp_ctx_logger(s->ctx), ASBP_LOG_WARN, "%s", err->msg);
    return ASBP_E_DISCOVERY;
}

/* The API named a leader: it is the target now. */
static asbp_code found_leader(asbp_source *s, const asbp_discovery_result *res,
                              int64_t now, asbp_err *err)
{
    if (!asbp_allow_match(s->allow, res->leader_host))
        return refuse_leader(s, res, err);
    report_members(s, res);
    remember_members(s, res->topology, now);
    if (asbp_cluster_set_leader(s->cluster, res->leader_host, res->leader_port, now) < 0)
        return asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT, "out of memory");
    s->use_members = 0;
    ASBP_TRACE(asbp_ctx_logger(s->ctx), "pid %ld: leader of DataSource %s is %s:%d (from %s)",
               (long)getpid(), asbp_dsn_display(s->dsn), res->leader_host,
               res->leader_port, res->endpoint);
    return ASBP_OK;
}

/* The API works; the cluster has no usable leader right now.  Not a
 * failing API: the breaker stays closed so we can follow it. */
static asbp_code no_leader_yet(asbp_source *s, const asbp_discovery_result *res,
                               int64_t now, asbp_err *err)
{
    asbp_cluster_count(s->cluster, ASBP_COUNT_TRANSITIONS);
    report_members(s, res);
    remember_members(s, res->topology, now);
    asbp_cluster_forget_leader(s->cluster);
    s->use_members = 0;
    return asbp_err_set(err, ASBP_E_DISCOVERY, ASBP_EC_FAILOVER,
                        "DataSource %s: %s", asbp_dsn_display(s->dsn),
                        res->outcome == ASBP_DISC_SPLIT
                            ? "Patroni endpoints name different leaders (Multiple leaders detected); refusing to write"
                            : "No leader found: the cluster has no writable leader yet");
}

/* What the answer of the API means for the next attempt. */
static asbp_code apply_answer(asbp_source *s, const asbp_discovery_result *res,
                              int64_t now, asbp_err *err)
{
    switch (res->outcome) {
    case ASBP_DISC_LEADER:
        return found_leader(s, res, now, err);
    case ASBP_DISC_TRANSITION:
    case ASBP_DISC_SPLIT:
        return no_leader_yet(s, res, now, err);
    case ASBP_DISC_FAILED:
    default:
        asbp_cluster_count(s->cluster, ASBP_COUNT_API_FAILURES);
        asbp_cluster_trip(s->cluster, now);
        return fall_back(s, "Patroni API unavailable", now);
    }
}

asbp_code asbp_source_failover(asbp_source *s, int64_t deadline_ms, asbp_err *err)
{
    int64_t now = asbp_ctx_now(s->ctx), left, dl;
    asbp_discovery_cfg cfg;
    asbp_discovery_result res;
    asbp_err derr;
    asbp_code rc;

    if (!s->nurls)
        return ASBP_OK;   /* nothing to discover: reconnect as configured */
    if (asbp_cluster_breaker_open(s->cluster, now, s->p_breaker_ms, &left)) {
        char why[128];
        asbp_cluster_count(s->cluster, ASBP_COUNT_BREAKER_SKIPS);
        snprintf(why, sizeof why, "Circuit breaker active (Patroni API not asked "
                 "for %llds more)", (long long)((left + 999) / 1000));
        return fall_back(s, why, now);
    }
    discovery_cfg(s, &cfg);
    dl = now + s->p_timeout_ms;
    if (deadline_ms > 0 && deadline_ms < dl)
        dl = deadline_ms;
    memset(&res, 0, sizeof res);
    asbp_err_clear(&derr);
    asbp_cluster_count(s->cluster, ASBP_COUNT_DISCOVERIES);
    rc = asbp_discover(&cfg, asbp_ctx_clock(s->ctx), dl, asbp_ctx_logger(s->ctx), &res, &derr);
    if (rc != ASBP_OK) {
        *err = derr;
        asbp_err_prefix(err, "DataSource %s: Patroni discovery", asbp_dsn_display(s->dsn));
    } else {
        rc = apply_answer(s, &res, asbp_ctx_now(s->ctx), err);
    }
    asbp_discovery_result_clear(&res);
    return rc;
}
