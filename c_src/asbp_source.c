#include "asbp_source.h"
#include "asbp_buf.h"
#include "asbp_discovery.h"
#include "asbp_dsn.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_PARAMS 64
#define APP_NAME "Apache::Session::Browseable::Patroni"

struct asbp_source {
    asbp_ctx *ctx;             /* borrowed: the context owns the source */
    char *key;                 /* owned: identity of the option set */
    asbp_dsn *dsn;             /* owned */
    char *user;                /* owned, NULL: none */
    char *password;            /* owned, NULL: none; never printed */
    char *table;               /* owned: as given */
    char table_sql[300];
    char *sql[ASBP_SQL_COUNT]; /* owned */
    int64_t connect_ms, failover_ms, query_ms;
    char **urls;               /* owned */
    size_t nurls;
    int64_t p_timeout_ms, p_ttl_ms, p_breaker_ms;
    int verify_ssl;
    char *ca_file, *ca_path, *cert_file, *key_file;   /* owned */
    int use_members;           /* route: add the members last seen */
    asbp_cluster *cluster;     /* borrowed from the context */
    asbp_buf pool_key;         /* scratch: key of the current target */
    struct watch *watches;     /* owned: promotion watches of a failover */
    size_t nwatch;
    unsigned long watch_gen;   /* members generation the watches were made for */
    /* The pool key of the current route, kept while the route is the same
     * (building it on every tie showed in profiles). */
    char route_host[256];      /* cached leader in the route, "" for none */
    int route_port;
    int route_members;         /* use_members when it was built */
    unsigned long route_gen;   /* members generation when it was built */
    int route_valid;
};

/*
 * While the cluster has no leader (a switchover or a crash in progress),
 * the failover loop does not only wait and ask the API again: it watches
 * the members it knows for a promotion, on connections of its own that ask
 * pg_is_in_recovery() every few milliseconds.  A member seen in recovery
 * and then out of it has been promoted (only Patroni promotes): the next
 * attempt goes there at once, instead of at the next API poll.  A member
 * never seen in recovery (an old leader still shutting down, or isolated)
 * is never trusted this way.
 */
typedef struct watch {
    asbp_conn *c;              /* owned, NULL when closed */
    char host[256];
    int port;
    int seen_recovery;
    int dead;                  /* could not connect: not retried this time */
} watch;

#define WATCH_POLL_MS 10

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

/* ---- table names ------------------------------------------------------ */

static int ident_start(unsigned char c) { return isalpha(c) || c == '_' || c >= 0x80; }
static int ident_char(unsigned char c) { return isalnum(c) || c == '_' || c == '$' || c >= 0x80; }

asbp_code asbp_table_quote(const char *table, char *out, size_t n, asbp_err *err)
{
    asbp_buf b = ASBP_BUF_INIT;
    const char *p = table;
    int parts = 0;

    if (!p || !*p)
        return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT, "TableName is empty");
    while (*p) {
        size_t len = 0;
        if (parts == 2)
            goto bad;
        asbp_buf_puts(&b, parts ? ".\"" : "\"");
        if (*p == '"') {
            p++;
            for (;;) {
                if (!*p)
                    goto bad;
                if (*p == '"') {
                    if (p[1] == '"') {
                        asbp_buf_puts(&b, "\"\"");
                        p += 2;
                        len++;
                        continue;
                    }
                    p++;
                    break;
                }
                asbp_buf_append(&b, p, 1);
                p++;
                len++;
            }
        } else {
            if (!ident_start((unsigned char)*p))
                goto bad;
            while (*p && ident_char((unsigned char)*p)) {
                char c = (char)tolower((unsigned char)*p);
                asbp_buf_append(&b, &c, 1);
                p++;
                len++;
            }
        }
        if (len == 0 || len > 63)
            goto bad;
        asbp_buf_puts(&b, "\"");
        parts++;
        if (*p == '.') {
            p++;
            if (!*p)
                goto bad;
        } else if (*p) {
            goto bad;
        }
    }
    if (!b.data || b.len >= n)
        goto bad;
    memcpy(out, b.data, b.len + 1);
    asbp_buf_free(&b);
    return ASBP_OK;
bad:
    asbp_buf_free(&b);
    return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                        "Invalid TableName '%.200s': expected an identifier, "
                        "optionally schema-qualified (schema.table), each part "
                        "plain (letters, digits, _, $) or in double quotes, at "
                        "most 63 characters", table);
}

