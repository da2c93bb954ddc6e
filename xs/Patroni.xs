/*
 * XS glue for Apache::Session::Browseable::Patroni.
 *
 * Only marshalling lives here: Perl values become C structs and calls into
 * the core (c_src/), C errors become Perl exceptions after every C resource
 * is released.  The one per-interpreter context (connection pool, cluster
 * states) is kept in MY_CXT.
 */
#define PERL_NO_GET_CONTEXT
#include "EXTERN.h"
#include "perl.h"
#include "XSUB.h"
#include "ppport.h"

#include <string.h>
#include <curl/curl.h>

#include "asbp_ctx.h"
#include "asbp_discovery.h"
#include "asbp_random.h"
#include "asbp_schema.h"
#include "asbp_source.h"
#include "asbp_store.h"

#define MY_CXT_KEY "Apache::Session::Browseable::Patroni::_guts" XS_VERSION

typedef struct {
    asbp_ctx *ctx;
} my_cxt_t;

START_MY_CXT

#define LOG_PREFIX "Apache::Session::Browseable::Patroni"

/* ---- logging: the core's messages go to STDERR, as upstream's do ------ */

static void xs_log(void *ud, asbp_log_level level, const char *msg)
{
    dTHX;
    static const char *const names[] = { "error", "warning", "info", "trace" };
    PERL_UNUSED_ARG(ud);
    PerlIO_printf(PerlIO_stderr(), "%s[%ld] %s: %s\n", LOG_PREFIX,
                  (long)getpid(), names[level <= ASBP_LOG_TRACE ? level : 0], msg);
    PerlIO_flush(PerlIO_stderr());
}

static asbp_ctx *new_ctx(pTHX)
{
    asbp_ctx *ctx = asbp_ctx_new();
    const char *trace;
    if (!ctx)
        croak("%s: out of memory", LOG_PREFIX);
    asbp_ctx_logger(ctx)->fn = xs_log;
    trace = getenv("ASBP_TRACE");
    asbp_ctx_logger(ctx)->trace = trace && *trace && strcmp(trace, "0") != 0;
    return ctx;
}

/* Runs at interpreter destruction: drop the interpreter's reference; the
 * context goes when the last tied store holding it is freed. */
static void release_ctx(pTHX_ void *p)
{
    dMY_CXT;
    PERL_UNUSED_ARG(p);
    asbp_ctx_release(MY_CXT.ctx);
    MY_CXT.ctx = NULL;
}

static asbp_ctx *the_ctx(pTHX)
{
    dMY_CXT;
    if (!MY_CXT.ctx)
        croak("%s: used after interpreter shutdown", LOG_PREFIX);
    return MY_CXT.ctx;
}

/* ---- errors --------------------------------------------------------- */

/*
 * An error while Perl runs a destructor (Apache::Session's DESTROY saves
 * the session at untie; the store's DESTROY commits) would become Perl's
 * "(in cleanup)" warning -- which Perl prints only when the 'misc' warnings
 * are enabled where the error was raised, and Apache/Session.pm does not
 * enable them: the caller would never learn that its change was not saved.
 * So there, and only there, the error is printed as that warning
 * unconditionally, and the destructor goes on.
 */
static int in_destructor(pTHX)
{
    return (PL_in_eval & EVAL_KEEPERR) != 0;
}

static void croak_err(pTHX_ const asbp_err *e);

/* croak_err, or the warning above when called from a destructor. */
static void report_err(pTHX_ const asbp_err *e)
{
    if (!in_destructor(aTHX))
        croak_err(aTHX_ e);
    if (e->sqlstate[0])
        warn("\t(in cleanup) %s: %s [SQLSTATE %s]", LOG_PREFIX, e->msg, e->sqlstate);
    else
        warn("\t(in cleanup) %s: %s", LOG_PREFIX, e->msg);
}

static void croak_err(pTHX_ const asbp_err *e)
{
    if (e->code == ASBP_E_NOTFOUND)
        croak("Object does not exist in the data store");
    if (e->sqlstate[0])
        croak("%s: %s [SQLSTATE %s]", LOG_PREFIX, e->msg, e->sqlstate);
    croak("%s: %s", LOG_PREFIX, e->msg);
}

/* ---- options -------------------------------------------------------- */

