/*
 * Sources: the options resolved into a source (its key, defaults, checks),
 * the accessors, and the connections of the current route (acquire and
 * release).  The DataSource keywords are checked against libpq's list
 * (PQconndefaults) here.
 */
#include "asbp_source.h"
#include "asbp_source_int.h"
#include "asbp_buf.h"
#include "asbp_secret.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* ---- the source key --------------------------------------------------- */

/* The key of an option set: a fingerprint (asbp_secret.h) of the name,
 * length and value of every option, so that the key, the pool key and the
 * cluster key never hold the password (run for every tie: plain appends,
 * no printf). */
static void put_len(asbp_fp *f, size_t n)
{
    char d[24];
    int i = (int)sizeof d;
    do {
        d[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n && i > 0);
    asbp_fp_update(f, d + i, sizeof d - (size_t)i);
}

static void put_field(asbp_fp *f, const char *name, const char *v)
{
    asbp_fp_puts(f, name);
    if (v) {
        size_t n = strlen(v);
        asbp_fp_update(f, "=", 1);
        put_len(f, n);
        asbp_fp_update(f, ":", 1);
        asbp_fp_update(f, v, n);
    } else {
        asbp_fp_update(f, "!", 1);
    }
    asbp_fp_update(f, "\x1f", 1);
}

static void put_num(asbp_fp *f, const char *name, long long v)
{
    asbp_fp_puts(f, name);
    asbp_fp_update(f, v < 0 ? "=-" : "=", v < 0 ? 2 : 1);
    put_len(f, (size_t)(v < 0 ? -v : v));
    asbp_fp_update(f, "\x1f", 1);
}

/* 0, or -1: no key for fingerprints (no random source). */
static int source_key(char key[ASBP_FP_HEX + 1], const asbp_options *o, const char *table)
{
    asbp_fp f;
    if (asbp_fp_init(&f) < 0)
        return -1;
    put_field(&f, "ds", o->datasource);
    put_field(&f, "u", o->user);
    put_field(&f, "p", o->password);
    put_field(&f, "t", table);
    put_num(&f, "ct", o->connect_timeout_ms);
    put_num(&f, "ft", o->failover_timeout_ms);
    put_num(&f, "qt", o->query_timeout_ms);
    put_field(&f, "pu", o->patroni_urls);
    put_field(&f, "ah", o->patroni_allowed_hosts);
    put_num(&f, "pt", o->patroni_timeout_ms);
    put_num(&f, "pc", o->patroni_cache_ttl_ms);
    put_num(&f, "pb", o->patroni_breaker_ms);
    put_num(&f, "pv", o->patroni_verify_ssl);
    put_field(&f, "pa", o->patroni_ca_file);
    put_field(&f, "pd", o->patroni_ca_path);
    put_field(&f, "pe", o->patroni_cert_file);
    put_field(&f, "pk", o->patroni_key_file);
    put_num(&f, "ps", o->prepared_statements);
    put_num(&f, "lp", o->patroni_leader_port);
    asbp_fp_hex(&f, key);
    return 0;
}

/* The cluster key: the DataSource's fingerprint (it may hold a password). */
static int cluster_key(char key[ASBP_FP_HEX + 1], const char *datasource)
{
    asbp_fp f;
    if (asbp_fp_init(&f) < 0)
        return -1;
    put_field(&f, "ds", datasource);
    asbp_fp_hex(&f, key);
    return 0;
}

/* ---- creation --------------------------------------------------------- */

static int64_t dflt(int64_t v, int64_t d) { return v > 0 ? v : d; }

static char *nonempty_dup(const char *s)
{
    return s && *s ? asbp_strdup(s) : NULL;
}

static int is_list_sep(char c)
{
    return c == ',' || isspace((unsigned char)c);
}

/* True when a URL with a scheme ("http://", any "name://") starts at p. */
static int scheme_at(const char *p)
{
    if (!isalpha((unsigned char)*p))
        return 0;
    while (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.')
        p++;
    return strncmp(p, "://", 3) == 0;
}

/* Where the entry starting at p ends: before the next scheme that follows
 * a separator (a ',' or a space inside a password does not split it); an
 * entry without credentials ('@') also ends at a separator. */
static const char *entry_end(const char *p)
{
    const char *e = p, *next = p + 1;
    while (*next && !(is_list_sep(next[-1]) && scheme_at(next)))
        next++;
    if (memchr(p, '@', (size_t)(next - p)) == NULL) {
        while (e < next && !is_list_sep(*e))
            e++;
        return e;
    }
    e = next;
    while (e > p && is_list_sep(e[-1]))
        e--;
    return e;
}

/*
 * PatroniUrl: URLs separated by commas or spaces.  The list is split only
 * before a URL with a scheme, so that a ',' or a space in a password stays
 * in its URL (and masked in messages) instead of cutting it in two.
 */
static int split_urls(asbp_source *s, const char *list)
{
    const char *p = list;
    if (!p)
        return 0;
    while (*p) {
        const char *e;
        char **u;
        while (is_list_sep(*p))
            p++;
        if (!*p)
            break;
        e = entry_end(p);
        u = realloc(s->urls, (s->nurls + 1) * sizeof *u);   /* freed in asbp_source_free */
        if (!u)
            return -1;
        s->urls = u;
        s->urls[s->nurls] = malloc((size_t)(e - p) + 1);
        if (!s->urls[s->nurls])
            return -1;
        memcpy(s->urls[s->nurls], p, (size_t)(e - p));
        s->urls[s->nurls][e - p] = '\0';
        s->nurls++;
        p = e;
    }
    return 0;
}

/*
 * The hosts an API answer may name: those of the DataSource (host and
 * hostaddr lists) and of the PatroniUrl endpoints, and PatroniAllowedHosts
 * (already checked by asbp_options; an error here is out of memory, or a
 * caller that did not go through asbp_options).  The DataSource itself is
 * always used as written (without a host: libpq's default socket).
 */
static asbp_code build_allow(asbp_source *s, const asbp_options *o, asbp_err *err)
{
    static const char *const keys[] = { "host", "hostaddr" };
    char host[256];
    const char *v;
    size_t i;
    s->allow = asbp_allow_new();   /* freed in asbp_source_free */
    if (!s->allow)
        goto nomem;
    for (i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if ((v = asbp_dsn_get(s->dsn, keys[i])) != NULL && asbp_allow_add_hosts(s->allow, v) < 0)
            goto nomem;
    for (i = 0; i < s->nurls; i++)
        if (asbp_allow_url_host(s->urls[i], host, sizeof host)
            && asbp_allow_add_hosts(s->allow, host) < 0)
            goto nomem;
    if (!o->patroni_allowed_hosts)
        return ASBP_OK;
    return asbp_allow_parse(s->allow, o->patroni_allowed_hosts,
                            strlen(o->patroni_allowed_hosts), err);
nomem:
    return asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT, "out of memory");
}

/* Every DataSource key must be a libpq connection parameter, and leave
 * room for what the route adds. */
static asbp_code check_dsn(const asbp_dsn *d, asbp_err *err)
{
    PQconninfoOption *opts = PQconndefaults(), *o;
    size_t i;
    if (!opts)
        return asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT, "out of memory");
    for (i = 0; i < asbp_dsn_count(d); i++) {
        const char *k = asbp_dsn_key(d, i);
        int known = 0;
        for (o = opts; o->keyword; o++)
            if (strcmp(o->keyword, k) == 0)
                known = 1;
        if (!known) {
            PQconninfoFree(opts);
            return asbp_err_set(err, ASBP_E_DSN, ASBP_EC_REPORT,
                                "Invalid DataSource '%s': unknown connection "
                                "parameter '%s'", asbp_dsn_display(d), k);
        }
    }
    PQconninfoFree(opts);
    if (asbp_dsn_count(d) > ASBP_ROUTE_MAX_DSN)
        return asbp_err_set(err, ASBP_E_DSN, ASBP_EC_REPORT,
                            "DataSource %s has too many parameters", asbp_dsn_display(d));
    return ASBP_OK;
}

/* The options, with their defaults. */
static int set_options(asbp_source *s, const asbp_options *o)
{
    s->user = nonempty_dup(o->user);
    /* the one copy of the password: kept out of core dumps, wiped */
    s->password = o->password && *o->password ? asbp_secret_dup(o->password) : NULL;
    if (o->password && *o->password && !s->password)
        return -1;
    s->connect_ms = dflt(o->connect_timeout_ms, ASBP_DEFAULT_CONNECT_TIMEOUT_MS);
    s->failover_ms = dflt(o->failover_timeout_ms, ASBP_DEFAULT_FAILOVER_TIMEOUT_MS);
    s->query_ms = dflt(o->query_timeout_ms, ASBP_DEFAULT_QUERY_TIMEOUT_MS);
    s->p_timeout_ms = dflt(o->patroni_timeout_ms, ASBP_DEFAULT_PATRONI_TIMEOUT_MS);
    s->p_ttl_ms = dflt(o->patroni_cache_ttl_ms, ASBP_DEFAULT_PATRONI_TTL_MS);
    s->p_breaker_ms = dflt(o->patroni_breaker_ms, ASBP_DEFAULT_PATRONI_BREAKER_MS);
    s->verify_ssl = o->patroni_verify_ssl < 0 ? 1 : !!o->patroni_verify_ssl;
    s->ca_file = nonempty_dup(o->patroni_ca_file);
    s->ca_path = nonempty_dup(o->patroni_ca_path);
    s->cert_file = nonempty_dup(o->patroni_cert_file);
    s->key_file = nonempty_dup(o->patroni_key_file);
    s->prepared = o->prepared_statements < 0 ? 1 : !!o->prepared_statements;
    s->leader_port = o->patroni_leader_port;
    return split_urls(s, o->patroni_urls);
}

static void source_free_cb(void *s) { asbp_source_free(s); }

static asbp_code no_key(asbp_err *err)
{
    return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                        "no secure random source for the key of the option set "
                        "(getrandom or /dev/urandom)");
}

