#include "asbp_browse.h"
#include "asbp_pid.h"
#include "asbp_standby.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_PURGE_PARAMS 256
/* searchOn's statements are prepared once per connection (the planner then
 * skips planning); beyond this many on a connection, they run unnamed. */
#define MAX_BROWSE_STATEMENTS 64

typedef enum bstate { B_STREAMING, B_DONE, B_FAILED } bstate;

struct asbp_browse {
    asbp_source *src;       /* borrowed: owned by the context */
    asbp_ctx *ctx;          /* retained by asbp_browse_open, released by _free */
    asbp_conn *conn;        /* checked out while the stream runs */
    asbp_browse_filter filter;
    int whole;
    char *field;            /* owned */
    char *value;            /* owned: value or LIKE pattern; NULL: SQL NULL */
    int has_param;
    char **fields;          /* owned, nfields owned strings */
    size_t nfields;
    asbp_buf sql;           /* owned: the SQL text last sent */
    asbp_row *first;        /* owned: first row, received by the (re)start */
    asbp_row *row;          /* owned: the current row */
    bstate state;
    unsigned long count;
    int restarts;
    int64_t query_ms;
    int on_standby;         /* the stream runs on the synchronous standby */
    int standby_failed;     /* it failed there: restarts go to the leader */
};

/* ---- pure helpers ----------------------------------------------------- */

int asbp_browse_is_integer(const char *s)
{
    const char *p = s;
    unsigned long long v = 0, limit = 9223372036854775807ULL;
    if (!p)
        return 0;
    if (*p == '-') {
        limit++;    /* -9223372036854775808 is a bigint */
        p++;
    }
    if (!*p)
        return 0;
    for (; *p; p++) {
        unsigned d;
        if (*p < '0' || *p > '9')
            return 0;
        d = (unsigned)(*p - '0');
        if (v > (limit - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    return 1;
}

int asbp_browse_like_pattern(const char *pattern, asbp_buf *out)
{
    const char *p;
    int rc = 0;
    asbp_buf_reset(out);
    rc |= asbp_buf_reserve(out, strlen(pattern) * 2);
    for (p = pattern; *p; p++) {
        if (*p == '*') {
            rc |= asbp_buf_append(out, "%", 1);
        } else {
            if (*p == '%' || *p == '_' || *p == '\\')
                rc |= asbp_buf_append(out, "\\", 1);
            rc |= asbp_buf_append(out, p, 1);
        }
    }
    rc |= asbp_buf_append(out, "", 0);    /* terminates even an empty pattern */
    return rc ? -1 : 0;
}

static asbp_code nomem(asbp_err *err)
{
    return asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT, "out of memory");
}

/* Appends "a_session ->> '<field>'" with the field quoted by quote(). */
static int put_field(asbp_buf *sql, const char *field, asbp_quote_fn quote,
                     void *ud, asbp_err *err)
{
    if (asbp_buf_puts(sql, "a_session ->> ") < 0) {
        nomem(err);
        return -1;
    }
    return quote(ud, field, sql, err);
}

asbp_code asbp_browse_select_sql(const asbp_browse_spec *spec, const char *table_sql,
                                 asbp_quote_fn quote, void *ud, asbp_buf *sql,
                                 asbp_err *err)
{
    size_t i;
    int rc = 0;

    asbp_buf_reset(sql);
    if (spec->filter != ASBP_BROWSE_ALL && !spec->field)
        return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT, "no field name given");
    if (!spec->whole && spec->nfields && !spec->fields)
        return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT, "no field list given");
    rc |= asbp_buf_puts(sql, spec->whole ? "SELECT id, a_session" : "SELECT id");
    if (rc)
        return nomem(err);
    if (!spec->whole) {
        for (i = 0; i < spec->nfields; i++) {
            if (!spec->fields[i])
                return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                                    "field name %zu of the list is undefined", i + 1);
            if (asbp_buf_puts(sql, ", ") < 0)
                return nomem(err);
            if (put_field(sql, spec->fields[i], quote, ud, err) < 0)
                return err->code;
        }
    }
    if (asbp_buf_printf(sql, " FROM %s", table_sql) < 0)
        return nomem(err);
    if (spec->filter == ASBP_BROWSE_ALL)
        return ASBP_OK;
    if (asbp_buf_puts(sql, " WHERE ") < 0)
        return nomem(err);
    if (put_field(sql, spec->field, quote, ud, err) < 0)
        return err->code;
    if (asbp_buf_puts(sql, spec->filter == ASBP_BROWSE_EQ ? " = $1" : " LIKE $1") < 0)
        return nomem(err);
    return ASBP_OK;
}