/* ---- creation --------------------------------------------------------- */

/* The key of an option set: name, length and value of every option (run
 * for every tie: plain appends, no printf). */
static void put_len(asbp_buf *b, size_t n)
{
    char d[24];
    int i = (int)sizeof d;
    do {
        d[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n && i > 0);
    asbp_buf_append(b, d + i, sizeof d - (size_t)i);
}

static void put_field(asbp_buf *b, const char *name, const char *v)
{
    asbp_buf_puts(b, name);
    if (v) {
        size_t n = strlen(v);
        asbp_buf_append(b, "=", 1);
        put_len(b, n);
        asbp_buf_append(b, ":", 1);
        asbp_buf_append(b, v, n);
    } else {
        asbp_buf_append(b, "!", 1);
    }
    asbp_buf_append(b, "\x1f", 1);
}

static void put_num(asbp_buf *b, const char *name, long long v)
{
    asbp_buf_puts(b, name);
    asbp_buf_append(b, v < 0 ? "=-" : "=", v < 0 ? 2 : 1);
    put_len(b, (size_t)(v < 0 ? -v : v));
    asbp_buf_append(b, "\x1f", 1);
}

static int64_t dflt(int64_t v, int64_t d) { return v > 0 ? v : d; }

static char *nonempty_dup(const char *s)
{
    return s && *s ? asbp_strdup(s) : NULL;
}

static int split_urls(asbp_source *s, const char *list)
{
    const char *p = list;
    if (!p)
        return 0;
    while (*p) {
        const char *e;
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        e = p;
        while (*e && *e != ',' && !isspace((unsigned char)*e))
            e++;
        {
            char **u = realloc(s->urls, (s->nurls + 1) * sizeof *u);
            if (!u)
                return -1;
            s->urls = u;
            s->urls[s->nurls] = malloc((size_t)(e - p) + 1);
            if (!s->urls[s->nurls])
                return -1;
            memcpy(s->urls[s->nurls], p, (size_t)(e - p));
            s->urls[s->nurls][e - p] = '\0';
            s->nurls++;
        }
        p = e;
    }
    return 0;
}

/* Every DataSource key must be a libpq connection parameter. */
static asbp_code check_keywords(const asbp_dsn *d, asbp_err *err)
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
    return ASBP_OK;
}