static SV *opt(pTHX_ HV *args, const char *key)
{
    SV **svp = hv_fetch(args, key, (I32)strlen(key), 0);
    if (!svp)
        return NULL;
    SvGETMAGIC(*svp);
    return SvOK(*svp) ? *svp : NULL;
}

static const char *opt_str(pTHX_ HV *args, const char *key)
{
    SV *sv = opt(aTHX_ args, key);
    return sv ? SvPV_nolen(sv) : NULL;
}

/* Seconds (fractional allowed) to milliseconds; -1 when absent. */
static int64_t opt_seconds(pTHX_ HV *args, const char *key)
{
    SV *sv = opt(aTHX_ args, key);
    NV v;
    if (!sv)
        return -1;
    if (!looks_like_number(sv))
        croak("%s: invalid %s '%" SVf "': expected a number of seconds",
              LOG_PREFIX, key, SVfARG(sv));
    v = SvNV(sv);
    if (v < 0 || v > 86400.0)
        croak("%s: invalid %s '%" SVf "': expected between 0 and 86400 seconds",
              LOG_PREFIX, key, SVfARG(sv));
    return (int64_t)(v * 1000.0 + 0.5);
}

static void fill_options(pTHX_ HV *args, asbp_options *o)
{
    SV *v;
    asbp_options_init(o);
    if (hv_exists(args, "Handle", 6))
        croak("%s: the Handle option (an open DBI handle) is not supported: "
              "this backend opens its own libpq connections; give DataSource, "
              "UserName and Password instead", LOG_PREFIX);
    o->datasource = opt_str(aTHX_ args, "DataSource");
    o->user = opt_str(aTHX_ args, "UserName");
    o->password = opt_str(aTHX_ args, "Password");
    o->table = opt_str(aTHX_ args, "TableName");
    o->connect_timeout_ms = opt_seconds(aTHX_ args, "ConnectTimeout");
    o->failover_timeout_ms = opt_seconds(aTHX_ args, "FailoverTimeout");
    o->query_timeout_ms = opt_seconds(aTHX_ args, "QueryTimeout");
    o->patroni_urls = opt_str(aTHX_ args, "PatroniUrl");
    if (!o->patroni_urls)
        o->patroni_urls = opt_str(aTHX_ args, "patroniUrl");
    o->patroni_timeout_ms = opt_seconds(aTHX_ args, "PatroniTimeout");
    o->patroni_cache_ttl_ms = opt_seconds(aTHX_ args, "PatroniCacheTTL");
    o->patroni_breaker_ms = opt_seconds(aTHX_ args, "PatroniCircuitBreakerDelay");
    v = opt(aTHX_ args, "PatroniVerifySSL");
    o->patroni_verify_ssl = v ? (SvTRUE(v) ? 1 : 0) : -1;
    o->patroni_ca_file = opt_str(aTHX_ args, "PatroniSSLCAFile");
    o->patroni_ca_path = opt_str(aTHX_ args, "PatroniSSLCAPath");
    o->patroni_cert_file = opt_str(aTHX_ args, "PatroniSSLCertFile");
    o->patroni_key_file = opt_str(aTHX_ args, "PatroniSSLKeyFile");
}

static HV *hash_arg(pTHX_ SV *sv, const char *what)
{
    if (!sv || !SvROK(sv) || SvTYPE(SvRV(sv)) != SVt_PVHV)
        croak("%s: %s must be a hash reference", LOG_PREFIX, what);
    return (HV *)SvRV(sv);
}

static asbp_source *source_for(pTHX_ HV *args)
{
    asbp_options o;
    asbp_source *src;
    asbp_err e;
    fill_options(aTHX_ args, &o);
    asbp_err_clear(&e);
    if (asbp_source_get(the_ctx(aTHX), &o, &src, &e) != ASBP_OK)
        croak_err(aTHX_ &e);
    return src;
}

/* ---- the store object: a blessed hash with the C store as magic ------ */

static int store_mg_free(pTHX_ SV *sv, MAGIC *mg)
{
    PERL_UNUSED_ARG(sv);
    asbp_store_free((asbp_store *)mg->mg_ptr);   /* ROLLBACK if still open */
    mg->mg_ptr = NULL;
    return 0;
}

static int store_mg_dup(pTHX_ MAGIC *mg, CLONE_PARAMS *param)
{
    PERL_UNUSED_ARG(param);
    mg->mg_ptr = NULL;   /* a new thread never shares the C store */
    return 0;
}