static asbp_code check_items(const asbp_purge_item *it, size_t n, int integers,
                             const char *group, asbp_err *err)
{
    size_t i;
    if (n && !it)
        return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                            "deleteIfLowerThan: no '%s' items given", group);
    for (i = 0; i < n; i++) {
        if (!it[i].field)
            return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                                "deleteIfLowerThan: undefined field name in '%s'", group);
        if (integers && !asbp_browse_is_integer(it[i].value))
            return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                                "deleteIfLowerThan: the threshold of '%.200s' in '%s' "
                                "must be an integer (optional '-' and digits, within "
                                "the bigint range), got %s%.100s%s", it[i].field, group,
                                it[i].value ? "'" : "",
                                it[i].value ? it[i].value : "undef",
                                it[i].value ? "'" : "");
    }
    return ASBP_OK;
}

/* The rule is usable: not empty, integers where integers are due. */
static asbp_code check_rule(const asbp_purge_rule *rule, asbp_err *err)
{
    asbp_code rc;
    if (rule->n_or == 0 && rule->n_and == 0)
        return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                            "deleteIfLowerThan: empty rule (neither 'or' nor 'and' "
                            "thresholds): refusing to delete every row");
    if ((rc = check_items(rule->or_items, rule->n_or, 1, "or", err))
        || (rc = check_items(rule->and_items, rule->n_and, 1, "and", err))
        || (rc = check_items(rule->not_items, rule->n_not, 0, "not", err)))
        return rc;
    return ASBP_OK;
}

asbp_code asbp_browse_delete_sql(const asbp_purge_rule *rule, const char *table_sql,
                                 asbp_quote_fn quote, void *ud, asbp_buf *sql,
                                 const char **params, size_t maxparams,
                                 size_t *nparams, asbp_err *err)
{
    size_t i, n = 0;
    asbp_code rc;
    const char *sep;

    *nparams = 0;
    asbp_buf_reset(sql);
    rc = check_rule(rule, err);
    if (rc)
        return rc;
    if (rule->n_or + rule->n_and + rule->n_not > maxparams)
        return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                            "deleteIfLowerThan: too many fields in the rule (at most %zu)",
                            maxparams);
    if (asbp_buf_printf(sql, "DELETE FROM %s WHERE ", table_sql) < 0)
        return nomem(err);
    sep = "";
    if (rule->n_or) {
        if (asbp_buf_puts(sql, "(") < 0)
            return nomem(err);
        for (i = 0; i < rule->n_or; i++) {
            if (asbp_buf_printf(sql, "%scast(", i ? " OR " : "") < 0
                || put_field(sql, rule->or_items[i].field, quote, ud, err) < 0
                || asbp_buf_printf(sql, " as bigint) < $%zu", n + 1) < 0)
                return err->code ? err->code : nomem(err);
            params[n++] = rule->or_items[i].value;
        }
        if (asbp_buf_puts(sql, ")") < 0)
            return nomem(err);
        sep = " AND ";
    }
    for (i = 0; i < rule->n_and; i++) {
        if (asbp_buf_printf(sql, "%scast(", sep) < 0
            || put_field(sql, rule->and_items[i].field, quote, ud, err) < 0
            || asbp_buf_printf(sql, " as bigint) < $%zu", n + 1) < 0)
            return err->code ? err->code : nomem(err);
        params[n++] = rule->and_items[i].value;
        sep = " AND ";
    }
    for (i = 0; i < rule->n_not; i++) {
        if (asbp_buf_puts(sql, sep) < 0
            || put_field(sql, rule->not_items[i].field, quote, ud, err) < 0
            || asbp_buf_printf(sql, " IS DISTINCT FROM $%zu", n + 1) < 0)
            return err->code ? err->code : nomem(err);
        params[n++] = rule->not_items[i].value;
    }
    *nparams = n;
    return ASBP_OK;
}

/* ---- quoting on a live connection ------------------------------------- */

static int pq_quote(void *ud, const char *s, asbp_buf *out, asbp_err *err)
{
    char why[256];
    int rc = asbp_conn_quote((const asbp_conn *)ud, s, out, why, sizeof why);
    if (rc == -1)
        asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                     "cannot use '%.100s' as a field name: %s", s,
                     why[0] ? why : "PQescapeLiteral failed");
    else if (rc < 0)
        nomem(err);
    return rc < 0 ? -1 : 0;
}

/* ---- streaming -------------------------------------------------------- */

static void spec_of(const asbp_browse *b, asbp_browse_spec *spec)
{
    spec->filter = b->filter;
    spec->field = b->field;
    spec->value = b->value;
    spec->whole = b->whole;
    spec->fields = (const char *const *)b->fields;
    spec->nfields = b->nfields;
}