asbp_code asbp_source_get(asbp_ctx *ctx, const asbp_options *o,
                          asbp_source **out, asbp_err *err)
{
    asbp_buf key = ASBP_BUF_INIT;
    asbp_source *s;
    asbp_code rc;
    const char *table = o->table && *o->table ? o->table : "sessions";
    size_t i;

    *out = NULL;
    put_field(&key, "ds", o->datasource);
    put_field(&key, "u", o->user);
    put_field(&key, "p", o->password);
    put_field(&key, "t", table);
    put_num(&key, "ct", o->connect_timeout_ms);
    put_num(&key, "ft", o->failover_timeout_ms);
    put_num(&key, "qt", o->query_timeout_ms);
    put_field(&key, "pu", o->patroni_urls);
    put_num(&key, "pt", o->patroni_timeout_ms);
    put_num(&key, "pc", o->patroni_cache_ttl_ms);
    put_num(&key, "pb", o->patroni_breaker_ms);
    put_num(&key, "pv", o->patroni_verify_ssl);
    put_field(&key, "pa", o->patroni_ca_file);
    put_field(&key, "pd", o->patroni_ca_path);
    put_field(&key, "pe", o->patroni_cert_file);
    put_field(&key, "pk", o->patroni_key_file);
    if (!key.data)
        return asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT, "out of memory");

    s = asbp_ctx_find_source(ctx, key.data);
    if (s) {
        asbp_buf_free(&key);
        *out = s;
        return ASBP_OK;
    }

    s = calloc(1, sizeof *s);
    if (!s) {
        asbp_buf_free(&key);
        return asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT, "out of memory");
    }
    s->ctx = ctx;
    s->key = asbp_buf_steal(&key);
    rc = asbp_dsn_parse(o->datasource, &s->dsn, err);
    if (rc)
        goto fail;
    rc = asbp_table_quote(table, s->table_sql, sizeof s->table_sql, err);
    if (rc) {
        asbp_err_prefix(err, "DataSource %s", asbp_dsn_display(s->dsn));
        goto fail;
    }
    s->table = asbp_strdup(table);
    {
        static const char *const fmt[ASBP_SQL_COUNT] = {
            "SELECT a_session FROM %s WHERE id = $1 FOR UPDATE",
            "INSERT INTO %s (id, a_session) VALUES ($1, $2)",
            "UPDATE %s SET a_session = $2 WHERE id = $1",
            "DELETE FROM %s WHERE id = $1",
            "SELECT a_session::jsonb = $2::jsonb FROM %s WHERE id = $1 FOR UPDATE",
        };
        for (i = 0; i < ASBP_SQL_COUNT; i++) {
            asbp_buf b = ASBP_BUF_INIT;
            if (asbp_buf_printf(&b, fmt[i], s->table_sql) < 0) {
                rc = asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT, "out of memory");
                goto fail;
            }
            s->sql[i] = asbp_buf_steal(&b);
        }
    }
    s->user = nonempty_dup(o->user);
    s->password = nonempty_dup(o->password);
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
    if (!s->table || split_urls(s, o->patroni_urls) < 0) {
        rc = asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT, "out of memory");
        goto fail;
    }
    rc = check_keywords(s->dsn, err);
    if (rc)
        goto fail;
    for (i = 0; i < asbp_dsn_count(s->dsn); i++) {
        if (i >= MAX_PARAMS - 12) {
            rc = asbp_err_set(err, ASBP_E_DSN, ASBP_EC_REPORT,
                              "DataSource %s has too many parameters",
                              asbp_dsn_display(s->dsn));
            goto fail;
        }
    }
    /* One cluster state per original DataSource, shared by option sets. */
    s->cluster = asbp_ctx_cluster(ctx, o->datasource);
    if (!s->cluster || asbp_ctx_add_source(ctx, s) < 0) {
        rc = asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT, "out of memory");
        goto fail;
    }
    if (s->nurls && !s->verify_ssl)
        asbp_log(asbp_ctx_logger(ctx), ASBP_LOG_WARN,
                 "PatroniVerifySSL is off for DataSource %s: the Patroni API's "
                 "TLS certificates are not verified (vulnerable to "
                 "man-in-the-middle attacks)", asbp_dsn_display(s->dsn));
    *out = s;
    return ASBP_OK;
fail:
    asbp_source_free(s);
    return rc;
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
    if (s->password) {
        memset(s->password, 0, strlen(s->password));
        free(s->password);
    }
    free(s->table);
    for (i = 0; i < ASBP_SQL_COUNT; i++)
        free(s->sql[i]);
    free(s->ca_file);
    free(s->ca_path);
    free(s->cert_file);
    free(s->key_file);
    asbp_buf_free(&s->pool_key);
    {
        size_t k;
        for (k = 0; k < s->nwatch; k++)
            asbp_conn_free(s->watches[k].c);
        free(s->watches);
    }
    free(s);
}

const char *asbp_source_key(const asbp_source *s) { return s->key; }
const char *asbp_source_display(const asbp_source *s) { return asbp_dsn_display(s->dsn); }
const char *asbp_source_table_sql(const asbp_source *s) { return s->table_sql; }
const char *asbp_source_table(const asbp_source *s) { return s->table; }
const char *asbp_source_sql(const asbp_source *s, asbp_sql_id id) { return s->sql[id]; }
asbp_ctx *asbp_source_ctx(asbp_source *s) { return s->ctx; }
asbp_cluster *asbp_source_cluster(asbp_source *s) { return s->cluster; }
int asbp_source_has_patroni(const asbp_source *s) { return s->nurls > 0; }
int64_t asbp_source_failover_timeout(const asbp_source *s) { return s->failover_ms; }
int64_t asbp_source_query_timeout(const asbp_source *s) { return s->query_ms; }
int64_t asbp_source_connect_timeout(const asbp_source *s) { return s->connect_ms; }

/* ---- connection target ------------------------------------------------ */

typedef struct target {
    const char *kw[MAX_PARAMS + 1];
    const char *val[MAX_PARAMS + 1];
    int n;
    asbp_buf hosts, ports, label;
} target;

static void target_free(target *t)
{
    asbp_buf_free(&t->hosts);
    asbp_buf_free(&t->ports);
    asbp_buf_free(&t->label);
}