static MGVTBL store_vtbl = {
    NULL, NULL, NULL, NULL, store_mg_free, NULL, store_mg_dup, NULL
};

static HV *store_hv(pTHX_ SV *self)
{
    if (!self || !SvROK(self) || SvTYPE(SvRV(self)) != SVt_PVHV)
        croak("%s: not a store object", LOG_PREFIX);
    return (HV *)SvRV(self);
}

/* The C store of self; created from session->{args} on first use. */
static asbp_store *store_of(pTHX_ SV *self, SV *session)
{
    HV *hv = store_hv(aTHX_ self);
    MAGIC *mg = mg_findext((SV *)hv, PERL_MAGIC_ext, &store_vtbl);
    HV *sess, *args;
    SV **svp, *commit;
    asbp_source *src;
    asbp_store *st;

    if (mg) {
        if (!mg->mg_ptr)
            croak("%s: this store object belongs to another thread", LOG_PREFIX);
        return (asbp_store *)mg->mg_ptr;
    }
    if (!session)
        return NULL;
    sess = hash_arg(aTHX_ session, "the session");
    svp = hv_fetchs(sess, "args", 0);
    args = hash_arg(aTHX_ svp ? *svp : NULL, "the session's args");
    src = source_for(aTHX_ args);
    commit = opt(aTHX_ args, "Commit");
    st = asbp_store_new(src, commit ? SvTRUE(commit) : 1);
    if (!st)
        croak("%s: out of memory", LOG_PREFIX);
    mg = sv_magicext((SV *)hv, NULL, PERL_MAGIC_ext, &store_vtbl, (const char *)st, 0);
    mg->mg_flags |= MGf_DUP;
    return st;
}

static const char *session_id(pTHX_ SV *session)
{
    HV *sess = hash_arg(aTHX_ session, "the session");
    SV **data = hv_fetchs(sess, "data", 0);
    SV **id;
    STRLEN len;
    const char *p;
    if (!data || !SvROK(*data) || SvTYPE(SvRV(*data)) != SVt_PVHV)
        croak("%s: the session has no data", LOG_PREFIX);
    id = hv_fetchs((HV *)SvRV(*data), "_session_id", 0);
    if (!id || !SvOK(*id))
        croak("%s: the session has no _session_id", LOG_PREFIX);
    p = SvPV(*id, len);
    if (len == 0 || strlen(p) != len)
        croak("%s: invalid session id", LOG_PREFIX);
    return p;
}

static const char *session_serialized(pTHX_ SV *session)
{
    HV *sess = hash_arg(aTHX_ session, "the session");
    SV **s = hv_fetchs(sess, "serialized", 0);
    STRLEN len;
    const char *p;
    if (!s || !SvOK(*s))
        croak("%s: the session was not serialized", LOG_PREFIX);
    /* Characters to UTF-8 bytes (upgrading a Latin-1 string if needed),
     * on a copy: the caller's value is left as it is. */
    if (!SvUTF8(*s)) {
        SV *copy = sv_2mortal(newSVsv(*s));
        p = SvPVutf8(copy, len);
    } else {
        p = SvPV(*s, len);
    }
    if (strlen(p) != len)
        croak("%s: session data contains a NUL character", LOG_PREFIX);
    return p;
}

MODULE = Apache::Session::Browseable::Patroni    PACKAGE = Apache::Session::Browseable::Patroni

PROTOTYPES: DISABLE

BOOT:
{
    MY_CXT_INIT;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    MY_CXT.ctx = new_ctx(aTHX);
    Perl_call_atexit(aTHX_ release_ctx, NULL);
}

void
CLONE(...)
CODE:
{
    /* A new interpreter (thread) gets its own context: connections and
     * cluster states are never shared between threads. */
    MY_CXT_CLONE;
    MY_CXT.ctx = new_ctx(aTHX);
    Perl_call_atexit(aTHX_ release_ctx, NULL);
}

SV *
_random_hex(len)
    IV len