/* The attempt run by asbp_source_run: send the query, wait for row 1. */
static asbp_code start_attempt(void *ud, asbp_conn *c, asbp_err *err)
{
    asbp_browse *b = ud;
    asbp_browse_spec spec;
    asbp_stream_query q;
    const char *pv[1];
    asbp_code rc;

    asbp_row_free(b->first);
    b->first = NULL;
    b->state = B_STREAMING;
    spec_of(b, &spec);
    rc = asbp_browse_select_sql(&spec, asbp_source_table_sql(b->src), pq_quote, c,
                                &b->sql, err);
    if (rc)
        return rc;
    pv[0] = b->value;
    q.sql = b->sql.data;
    q.nparams = b->has_param ? 1 : 0;
    q.values = pv;
    /* searchOn's statement is prepared once per connection. */
    q.max_prepared = b->filter == ASBP_BROWSE_EQ ? MAX_BROWSE_STATEMENTS : 0;
    q.what = "browse";
    rc = asbp_conn_stream_open(c, &q, asbp_ctx_clock(b->ctx), b->query_ms, &b->first,
                               err);
    if (rc == ASBP_OK && !b->first)
        b->state = B_DONE;
    return rc;
}

/* Drops the connection of a stream that failed or was abandoned. */
static void drop_conn(asbp_browse *b, const asbp_err *err)
{
    if (!b->conn)
        return;
    if (err && err->eclass == ASBP_EC_FAILOVER && asbp_conn_pid(b->conn) == getpid())
        /* Other idle connections to the same node are suspect too. */
        asbp_pool_drop(asbp_ctx_pool(b->ctx), asbp_conn_key(b->conn));
    asbp_conn_free(b->conn);
    b->conn = NULL;
}

/* Gives the connection of a finished stream back to the pool (which
 * keeps it only when it is idle and healthy: asbp_conn_reusable). */
static void give_back(asbp_browse *b)
{
    if (!b->conn)
        return;
    asbp_source_release(b->src, b->conn);
    b->conn = NULL;
}

/*
 * BrowseFromStandby: starts the stream on the synchronous standby, within
 * half the failover budget (the leader keeps the rest).  1 when that
 * decided the outcome (*rc: ASBP_OK, or an error the leader would give
 * too: a bad field name, a query timeout), 0 when the leader must serve
 * the read (said at info level; never an error for the caller).
 */
static int start_on_standby(asbp_browse *b, int64_t t0, asbp_code *rc, asbp_err *err)
{
    asbp_err serr;
    asbp_code sc;
    int64_t dl = t0 + asbp_source_failover_timeout(b->src) / 2;

    asbp_err_clear(&serr);
    sc = asbp_standby_acquire(b->src, dl, &b->conn, &serr);
    if (sc == ASBP_E_NOMEM) {
        *err = serr;
        *rc = sc;
        return 1;
    }
    if (sc == ASBP_OK) {
        sc = start_attempt(b, b->conn, &serr);
        if (sc == ASBP_OK || (serr.eclass != ASBP_EC_FAILOVER
                               && serr.eclass != ASBP_EC_RETRY)) {
            b->on_standby = sc == ASBP_OK;
            if (sc != ASBP_OK)
                *err = serr;
            *rc = sc;
            return 1;
        }
        drop_conn(b, &serr);
    }
    asbp_standby_fallback(b->src, &serr);
    return 0;
}

/* Starts (or restarts) the stream, with failover. */
static asbp_code start(asbp_browse *b, asbp_err *err)
{
    asbp_code rc;
    int64_t t0 = asbp_ctx_now(b->ctx);
    b->count = 0;
    b->on_standby = 0;
    if (b->standby_failed || !asbp_standby_wanted(b->src)
        || !start_on_standby(b, t0, &rc, err))
        rc = asbp_source_run(b->src, &b->conn, t0, start_attempt, b, err);
    if (rc) {
        b->state = B_FAILED;
        asbp_row_free(b->first);
        b->first = NULL;
        give_back(b);   /* kept only when healthy */
        return rc;
    }
    if (b->state == B_DONE)
        give_back(b);
    return ASBP_OK;
}