static void add(target *t, const char *k, const char *v)
{
    int i;
    for (i = 0; i < t->n; i++) {
        if (strcmp(t->kw[i], k) == 0) {
            t->val[i] = v;
            return;
        }
    }
    t->kw[t->n] = k;
    t->val[t->n] = v;
    t->n++;
}

static void add_host(target *t, const char *host, int port)
{
    size_t i;
    /* skip duplicates (the leader is also among the members) */
    const char *h = asbp_buf_cstr(&t->hosts), *p = asbp_buf_cstr(&t->ports);
    char pbuf[16];
    snprintf(pbuf, sizeof pbuf, "%d", port);
    {
        /* compare pairs */
        const char *hs = h, *ps = p;
        while (*hs) {
            const char *he = strchr(hs, ','), *pe = strchr(ps, ',');
            size_t hl = he ? (size_t)(he - hs) : strlen(hs);
            size_t pl = pe ? (size_t)(pe - ps) : strlen(ps);
            if (hl == strlen(host) && !strncmp(hs, host, hl)
                && pl == strlen(pbuf) && !strncmp(ps, pbuf, pl))
                return;
            if (!he || !pe)
                break;
            hs = he + 1;
            ps = pe + 1;
        }
    }
    for (i = 0; host[i]; i++)
        if (host[i] == ',')   /* a comma would split the host list */
            return;
    if (t->hosts.len) {
        asbp_buf_puts(&t->hosts, ",");
        asbp_buf_puts(&t->ports, ",");
    }
    asbp_buf_puts(&t->hosts, host);
    asbp_buf_puts(&t->ports, pbuf);
}

/* Builds the libpq parameters of the current route, and the pool key. */
static int build_target(asbp_source *s, target *t)
{
    size_t i;
    const char *lh = NULL;
    int lp = 0;
    int64_t now = asbp_ctx_now(s->ctx);
    int override = 0;

    memset(t, 0, sizeof *t);
    if (s->nurls && asbp_cluster_leader(s->cluster, now, s->p_ttl_ms, &lh, &lp, NULL)) {
        add_host(t, lh, lp);
        override = 1;
    }
    if (s->nurls && s->use_members) {
        for (i = 0; i < asbp_cluster_member_count(s->cluster); i++)
            add_host(t, asbp_cluster_member_host(s->cluster, i),
                     asbp_cluster_member_port(s->cluster, i));
        override = t->hosts.len > 0;
    }
    for (i = 0; i < asbp_dsn_count(s->dsn); i++) {
        const char *k = asbp_dsn_key(s->dsn, i);
        if (!strcmp(k, "client_encoding"))
            continue;
        if (override && (!strcmp(k, "host") || !strcmp(k, "port")
                         || !strcmp(k, "hostaddr")))
            continue;
        add(t, k, asbp_dsn_value(s->dsn, i));
    }
    if (s->user)
        add(t, "user", s->user);
    if (s->password)
        add(t, "password", s->password);
    add(t, "client_encoding", "UTF8");
    if (!asbp_dsn_get(s->dsn, "fallback_application_name"))
        add(t, "fallback_application_name", APP_NAME);
    if (!asbp_dsn_get(s->dsn, "target_session_attrs"))
        add(t, "target_session_attrs", "read-write");
    if (override) {
        add(t, "host", asbp_buf_cstr(&t->hosts));
        add(t, "port", asbp_buf_cstr(&t->ports));
    }
    t->kw[t->n] = NULL;
    t->val[t->n] = NULL;

    asbp_buf_reset(&s->pool_key);
    for (i = 0; i < (size_t)t->n; i++)
        asbp_buf_printf(&s->pool_key, "%s=%zu:%s\x1f", t->kw[i],
                        strlen(t->val[i]), t->val[i]);
    if (override)
        asbp_buf_printf(&t->label, "DataSource %s (%s %s port %s)",
                        asbp_dsn_display(s->dsn),
                        strchr(asbp_buf_cstr(&t->hosts), ',') ? "hosts" : "leader",
                        asbp_buf_cstr(&t->hosts), asbp_buf_cstr(&t->ports));
    else
        asbp_buf_printf(&t->label, "DataSource %s", asbp_dsn_display(s->dsn));
    return s->pool_key.data && t->label.data ? 0 : -1;
}