CODE:
{
    asbp_err e;
    char *buf;
    if (len < 1 || len > 4096)
        croak("%s: invalid IDLength %" IVdf ": expected 1 to 4096", LOG_PREFIX, len);
    RETVAL = newSV((STRLEN)len + 1);
    SvPOK_on(RETVAL);
    buf = SvPVX(RETVAL);
    asbp_err_clear(&e);
    if (asbp_random_hex(buf, (size_t)len, &e) != ASBP_OK) {
        SvREFCNT_dec(RETVAL);
        croak_err(aTHX_ &e);
    }
    SvCUR_set(RETVAL, (STRLEN)len);
}
OUTPUT:
    RETVAL

void
_clock_offset_ms(ms)
    IV ms
CODE:
    asbp_ctx_clock(the_ctx(aTHX))->offset_ms = (int64_t)ms;

void
_inject_commit_lost(n)
    IV n
CODE:
    asbp_ctx_inject_commit_lost(the_ctx(aTHX), (int)n);

IV
_now_ms()
CODE:
    RETVAL = (IV)asbp_ctx_now(the_ctx(aTHX));
OUTPUT:
    RETVAL

IV
_pool_idle()
CODE:
    RETVAL = (IV)asbp_pool_idle_count(asbp_ctx_pool(the_ctx(aTHX)));
OUTPUT:
    RETVAL

void
_pool_conns()
PPCODE:
{
    /* [server, pid, statements prepared] of each idle pooled connection. */
    asbp_pool *pool = asbp_ctx_pool(the_ctx(aTHX));
    size_t i;
    asbp_conn *c;
    for (i = 0; (c = asbp_pool_idle_at(pool, i)) != NULL; i++) {
        AV *av = newAV();
        av_push(av, newSVpv(asbp_conn_server(c), 0));
        av_push(av, newSViv((IV)asbp_conn_pid(c)));
        av_push(av, newSVuv((UV)asbp_conn_prepare_count(c)));
        mXPUSHs(newRV_noinc((SV *)av));
    }
}

SV *
_status(args)
    SV *args
CODE:
{
    /* This process's view of a DataSource: the per-process state the
     * class method status() documents. */
    asbp_source *src = source_for(aTHX_ hash_arg(aTHX_ args, "the options"));
    asbp_ctx *ctx = the_ctx(aTHX);
    asbp_cluster *cl = asbp_source_cluster(src);
    asbp_cluster_stats *st = asbp_cluster_stats_of(cl);
    int64_t now = asbp_ctx_now(ctx), age, left, at;
    const char *h;
    int port;
    HV *hv = newHV(), *cnt = newHV();
    AV *members = newAV(), *urls = newAV();
    size_t i;
    char buf[600];

    (void)hv_stores(hv, "datasource", newSVpv(asbp_source_display(src), 0));
    (void)hv_stores(hv, "table", newSVpv(asbp_source_table(src), 0));
    for (i = 0; i < asbp_source_url_count(src); i++)
        av_push(urls, newSVpv(asbp_url_mask(asbp_source_url(src, i), buf, sizeof buf), 0));
    (void)hv_stores(hv, "patroni_urls", newRV_noinc((SV *)urls));
    (void)hv_stores(hv, "cache_ttl", newSVnv(asbp_source_cache_ttl(src) / 1000.0));
    (void)hv_stores(hv, "breaker_delay", newSVnv(asbp_source_breaker_delay(src) / 1000.0));
    if (asbp_cluster_last_leader(cl, &h, &port, &at)) {
        snprintf(buf, sizeof buf, "%s:%d", h, port);
        (void)hv_stores(hv, "leader", newSVpv(buf, 0));
        age = now - at;
        (void)hv_stores(hv, "leader_age", newSVnv(age / 1000.0));
        (void)hv_stores(hv, "leader_cached",
                        newSViv(asbp_cluster_leader(cl, now, asbp_source_cache_ttl(src), NULL, NULL, NULL)));
    } else {
        (void)hv_stores(hv, "leader", newSV(0));
        (void)hv_stores(hv, "leader_age", newSV(0));
        (void)hv_stores(hv, "leader_cached", newSViv(0));
    }
    if (asbp_cluster_breaker_open(cl, now, asbp_source_breaker_delay(src), &left)) {
        (void)hv_stores(hv, "breaker_open", newSViv(1));
        (void)hv_stores(hv, "breaker_remaining", newSVnv(left / 1000.0));
    } else {
        (void)hv_stores(hv, "breaker_open", newSViv(0));
        (void)hv_stores(hv, "breaker_remaining", newSViv(0));
    }
    for (i = 0; i < asbp_cluster_member_count(cl); i++) {
        snprintf(buf, sizeof buf, "%s:%d", asbp_cluster_member_host(cl, i),
                 asbp_cluster_member_port(cl, i));
        av_push(members, newSVpv(buf, 0));
    }
    (void)hv_stores(hv, "members_last_seen", newRV_noinc((SV *)members));
    (void)hv_stores(cnt, "discoveries", newSVuv(st->discoveries));
    (void)hv_stores(cnt, "api_failures", newSVuv(st->api_failures));
    (void)hv_stores(cnt, "transitions", newSVuv(st->transitions));
    (void)hv_stores(cnt, "leader_changes", newSVuv(st->leader_changes));
    (void)hv_stores(cnt, "failovers", newSVuv(st->failovers));
    (void)hv_stores(cnt, "retries", newSVuv(st->retries));
    (void)hv_stores(cnt, "breaker_skips", newSVuv(st->breaker_skips));
    (void)hv_stores(hv, "counters", newRV_noinc((SV *)cnt));
    (void)hv_stores(hv, "pool_idle", newSVuv(asbp_pool_idle_count(asbp_ctx_pool(ctx))));
    (void)hv_stores(hv, "pid", newSViv((IV)getpid()));
    RETVAL = newRV_noinc((SV *)hv);
}
OUTPUT:
    RETVAL