/* A new source for o under key, kept in ctx. */
static asbp_code source_new(asbp_ctx *ctx, const asbp_options *o, const char *table,
                            const char *key, asbp_source **out, asbp_err *err)
{
    char ckey[ASBP_FP_HEX + 1];
    asbp_code rc;
    asbp_source *s = calloc(1, sizeof *s);   /* freed by the context */
    if (!s)
        return asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT, "out of memory");
    s->ctx = ctx;
    s->key = asbp_strdup(key);
    if (!s->key)
        goto nomem;
    rc = asbp_dsn_parse(o->datasource, &s->dsn, err);
    if (rc)
        goto fail;
    rc = asbp_table_init(&s->table, table, err);
    if (rc == ASBP_E_USAGE)
        asbp_err_prefix(err, "DataSource %s", asbp_dsn_display(s->dsn));
    if (rc)
        goto fail;
    if (set_options(s, o) < 0)
        goto nomem;
    rc = check_dsn(s->dsn, err);
    if (rc == ASBP_OK)
        rc = build_allow(s, o, err);
    if (rc)
        goto fail;
    /* One cluster state per original DataSource, shared by option sets. */
    if (cluster_key(ckey, o->datasource) < 0)
        goto nokey;
    s->cluster = asbp_ctx_cluster(ctx, ckey);
    if (!s->cluster || asbp_ctx_keep(ctx, s->key, s, source_free_cb) < 0)
        goto nomem;
    *out = s;
    return ASBP_OK;