asbp_code asbp_source_acquire(asbp_source *s, int64_t deadline_ms,
                              asbp_conn **out, asbp_err *err)
{
    target t;
    asbp_conn *c;
    asbp_connparams p;
    asbp_code rc;
    int64_t now, dl;

    const char *lh = NULL;
    int lp = 0;

    *out = NULL;
    asbp_ctx_check_fork(s->ctx);
    if (!s->nurls
        || !asbp_cluster_leader(s->cluster, asbp_ctx_now(s->ctx), s->p_ttl_ms, &lh, &lp, NULL))
        lh = NULL;
    if (s->route_valid && s->route_members == s->use_members
        && s->route_gen == asbp_cluster_members_gen(s->cluster)
        && (lh ? (s->route_port == lp && strcmp(s->route_host, lh) == 0) : !s->route_host[0])) {
        /* Same route as last time: its pool key is still right. */
        c = asbp_pool_checkout(asbp_ctx_pool(s->ctx), s->pool_key.data);
        if (c) {
            *out = c;
            return ASBP_OK;
        }
    }
    if (build_target(s, &t) < 0) {
        target_free(&t);
        return asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT, "out of memory");
    }
    snprintf(s->route_host, sizeof s->route_host, "%s", lh ? lh : "");
    s->route_port = lp;
    s->route_members = s->use_members;
    s->route_gen = asbp_cluster_members_gen(s->cluster);
    s->route_valid = 1;
    c = asbp_pool_checkout(asbp_ctx_pool(s->ctx), s->pool_key.data);
    if (c) {
        target_free(&t);
        *out = c;
        return ASBP_OK;
    }
    now = asbp_ctx_now(s->ctx);
    dl = now + s->connect_ms;
    if (deadline_ms > 0 && deadline_ms < dl)
        dl = deadline_ms;
    p.keys = t.kw;
    p.values = t.val;
    p.label = asbp_buf_cstr(&t.label);
    rc = asbp_conn_open(&p, asbp_ctx_clock(s->ctx), dl, asbp_ctx_logger(s->ctx), &c, err);
    if (rc == ASBP_OK && asbp_conn_set_key(c, s->pool_key.data) < 0) {
        asbp_conn_free(c);
        c = NULL;
        rc = asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT, "out of memory");
    }
    target_free(&t);
    *out = c;
    return rc;
}

void asbp_source_release(asbp_source *s, asbp_conn *c)
{
    if (!c)
        return;
    asbp_pool_checkin(asbp_ctx_pool(s->ctx), asbp_conn_key(c), c);
}

/* ---- promotion watches ------------------------------------------------- */

static void watches_close(asbp_source *s)
{
    size_t i;
    for (i = 0; i < s->nwatch; i++)
        asbp_conn_free(s->watches[i].c);
    free(s->watches);
    s->watches = NULL;
    s->nwatch = 0;
}

/*
 * Opens (once per failover) a plain connection to every member last seen,
 * all at once, for at most 500 ms (not bounded by the caller's backoff: a
 * watch must outlive one wait to be of any use).
 */
static void watches_open(asbp_source *s, int64_t until_ms)
{
    enum { MAXW = 16 };
    size_t i, n = asbp_cluster_member_count(s->cluster);
    target t[MAXW];
    asbp_connparams p[MAXW];
    asbp_conn *c[MAXW];
    char pbuf[MAXW][16];
    int64_t dl;

    (void)until_ms;
    if (s->nwatch && s->watch_gen != asbp_cluster_members_gen(s->cluster))
        watches_close(s);     /* the members changed since */
    if (s->nwatch || !n)
        return;
    if (n > MAXW)
        n = MAXW;
    s->watches = calloc(n, sizeof *s->watches);
    if (!s->watches)
        return;
    s->nwatch = n;
    s->watch_gen = asbp_cluster_members_gen(s->cluster);
    for (i = 0; i < n; i++) {
        watch *w = &s->watches[i];
        snprintf(w->host, sizeof w->host, "%s", asbp_cluster_member_host(s->cluster, i));
        w->port = asbp_cluster_member_port(s->cluster, i);
        if (build_target(s, &t[i]) < 0) {
            /* as if it could not connect */
            p[i].keys = NULL;
            continue;
        }
        snprintf(pbuf[i], sizeof pbuf[i], "%d", w->port);
        add(&t[i], "host", w->host);
        add(&t[i], "port", pbuf[i]);
        add(&t[i], "hostaddr", "");
        add(&t[i], "target_session_attrs", "any");
        t[i].kw[t[i].n] = NULL;
        t[i].val[t[i].n] = NULL;
        p[i].keys = t[i].kw;
        p[i].values = t[i].val;
        p[i].label = "promotion watch";
    }
    dl = asbp_ctx_now(s->ctx) + 500;
    asbp_conn_open_many(p, n, asbp_ctx_clock(s->ctx), dl, asbp_ctx_logger(s->ctx), c);
    for (i = 0; i < n; i++) {
        s->watches[i].c = c[i];
        s->watches[i].dead = c[i] == NULL;
        target_free(&t[i]);
    }
}