asbp_code asbp_browse_open(asbp_source *src, const asbp_browse_spec *spec,
                           asbp_browse **out, asbp_err *err)
{
    asbp_browse *b;
    asbp_code rc;
    size_t i;

    *out = NULL;
    if (spec->filter != ASBP_BROWSE_ALL && !spec->field)
        return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT, "no field name given");
    b = calloc(1, sizeof *b);
    if (!b)
        return nomem(err);
    b->src = src;
    b->ctx = asbp_source_ctx(src);
    asbp_ctx_retain(b->ctx);
    b->filter = spec->filter;
    b->whole = spec->whole;
    b->query_ms = asbp_source_query_timeout(src);
    b->state = B_STREAMING;
    if (spec->filter != ASBP_BROWSE_ALL) {
        b->has_param = 1;
        b->field = asbp_strdup(spec->field);
        if (!b->field)
            goto oom;
        if (spec->value && spec->filter == ASBP_BROWSE_LIKE) {
            asbp_buf pat = ASBP_BUF_INIT;
            if (asbp_browse_like_pattern(spec->value, &pat) < 0) {
                asbp_buf_free(&pat);
                goto oom;
            }
            b->value = asbp_buf_steal(&pat);
        } else if (spec->value) {
            b->value = asbp_strdup(spec->value);
            if (!b->value)
                goto oom;
        }
    }
    if (!spec->whole && spec->nfields) {
        if (!spec->fields) {
            asbp_browse_free(b);
            return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT, "no field list given");
        }
        b->fields = calloc(spec->nfields, sizeof *b->fields);
        if (!b->fields)
            goto oom;
        b->nfields = spec->nfields;
        for (i = 0; i < spec->nfields; i++) {
            if (!spec->fields[i]) {
                asbp_browse_free(b);
                return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                                    "field name %zu of the list is undefined", i + 1);
            }
            b->fields[i] = asbp_strdup(spec->fields[i]);
            if (!b->fields[i])
                goto oom;
        }
    }
    rc = start(b, err);
    if (rc) {
        asbp_browse_free(b);
        return rc;
    }
    *out = b;
    return ASBP_OK;
oom:
    asbp_browse_free(b);
    return nomem(err);
}

static asbp_code fail_stream(asbp_browse *b, asbp_err *err)
{
    b->state = B_FAILED;
    if (b->on_standby && (err->eclass == ASBP_EC_FAILOVER || err->eclass == ASBP_EC_RETRY)) {
        b->standby_failed = 1;   /* a restart reads from the leader */
        asbp_standby_fallback(b->src, err);
    }
    drop_conn(b, err);
    asbp_err_prefix(err, "reading the rows of table %s stopped after %lu row%s",
                    asbp_source_table(b->src), b->count, b->count == 1 ? "" : "s");
    return err->code;
}

asbp_code asbp_browse_next(asbp_browse *b, int *has_row, asbp_err *err)
{
    asbp_code rc;

    *has_row = 0;
    asbp_row_free(b->row);
    b->row = NULL;
    if (b->state == B_DONE && !b->first)
        return ASBP_OK;
    if (b->state == B_FAILED)
        return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                            "this query has already failed");
    if (b->first) {
        b->row = b->first;
        b->first = NULL;
        b->count++;
        *has_row = 1;
        return ASBP_OK;
    }
    if (!b->conn || asbp_conn_pid(b->conn) != asbp_pid()) {
        asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                     "this query was started by another process (pid %ld): "
                     "its connection cannot be used here",
                     (long)(b->conn ? asbp_conn_pid(b->conn) : 0));
        return fail_stream(b, err);
    }
    rc = asbp_conn_stream_next(b->conn, &b->row, err);
    if (rc)
        return fail_stream(b, err);
    if (b->row) {
        b->count++;
        *has_row = 1;
        return ASBP_OK;
    }
    b->state = B_DONE;
    give_back(b);
    return ASBP_OK;
}

const char *asbp_browse_id(const asbp_browse *b, size_t *len)
{
    const char *v;
    if (!b->row) {
        if (len)
            *len = 0;
        return NULL;
    }
    v = asbp_row_value(b->row, 0, len);
    return v ? v : "";   /* (the column is NOT NULL) */
}

size_t asbp_browse_ncols(const asbp_browse *b)
{
    return b->whole ? 1 : b->nfields;
}

const char *asbp_browse_col(const asbp_browse *b, size_t i, size_t *len)
{
    if (!b->row || i >= asbp_browse_ncols(b)) {
        if (len)
            *len = 0;
        return NULL;
    }
    return asbp_row_value(b->row, i + 1, len);
}

unsigned long asbp_browse_count(const asbp_browse *b) { return b->count; }

int asbp_browse_can_restart(const asbp_browse *b, const asbp_err *err)
{
    return b->state == B_FAILED && b->restarts < ASBP_BROWSE_MAX_RESTARTS
        && (err->eclass == ASBP_EC_FAILOVER || err->eclass == ASBP_EC_RETRY);
}