SV *
_discover_now(args)
    SV *args
CODE:
{
    asbp_source *src = source_for(aTHX_ hash_arg(aTHX_ args, "the options"));
    asbp_discovery_result res;
    asbp_err e;
    HV *hv = newHV();
    AV *members = newAV();
    static const char *const outcomes[] = { "leader", "transition", "split", "failed" };
    char buf[300];
    size_t i;
    asbp_err_clear(&e);
    if (asbp_source_discover_now(src, &res, &e) != ASBP_OK) {
        asbp_discovery_result_clear(&res);
        SvREFCNT_dec((SV *)hv);
        SvREFCNT_dec((SV *)members);
        croak_err(aTHX_ &e);
    }
    (void)hv_stores(hv, "outcome", newSVpv(outcomes[res.outcome <= ASBP_DISC_FAILED ? res.outcome : 3], 0));
    if (res.outcome == ASBP_DISC_LEADER) {
        snprintf(buf, sizeof buf, "%s:%d", res.leader_host, res.leader_port);
        (void)hv_stores(hv, "leader", newSVpv(buf, 0));
    }
    (void)hv_stores(hv, "endpoint", newSVpv(res.endpoint, 0));
    (void)hv_stores(hv, "elapsed_ms", newSViv((IV)res.elapsed_ms));
    (void)hv_stores(hv, "answered", newSVuv(res.answered));
    (void)hv_stores(hv, "requests", newSVuv(res.requests));
    if (e.msg[0])
        (void)hv_stores(hv, "error", newSVpv(e.msg, 0));
    for (i = 0; res.topology && i < res.topology->n; i++) {
        const asbp_member *m = &res.topology->members[i];
        HV *mh = newHV();
        (void)hv_stores(mh, "name", m->name ? newSVpv(m->name, 0) : newSV(0));
        (void)hv_stores(mh, "role", m->role ? newSVpv(m->role, 0) : newSV(0));
        (void)hv_stores(mh, "state", m->state ? newSVpv(m->state, 0) : newSV(0));
        (void)hv_stores(mh, "host", m->host ? newSVpv(m->host, 0) : newSV(0));
        (void)hv_stores(mh, "port", m->port ? newSViv(m->port) : newSV(0));
        av_push(members, newRV_noinc((SV *)mh));
    }
    (void)hv_stores(hv, "members", newRV_noinc((SV *)members));
    asbp_discovery_result_clear(&res);
    RETVAL = newRV_noinc((SV *)hv);
}
OUTPUT:
    RETVAL

SV *
_schema(args, kind, dry_run, fix_unlogged)
    SV *args
    const char *kind
    int dry_run
    int fix_unlogged