nomem:
    rc = asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT, "out of memory");
    goto fail;
nokey:
    rc = no_key(err);
fail:
    asbp_source_free(s);
    return rc;
}

asbp_code asbp_source_get(asbp_ctx *ctx, const asbp_options *o,
                          asbp_source **out, asbp_err *err)
{
    char key[ASBP_FP_HEX + 1];
    asbp_source *s;
    asbp_code rc;
    const char *table = o->table && *o->table ? o->table : "sessions";

    *out = NULL;
    if (source_key(key, o, table) < 0)
        return no_key(err);
    s = asbp_ctx_find_kept(ctx, key);
    if (s) {
        *out = s;
        return ASBP_OK;
    }
    rc = source_new(ctx, o, table, key, &s, err);
    if (rc)
        return rc;
    if (s->nurls && !s->verify_ssl)
        asbp_log(asbp_ctx_logger(ctx), ASBP_LOG_WARN,
                 "PatroniVerifySSL is off for DataSource %s: the Patroni API's "
                 "TLS certificates are not verified (vulnerable to "
                 "man-in-the-middle attacks)", asbp_dsn_display(s->dsn));
    *out = s;
    return ASBP_OK;
}

void asbp_source_free(asbp_source *s)
{
    size_t i;
    if (!s)
        return;
    for (i = 0; i < s->nurls; i++)
        free(s->urls[i]);
    free(s->urls);
    asbp_dsn_free(s->dsn);
    free(s->key);
    free(s->user);
    asbp_secret_free(s->password);
    asbp_table_clear(&s->table);
    free(s->ca_file);
    free(s->ca_path);
    free(s->cert_file);
    free(s->key_file);
    asbp_route_cache_clear(&s->route);
    asbp_watches_close(&s->watches);
    asbp_allow_free(s->allow);
    free(s);
}

/* ---- accessors -------------------------------------------------------- */