/*
 * Waits until until_ms for a member to be promoted.  Returns 1 and the
 * member when one was seen leaving recovery, 0 at the end of the wait.
 */
static int watch_for_promotion(asbp_source *s, int64_t until_ms,
                               const char **host, int *port, asbp_conn **conn)
{
    static const char *const sql = "SELECT pg_catalog.pg_is_in_recovery()";
    asbp_query q = { sql, 1, 0, NULL, NULL };
    if (!s->nurls) {
        sleep_ms(until_ms - asbp_ctx_now(s->ctx));
        return 0;
    }
    watches_open(s, until_ms);
    for (;;) {
        size_t i;
        int64_t now = asbp_ctx_now(s->ctx), left;
        for (i = 0; i < s->nwatch; i++) {
            watch *w = &s->watches[i];
            PGresult *r = NULL;
            asbp_err e;
            if (!w->c)
                continue;
            asbp_err_clear(&e);
            if (asbp_conn_pipeline(w->c, &q, 1, &r, asbp_ctx_clock(s->ctx), now + 100, NULL, &e)) {
                asbp_conn_free(w->c);
                w->c = NULL;
                continue;
            }
            if (PQntuples(r) == 1) {
                int in_recovery = PQgetvalue(r, 0, 0)[0] == 't';
                if (in_recovery) {
                    w->seen_recovery = 1;
                } else if (w->seen_recovery) {
                    PQclear(r);
                    *host = w->host;
                    *port = w->port;
                    /* Already connected and authenticated: the retried
                     * operation runs on this connection. */
                    *conn = w->c;
                    w->c = NULL;
                    return 1;
                }
            }
            PQclear(r);
        }
        left = until_ms - asbp_ctx_now(s->ctx);
        if (left <= 0)
            return 0;
        sleep_ms(left < WATCH_POLL_MS ? left : WATCH_POLL_MS);
    }
}

/*
 * When the leader now cached is a member with an open watch connection,
 * and that member is out of recovery, makes the watch connection the
 * operation's (pooled under the route's key): saves a connection set-up
 * (a fork and an authentication on the server) at the moment it matters.
 */
static void handover_watch(asbp_source *s, asbp_conn **conn)
{
    static const char *const sql = "SELECT pg_catalog.pg_is_in_recovery()";
    asbp_query q = { sql, 1, 0, NULL, NULL };
    const char *lh;
    int lp;
    size_t i;
    if (*conn || !s->nwatch
        || !asbp_cluster_leader(s->cluster, asbp_ctx_now(s->ctx), s->p_ttl_ms, &lh, &lp, NULL))
        return;
    for (i = 0; i < s->nwatch; i++) {
        watch *w = &s->watches[i];
        PGresult *r = NULL;
        asbp_err e;
        target t;
        int writable;
        if (!w->c || w->port != lp || strcmp(w->host, lh) != 0)
            continue;
        asbp_err_clear(&e);
        if (asbp_conn_pipeline(w->c, &q, 1, &r, asbp_ctx_clock(s->ctx),
                               asbp_ctx_now(s->ctx) + 100, NULL, &e)) {
            asbp_conn_free(w->c);
            w->c = NULL;
            return;
        }
        writable = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 'f';
        PQclear(r);
        if (!writable)
            return;
        if (build_target(s, &t) == 0 && asbp_conn_set_key(w->c, s->pool_key.data) == 0) {
            *conn = w->c;
            w->c = NULL;
        }
        target_free(&t);
        return;
    }
}

/* ---- failover --------------------------------------------------------- */

static void members_text(asbp_cluster *c, char *buf, size_t n)
{
    size_t i, off = 0;
    buf[0] = '\0';
    for (i = 0; i < asbp_cluster_member_count(c) && off < n; i++) {
        int w = snprintf(buf + off, n - off, "%s%s:%d", i ? ", " : "",
                         asbp_cluster_member_host(c, i), asbp_cluster_member_port(c, i));
        if (w < 0)
            break;
        off += (size_t)w;
    }
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
}