CODE:
{
    asbp_source *src = source_for(aTHX_ hash_arg(aTHX_ args, "the options"));
    int k = asbp_schema_kind_of(kind);
    asbp_schema_report rep;
    asbp_err e;
    HV *hv;
    AV *items;
    size_t i;
    char pers[2] = { 0, 0 };
    if (k < 0)
        croak("%s: unknown session kind '%s' (global, persistent, saml, oidc or cas)",
              LOG_PREFIX, kind);
    asbp_err_clear(&e);
    if (asbp_schema_apply(src, (asbp_schema_kind)k, dry_run, fix_unlogged, &rep, &e) != ASBP_OK) {
        asbp_schema_report_clear(&rep);
        croak_err(aTHX_ &e);
    }
    hv = newHV();
    items = newAV();
    (void)hv_stores(hv, "table", newSVpv(asbp_source_table(src), 0));
    (void)hv_stores(hv, "table_existed", newSViv(rep.table_existed));
    pers[0] = rep.persistence;
    (void)hv_stores(hv, "persistence", newSVpv(pers, 0));
    (void)hv_stores(hv, "made_logged", newSViv(rep.made_logged));
    for (i = 0; i < rep.n; i++) {
        HV *ih = newHV();
        (void)hv_stores(ih, "what", newSVpv(rep.items[i].what, 0));
        (void)hv_stores(ih, "sql", newSVpv(rep.items[i].sql, 0));
        (void)hv_stores(ih, "existed", newSViv(rep.items[i].existed));
        (void)hv_stores(ih, "done", newSViv(rep.items[i].done));
        av_push(items, newRV_noinc((SV *)ih));
    }
    (void)hv_stores(hv, "items", newRV_noinc((SV *)items));
    asbp_schema_report_clear(&rep);
    RETVAL = newRV_noinc((SV *)hv);
}
OUTPUT:
    RETVAL

void
_check_options(args)
    SV *args
CODE:
    (void)source_for(aTHX_ hash_arg(aTHX_ args, "the options"));

MODULE = Apache::Session::Browseable::Patroni    PACKAGE = Apache::Session::Browseable::Store::Patroni

void
insert(self, session)
    SV *self
    SV *session
ALIAS:
    update = 1
CODE:
{
    asbp_store *st = store_of(aTHX_ self, session);
    const char *id = session_id(aTHX_ session);
    const char *data = session_serialized(aTHX_ session);
    asbp_err e;
    asbp_code rc;
    asbp_err_clear(&e);
    rc = ix == 0 ? asbp_store_insert(st, id, data, &e)
                 : asbp_store_update(st, id, data, &e);
    if (rc != ASBP_OK)
        report_err(aTHX_ &e);
}

void
materialize(self, session)
    SV *self
    SV *session
CODE:
{
    asbp_store *st = store_of(aTHX_ self, session);
    const char *id = session_id(aTHX_ session);
    const char *data;
    size_t len;
    asbp_err e;
    asbp_err_clear(&e);
    if (asbp_store_materialize(st, id, &data, &len, &e) != ASBP_OK)
        croak_err(aTHX_ &e);
    (void)hv_stores(hash_arg(aTHX_ session, "the session"), "serialized",
                    newSVpvn_utf8(data, len, 1));
}

void
remove(self, session)
    SV *self
    SV *session
CODE:
{
    asbp_store *st = store_of(aTHX_ self, session);
    const char *id = session_id(aTHX_ session);
    asbp_err e;
    asbp_err_clear(&e);
    if (asbp_store_remove(st, id, &e) != ASBP_OK)
        report_err(aTHX_ &e);
}

void
close(self, ...)
    SV *self
ALIAS:
    DESTROY = 1
CODE:
{
    /* Ends the transaction: COMMIT what was written (Commit option, default
     * 1) or ROLLBACK.  DESTROY does the same, as Apache::Session::Store::
     * Postgres does; an error there becomes Perl's "(in cleanup)" warning. */
    asbp_store *st = store_of(aTHX_ self, NULL);
    asbp_err e;
    PERL_UNUSED_VAR(ix);
    if (!st)
        XSRETURN_EMPTY;
    asbp_err_clear(&e);
    if (asbp_store_close(st, &e) != ASBP_OK)
        report_err(aTHX_ &e);
}

SV *
server(self)
    SV *self
CODE:
{
    asbp_store *st = store_of(aTHX_ self, NULL);
    RETVAL = st && asbp_store_in_transaction(st)
           ? newSVpv(asbp_store_server(st), 0) : &PL_sv_undef;
}
OUTPUT:
    RETVAL