asbp_code asbp_browse_restart(asbp_browse *b, asbp_err *err)
{
    if (b->state != B_FAILED || b->restarts >= ASBP_BROWSE_MAX_RESTARTS)
        return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                            "this query cannot be restarted");
    b->restarts++;
    asbp_row_free(b->row);
    b->row = NULL;
    drop_conn(b, NULL);
    asbp_log(asbp_ctx_logger(b->ctx), ASBP_LOG_INFO,
             "DataSource %s: restarting a read of table %s from its first row "
             "(restart %d of at most %d)", asbp_source_display(b->src),
             asbp_source_table(b->src), b->restarts, ASBP_BROWSE_MAX_RESTARTS);
    return start(b, err);
}

const char *asbp_browse_sql(const asbp_browse *b) { return asbp_buf_cstr(&b->sql); }
size_t asbp_browse_nparams(const asbp_browse *b) { return b->has_param ? 1 : 0; }

const char *asbp_browse_param(const asbp_browse *b, size_t i)
{
    return b->has_param && i == 0 ? b->value : NULL;
}

void asbp_browse_free(asbp_browse *b)
{
    size_t i;
    if (!b)
        return;
    asbp_row_free(b->row);
    asbp_row_free(b->first);
    /* An unfinished stream: the connection still has rows coming; close it
     * (asbp_conn_free also leaves a connection of another process alone). */
    drop_conn(b, NULL);
    free(b->field);
    free(b->value);
    for (i = 0; i < b->nfields; i++)
        free(b->fields[i]);
    free(b->fields);
    asbp_buf_free(&b->sql);
    asbp_ctx_release(b->ctx);
    free(b);
}

/* ---- deleteIfLowerThan ------------------------------------------------ */

typedef struct del_args {
    asbp_source *src;
    const asbp_purge_rule *rule;
    asbp_buf sql;
    long long deleted;
} del_args;

static asbp_code delete_attempt(void *ud, asbp_conn *c, asbp_err *err)
{
    del_args *a = ud;
    asbp_ctx *ctx = asbp_source_ctx(a->src);
    int64_t qms = asbp_source_query_timeout(a->src);
    const char *params[MAX_PURGE_PARAMS];
    size_t np = 0;
    char set_timeout[64];
    asbp_query q[4];
    asbp_code rc;

    rc = asbp_browse_delete_sql(a->rule, asbp_source_table_sql(a->src), pq_quote, c,
                                &a->sql, params, MAX_PURGE_PARAMS, &np, err);
    if (rc)
        return rc;
    /* The server gives up after QueryTimeout (the client waits a little
     * longer, to read the server's own error rather than time out). */
    snprintf(set_timeout, sizeof set_timeout, "SET LOCAL statement_timeout = %lld",
             (long long)qms);
    q[0] = (asbp_query){ "BEGIN", 1, 0, NULL, NULL };
    q[1] = (asbp_query){ set_timeout, 0, 0, NULL, NULL };
    q[2] = (asbp_query){ a->sql.data, 0, (int)np, params, NULL };
    q[3] = (asbp_query){ "COMMIT", 1, 0, NULL, NULL };
    ASBP_TRACE(asbp_ctx_logger(ctx), "pid %ld: deleteIfLowerThan on %s: %s",
               (long)getpid(), asbp_conn_server(c), a->sql.data);
    return asbp_conn_run_count(c, q, 4, 2, &a->deleted, asbp_ctx_clock(ctx),
                               asbp_ctx_now(ctx) + qms + 2000, err);
}

asbp_code asbp_browse_delete_lower(asbp_source *src, const asbp_purge_rule *rule,
                                   long long *deleted, asbp_err *err)
{
    del_args a;
    asbp_conn *c = NULL;
    asbp_code rc;

    *deleted = 0;
    /* Check the rule before any connection is made. */
    rc = check_rule(rule, err);
    if (rc)
        return rc;
    if (rule->n_or + rule->n_and + rule->n_not > MAX_PURGE_PARAMS)
        return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                            "deleteIfLowerThan: too many fields in the rule (at most %d)",
                            MAX_PURGE_PARAMS);
    memset(&a, 0, sizeof a);
    a.src = src;
    a.rule = rule;
    rc = asbp_source_run(src, &c, asbp_ctx_now(asbp_source_ctx(src)), delete_attempt, &a, err);
    if (c)
        asbp_source_release(src, c);
    asbp_buf_free(&a.sql);
    if (rc == ASBP_OK)
        *deleted = a.deleted;
    else
        asbp_err_prefix(err, "table %s", asbp_source_table(src));
    return rc;
}