/* No usable answer from the API: cached leader, then the members last seen. */
static asbp_code fall_back(asbp_source *s, const char *why, int64_t now)
{
    const char *h;
    int p;
    int64_t age;
    char members[512];
    const asbp_logger *lg = asbp_ctx_logger(s->ctx);

    members_text(s->cluster, members, sizeof members);
    if (asbp_cluster_leader(s->cluster, now, s->p_ttl_ms, &h, &p, &age)) {
        asbp_log(lg, ASBP_LOG_WARN, "%s for DataSource %s, using cached leader "
                 "%s:%d (%llds old)", why, asbp_dsn_display(s->dsn), h, p,
                 (long long)(age / 1000));
        s->use_members = asbp_cluster_member_count(s->cluster) > 0;
        return ASBP_OK;
    }
    if (asbp_cluster_member_count(s->cluster)) {
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

asbp_code asbp_source_discover_now(asbp_source *s, asbp_discovery_result *res,
                                   asbp_err *err)
{
    asbp_discovery_cfg cfg;
    memset(res, 0, sizeof *res);
    if (!s->nurls)
        return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                            "DataSource %s has no PatroniUrl", asbp_dsn_display(s->dsn));
    discovery_cfg(s, &cfg);
    return asbp_discover(&cfg, asbp_ctx_clock(s->ctx),
                         asbp_ctx_now(s->ctx) + s->p_timeout_ms,
                         asbp_ctx_logger(s->ctx), res, err);
}

size_t asbp_source_url_count(const asbp_source *s) { return s->nurls; }
const char *asbp_source_url(const asbp_source *s, size_t i) { return i < s->nurls ? s->urls[i] : NULL; }
int64_t asbp_source_cache_ttl(const asbp_source *s) { return s->p_ttl_ms; }
int64_t asbp_source_breaker_delay(const asbp_source *s) { return s->p_breaker_ms; }

asbp_code asbp_source_failover(asbp_source *s, int64_t deadline_ms, asbp_err *err)
{
    const asbp_logger *lg = asbp_ctx_logger(s->ctx);
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
    rc = asbp_discover(&cfg, asbp_ctx_clock(s->ctx), dl, lg, &res, &derr);
    now = asbp_ctx_now(s->ctx);
    if (rc != ASBP_OK) {
        asbp_discovery_result_clear(&res);
        *err = derr;
        asbp_err_prefix(err, "DataSource %s: Patroni discovery", asbp_dsn_display(s->dsn));
        return rc;
    }
    switch (res.outcome) {
    case ASBP_DISC_LEADER:
        remember_members(s, res.topology, now);
        if (asbp_cluster_set_leader(s->cluster, res.leader_host, res.leader_port, now) < 0) {
            asbp_discovery_result_clear(&res);
            return asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT, "out of memory");
        }
        s->use_members = 0;
        ASBP_TRACE(lg, "pid %ld: leader of DataSource %s is %s:%d (from %s)",
                   (long)getpid(), asbp_dsn_display(s->dsn), res.leader_host,
                   res.leader_port, res.endpoint);
        asbp_discovery_result_clear(&res);
        return ASBP_OK;
    case ASBP_DISC_TRANSITION:
    case ASBP_DISC_SPLIT:
        /* The API works; the cluster has no usable leader right now.  Not a
         * failing API: the breaker stays closed so we can follow it. */
        asbp_cluster_count(s->cluster, ASBP_COUNT_TRANSITIONS);
        remember_members(s, res.topology, now);
        asbp_cluster_forget_leader(s->cluster);
        s->use_members = 0;
        asbp_err_set(err, ASBP_E_DISCOVERY, ASBP_EC_FAILOVER,
                     "DataSource %s: %s", asbp_dsn_display(s->dsn),
                     res.outcome == ASBP_DISC_SPLIT
                         ? "Patroni endpoints name different leaders (Multiple leaders detected); refusing to write"
                         : "No leader found: the cluster has no writable leader yet");
        asbp_discovery_result_clear(&res);
        return ASBP_E_DISCOVERY;
    case ASBP_DISC_FAILED:
    default:
        asbp_cluster_count(s->cluster, ASBP_COUNT_API_FAILURES);
        asbp_cluster_trip(s->cluster, now);
        asbp_discovery_result_clear(&res);
        return fall_back(s, "Patroni API unavailable", now);
    }
}