const char *asbp_source_key(const asbp_source *s) { return s->key; }
const char *asbp_source_display(const asbp_source *s) { return asbp_dsn_display(s->dsn); }
const char *asbp_source_table_sql(const asbp_source *s) { return s->table.quoted; }
const char *asbp_source_table(const asbp_source *s) { return s->table.name; }
const char *asbp_source_sql(const asbp_source *s, asbp_sql_id id) { return s->table.sql[id]; }
asbp_ctx *asbp_source_ctx(const asbp_source *s) { return s->ctx; }
asbp_cluster *asbp_source_cluster(const asbp_source *s) { return s->cluster; }
int asbp_source_has_patroni(const asbp_source *s) { return s->nurls > 0; }
int64_t asbp_source_failover_timeout(const asbp_source *s) { return s->failover_ms; }
int64_t asbp_source_query_timeout(const asbp_source *s) { return s->query_ms; }
int64_t asbp_source_connect_timeout(const asbp_source *s) { return s->connect_ms; }
size_t asbp_source_url_count(const asbp_source *s) { return s->nurls; }
const char *asbp_source_url(const asbp_source *s, size_t i)
{
    return i < s->nurls ? s->urls[i] : NULL;
}
int64_t asbp_source_cache_ttl(const asbp_source *s) { return s->p_ttl_ms; }
int64_t asbp_source_breaker_delay(const asbp_source *s) { return s->p_breaker_ms; }

/* ---- connections ------------------------------------------------------ */

void asbp_source_route(const asbp_source *s, asbp_route *r)
{
    r->dsn = s->dsn;
    r->user = s->user;
    r->password = s->password;
    r->allow = s->allow;
    r->leader_host = NULL;
    r->leader_port = 0;
    /* The cluster state is shared by the option sets of one DataSource:
     * its leader may have been found under another allow list. */
    if (s->nurls && (!asbp_cluster_leader(s->cluster, asbp_ctx_now(s->ctx), s->p_ttl_ms,
                                          &r->leader_host, &r->leader_port, NULL)
                     || !asbp_allow_match(s->allow, r->leader_host)))
        r->leader_host = NULL;
    r->members = s->nurls && s->use_members ? s->cluster : NULL;
    r->port_override = s->leader_port;
}

int asbp_source_adopt(const asbp_source *s, asbp_conn *c)
{
    asbp_route r;
    asbp_target t;
    int rc;
    asbp_source_route(s, &r);
    rc = asbp_route_target(&r, &t) == 0 && asbp_conn_set_key(c, asbp_target_key(&t)) == 0
             ? 0 : -1;
    asbp_target_free(&t);
    asbp_conn_set_prepared(c, s->prepared);
    return rc;
}

/* A new connection to target t, within deadline_ms and ConnectTimeout. */
static asbp_code open_target(asbp_source *s, const asbp_target *t, int64_t deadline_ms,
                             asbp_conn **out, asbp_err *err)
{
    asbp_connparams p;
    asbp_code rc;
    asbp_conn *c;
    int64_t dl = asbp_ctx_now(s->ctx) + s->connect_ms;
    if (deadline_ms > 0 && deadline_ms < dl)
        dl = deadline_ms;
    asbp_target_params(t, NULL, &p);
    rc = asbp_conn_open(&p, asbp_ctx_clock(s->ctx), dl, asbp_ctx_logger(s->ctx), &c, err);
    if (rc == ASBP_OK && asbp_conn_set_key(c, asbp_target_key(t)) < 0) {
        asbp_conn_free(c);
        c = NULL;
        rc = asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT, "out of memory");
    }
    *out = c;
    return rc;
}

asbp_code asbp_source_acquire(asbp_source *s, int64_t deadline_ms,
                              asbp_conn **out, asbp_err *err)
{
    asbp_pool *pool = asbp_ctx_pool(s->ctx);
    asbp_route r;
    asbp_target t;
    asbp_code rc;
    const char *key;

    *out = NULL;
    asbp_ctx_check_fork(s->ctx);
    asbp_source_route(s, &r);
    key = asbp_route_cache_get(&s->route, &r);
    if (key && (*out = asbp_pool_checkout(pool, key)) != NULL) {
        asbp_conn_set_prepared(*out, s->prepared);
        return ASBP_OK;   /* same route as last time, a connection idle */
    }
    if (asbp_route_target(&r, &t) < 0
        || asbp_route_cache_put(&s->route, &r, asbp_target_key(&t)) < 0) {
        asbp_target_free(&t);
        return asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT, "out of memory");
    }
    *out = asbp_pool_checkout(pool, asbp_target_key(&t));
    rc = *out ? ASBP_OK : open_target(s, &t, deadline_ms, out, err);
    asbp_target_free(&t);
    asbp_conn_set_prepared(*out, s->prepared);   /* PreparedStatements */
    return rc;
}

void asbp_source_release(asbp_source *s, asbp_conn *c)
{
    if (!c)
        return;
    asbp_pool_checkin(asbp_ctx_pool(s->ctx), asbp_conn_key(c), c);
}