static asbp_code run_inner(asbp_source *s, asbp_conn **conn, int64_t start_ms,
                           asbp_attempt_fn fn, void *ud, asbp_err *err)
{
    int64_t deadline = start_ms + s->failover_ms;
    int failovers = 0, retries = 0;
    int64_t backoff = 0;
    asbp_err last, first;
    asbp_code rc;

    asbp_err_clear(&last);
    asbp_err_clear(&first);
    for (;;) {
        rc = ASBP_OK;
        if (!*conn)
            rc = asbp_source_acquire(s, deadline, conn, err);
        if (rc == ASBP_OK) {
            rc = fn(ud, *conn, err);
            if (rc == ASBP_OK) {
                if (failovers)
                    asbp_log(asbp_ctx_logger(s->ctx), ASBP_LOG_INFO,
                             "DataSource %s: reconnected to %s, operation "
                             "succeeded after %lld ms (first error: %s)",
                             asbp_dsn_display(s->dsn), asbp_conn_server(*conn),
                             (long long)(asbp_ctx_now(s->ctx) - start_ms),
                             first.msg);
                return ASBP_OK;
            }
        }
        if (err->eclass != ASBP_EC_FAILOVER && err->eclass != ASBP_EC_RETRY)
            return rc;
        if (*conn) {
            /* Other idle connections to the same node are suspect too. */
            asbp_pool_drop(asbp_ctx_pool(s->ctx), asbp_conn_key(*conn));
            asbp_conn_free(*conn);
            *conn = NULL;
        }
        if (err->eclass == ASBP_EC_RETRY) {
            if (++retries > 3 || asbp_ctx_now(s->ctx) + 10 * retries >= deadline)
                return rc;
            asbp_cluster_count(s->cluster, ASBP_COUNT_RETRIES);
            sleep_ms(10 * retries);
            continue;
        }
        last = *err;
        if (failovers++ == 0) {
            asbp_cluster_count(s->cluster, ASBP_COUNT_FAILOVERS);
            first = *err;
        }
        for (;;) {
            asbp_err ferr;
            int64_t now = asbp_ctx_now(s->ctx);
            if (now >= deadline) {
                *err = last;
                asbp_err_prefix(err, "no writable leader within FailoverTimeout "
                                "(%lld ms) for DataSource %s; last error",
                                (long long)s->failover_ms, asbp_dsn_display(s->dsn));
                return err->code;
            }
            if (backoff) {
                const char *ph;
                int pp;
                int64_t until = now + (backoff < deadline - now ? backoff : deadline - now);
                backoff = backoff * 2 > 200 ? 200 : backoff * 2;
                asbp_conn *wc = NULL;
                if (watch_for_promotion(s, until, &ph, &pp, &wc)) {
                    target t;
                    asbp_log(asbp_ctx_logger(s->ctx), ASBP_LOG_INFO,
                             "DataSource %s: member %s:%d was promoted, using it "
                             "as the leader", asbp_dsn_display(s->dsn), ph, pp);
                    asbp_cluster_set_leader(s->cluster, ph, pp, asbp_ctx_now(s->ctx));
                    s->use_members = 0;
                    /* Pool the watch's connection under the new route. */
                    if (build_target(s, &t) == 0
                        && asbp_conn_set_key(wc, s->pool_key.data) == 0) {
                        *conn = wc;
                        wc = NULL;
                    }
                    target_free(&t);
                    asbp_conn_free(wc);
                    break;
                }
            }
            asbp_err_clear(&ferr);
            rc = asbp_source_failover(s, deadline, &ferr);
            if (rc == ASBP_OK) {
                /* The API names a leader we are already watching: that
                 * connection is open and authenticated, use it. */
                handover_watch(s, conn);
                break;
            }
            if (ferr.eclass != ASBP_EC_FAILOVER) {
                *err = ferr;
                return rc;
            }
            last = ferr;
            if (!backoff)
                backoff = 20;
        }
        /* Reconnect at once the first time; later, after a short wait. */
        if (!backoff && failovers > 1)
            backoff = 20;
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
    if (s->nwatch && !(rc && err->eclass == ASBP_EC_FAILOVER))
        watches_close(s);
    return rc;
}
