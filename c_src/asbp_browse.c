#include "asbp_browse.h"
#include "asbp_pid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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
    PGresult *first;        /* owned: first result, received by the (re)start */
    PGresult *row;          /* owned: the current row */
    bstate state;
    unsigned long count;
    int restarts;
    int pipelined;          /* the query runs in a pipeline (prepared) */
    int64_t query_ms;
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
    PGconn *pg = asbp_conn_pg((asbp_conn *)ud);
    char *q = PQescapeLiteral(pg, s, strlen(s));
    int rc;
    if (!q) {
        char msg[256];
        size_t len;
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(pg));
        len = strlen(msg);
        while (len && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
            msg[--len] = '\0';
        asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                     "cannot use '%.100s' as a field name: %s", s,
                     msg[0] ? msg : "PQescapeLiteral failed");
        return -1;
    }
    rc = asbp_buf_puts(out, q);
    PQfreemem(q);
    if (rc < 0) {
        nomem(err);
        return -1;
    }
    return 0;
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

/* Sends what libpq has queued (the socket is non-blocking). */
static asbp_code flush_out(asbp_browse *b, asbp_conn *c, asbp_err *err)
{
    PGconn *pg = asbp_conn_pg(c);
    int64_t deadline = asbp_ctx_now(b->ctx) + b->query_ms;
    for (;;) {
        int f = PQflush(pg), w;
        if (f == 0)
            return ASBP_OK;
        if (f < 0) {
            asbp_conn_set_broken(c);
            return asbp_conn_result_error(c, NULL, err);
        }
        w = asbp_conn_wait(c, 1, 1, asbp_ctx_clock(b->ctx), deadline);
        if (w == 0) {
            asbp_conn_set_broken(c);
            return asbp_err_set(err, ASBP_E_TIMEOUT, ASBP_EC_REPORT,
                                "cannot send the query to %s within QueryTimeout "
                                "(%lld ms)", asbp_conn_server(c), (long long)b->query_ms);
        }
        if (w < 0 || !PQconsumeInput(pg)) {
            asbp_conn_set_broken(c);
            return asbp_conn_result_error(c, NULL, err);
        }
    }
}

/*
 * Waits until PQgetResult will not block.  Each wait is bounded by
 * QueryTimeout, counted again whenever data arrives.
 */
static asbp_code await(asbp_browse *b, asbp_conn *c, asbp_err *err)
{
    PGconn *pg = asbp_conn_pg(c);
    const asbp_clock *clk = asbp_ctx_clock(b->ctx);
    int64_t deadline = asbp_ctx_now(b->ctx) + b->query_ms;
    while (PQisBusy(pg)) {
        int w = asbp_conn_wait(c, 1, 0, clk, deadline);
        if (w == 0) {
            asbp_conn_set_broken(c);
            /* Not a failover case: a server that stops answering for that
             * long is reported, not waited for again elsewhere. */
            return asbp_err_set(err, ASBP_E_TIMEOUT, ASBP_EC_REPORT,
                                "no data from %s for %lld ms (QueryTimeout)",
                                asbp_conn_server(c), (long long)b->query_ms);
        }
        if (w < 0 || !PQconsumeInput(pg)) {
            asbp_conn_set_broken(c);
            return asbp_conn_result_error(c, NULL, err);
        }
        deadline = asbp_ctx_now(b->ctx) + b->query_ms;
    }
    return ASBP_OK;
}

/* Leaves pipeline mode after its synchronisation point was read. */
static void pipeline_off(asbp_browse *b, asbp_conn *c)
{
    b->pipelined = 0;
    if (!PQexitPipelineMode(asbp_conn_pg(c)))
        asbp_conn_set_broken(c);
}

/* Reads the results left after an error (up to the pipeline's
 * synchronisation point when there is one), so that the connection can be
 * reused; marks it broken when that does not work. */
static void drain(asbp_browse *b, asbp_conn *c)
{
    asbp_err e;
    int nulls = 0;
    for (;;) {
        PGresult *r;
        asbp_err_clear(&e);
        if (await(b, c, &e) != ASBP_OK) {
            asbp_conn_set_broken(c);
            return;
        }
        r = PQgetResult(asbp_conn_pg(c));
        if (!r) {
            if (!b->pipelined)
                return;
            if (++nulls > 1) {       /* nothing more will come */
                asbp_conn_set_broken(c);
                return;
            }
            continue;
        }
        nulls = 0;
        if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            pipeline_off(b, c);
            return;
        }
        PQclear(r);
    }
}

/* Handles a result that is not a row: the end, or an error. */
static asbp_code end_or_error(asbp_browse *b, asbp_conn *c, PGresult *r, asbp_err *err)
{
    asbp_code rc;
    if (r && PQresultStatus(r) == PGRES_TUPLES_OK) {
        PQclear(r);
        rc = await(b, c, err);
        if (rc)
            return rc;
        r = PQgetResult(asbp_conn_pg(c));
        if (r) {
            /* More than one result for one statement: not ours to read. */
            PQclear(r);
            asbp_conn_set_broken(c);
        } else if (b->pipelined) {
            rc = await(b, c, err);
            if (rc)
                return rc;
            r = PQgetResult(asbp_conn_pg(c));
            if (r && PQresultStatus(r) == PGRES_PIPELINE_SYNC)
                pipeline_off(b, c);
            else
                asbp_conn_set_broken(c);
            PQclear(r);
        }
        b->state = B_DONE;
        return ASBP_OK;
    }
    if (!r) {
        asbp_conn_set_broken(c);
        return asbp_err_set(err, ASBP_E_IO, ASBP_EC_FAILOVER,
                            "no result from %s", asbp_conn_server(c));
    }
    rc = asbp_conn_result_error(c, r, err);
    PQclear(r);
    if (asbp_conn_usable(c))
        drain(b, c);
    return rc;
}

/* The attempt run by asbp_source_run: send the query, wait for row 1. */
static asbp_code start_attempt(void *ud, asbp_conn *c, asbp_err *err)
{
    asbp_browse *b = ud;
    asbp_browse_spec spec;
    PGconn *pg = asbp_conn_pg(c);
    const char *pv[1];
    PGresult *r;
    asbp_code rc;

    PQclear(b->first);
    b->first = NULL;
    b->state = B_STREAMING;
    spec_of(b, &spec);
    rc = asbp_browse_select_sql(&spec, asbp_source_table_sql(b->src), pq_quote, c,
                                &b->sql, err);
    if (rc)
        return rc;
    /* A pooled connection may still have the answer of a tie's ROLLBACK
     * to read (asbp_conn_send_nowait): read it before using libpq here. */
    rc = asbp_conn_settle(c, asbp_ctx_clock(asbp_source_ctx(b->src)),
                          asbp_ctx_now(asbp_source_ctx(b->src)) + asbp_source_query_timeout(b->src),
                          err);
    if (rc)
        return rc;
    if (!asbp_conn_usable(c) || PQisBusy(pg))
        return asbp_err_set(err, ASBP_E_IO, ASBP_EC_FAILOVER,
                            "connection to %s is not usable", asbp_conn_server(c));
    pv[0] = b->value;
    b->pipelined = 0;
    if (b->filter == ASBP_BROWSE_EQ) {
        int known = 0;
        const char *nm = asbp_conn_statement(c, b->sql.data, MAX_BROWSE_STATEMENTS, &known);
        if (nm) {
            char name[64];
            snprintf(name, sizeof name, "%s", nm);
            ASBP_TRACE(asbp_ctx_logger(b->ctx), "pid %ld: browse on %s: %s%s [$1 = %s]",
                       (long)getpid(), asbp_conn_server(c), b->sql.data,
                       known ? "" : " (prepared now)", b->value ? b->value : "NULL");
            /* Prepare (the first time on this connection) and execute in
             * one round trip. */
            if (!PQenterPipelineMode(pg))
                goto send_failed;
            b->pipelined = 1;
            if ((!known && !PQsendPrepare(pg, name, b->sql.data, 1, NULL))
                || !PQsendQueryPrepared(pg, name, 1, pv, NULL, NULL, 0)
                || !PQpipelineSync(pg))
                goto send_failed;
            rc = flush_out(b, c, err);
            if (rc)
                return rc;
            if (!known) {
                int ok;
                rc = await(b, c, err);
                if (rc)
                    return rc;
                r = PQgetResult(pg);
                ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
                asbp_conn_statement_done(c, name, ok);
                if (!ok) {
                    rc = r ? asbp_conn_result_error(c, r, err)
                           : asbp_err_set(err, ASBP_E_IO, ASBP_EC_FAILOVER,
                                          "no result from %s", asbp_conn_server(c));
                    PQclear(r);
                    if (asbp_conn_usable(c))
                        drain(b, c);
                    return rc;
                }
                PQclear(r);
                rc = await(b, c, err);
                if (rc)
                    return rc;
                r = PQgetResult(pg);   /* the NULL that ends the Prepare's results */
                if (r) {
                    PQclear(r);
                    asbp_conn_set_broken(c);
                    return asbp_err_set(err, ASBP_E_IO, ASBP_EC_FAILOVER,
                                        "unexpected result from %s", asbp_conn_server(c));
                }
            }
            if (!PQsetSingleRowMode(pg)) {
                asbp_conn_set_broken(c);
                return asbp_err_set(err, ASBP_E_IO, ASBP_EC_REPORT,
                                    "cannot stream rows from %s (single-row mode refused)",
                                    asbp_conn_server(c));
            }
            goto first_row;
        }
    }
    ASBP_TRACE(asbp_ctx_logger(b->ctx), "pid %ld: browse on %s: %s%s%s%s",
               (long)getpid(), asbp_conn_server(c), b->sql.data,
               b->has_param ? " [$1 = " : "",
               b->has_param ? (b->value ? b->value : "NULL") : "",
               b->has_param ? "]" : "");
    if (!PQsendQueryParams(pg, b->sql.data, b->has_param ? 1 : 0, NULL, pv, NULL, NULL, 0))
        goto send_failed;
    if (!PQsetSingleRowMode(pg)) {
        asbp_conn_set_broken(c);
        return asbp_err_set(err, ASBP_E_IO, ASBP_EC_REPORT,
                            "cannot stream rows from %s (single-row mode refused)",
                            asbp_conn_server(c));
    }
    rc = flush_out(b, c, err);
    if (rc)
        return rc;
first_row:
    rc = await(b, c, err);
    if (rc)
        return rc;
    r = PQgetResult(pg);
    if (r && PQresultStatus(r) == PGRES_SINGLE_TUPLE) {
        b->first = r;
        return ASBP_OK;
    }
    return end_or_error(b, c, r, err);
send_failed:
    asbp_conn_set_broken(c);
    return asbp_conn_result_error(c, NULL, err);
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
 * keeps it only when it is idle and healthy). */
static void give_back(asbp_browse *b)
{
    if (!b->conn)
        return;
    if (PQpipelineStatus(asbp_conn_pg(b->conn)) != PQ_PIPELINE_OFF)
        asbp_conn_set_broken(b->conn);
    asbp_source_release(b->src, b->conn);
    b->conn = NULL;
}

/* Starts (or restarts) the stream, with failover. */
static asbp_code start(asbp_browse *b, asbp_err *err)
{
    asbp_code rc;
    b->count = 0;
    rc = asbp_source_run(b->src, &b->conn, asbp_ctx_now(b->ctx), start_attempt, b, err);
    if (rc) {
        b->state = B_FAILED;
        PQclear(b->first);
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
    drop_conn(b, err);
    asbp_err_prefix(err, "reading the rows of table %s stopped after %lu row%s",
                    asbp_source_table(b->src), b->count, b->count == 1 ? "" : "s");
    return err->code;
}

asbp_code asbp_browse_next(asbp_browse *b, int *has_row, asbp_err *err)
{
    PGresult *r;
    asbp_code rc;

    *has_row = 0;
    PQclear(b->row);
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
    rc = await(b, b->conn, err);
    if (rc)
        return fail_stream(b, err);
    r = PQgetResult(asbp_conn_pg(b->conn));
    if (r && PQresultStatus(r) == PGRES_SINGLE_TUPLE) {
        b->row = r;
        b->count++;
        *has_row = 1;
        return ASBP_OK;
    }
    rc = end_or_error(b, b->conn, r, err);
    if (rc)
        return fail_stream(b, err);
    give_back(b);
    return ASBP_OK;
}

const char *asbp_browse_id(const asbp_browse *b, size_t *len)
{
    if (!b->row) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = (size_t)PQgetlength(b->row, 0, 0);
    return PQgetvalue(b->row, 0, 0);
}

size_t asbp_browse_ncols(const asbp_browse *b)
{
    return b->whole ? 1 : b->nfields;
}

const char *asbp_browse_col(const asbp_browse *b, size_t i, size_t *len)
{
    int col = (int)i + 1;
    if (!b->row || i >= asbp_browse_ncols(b) || PQgetisnull(b->row, 0, col)) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = (size_t)PQgetlength(b->row, 0, col);
    return PQgetvalue(b->row, 0, col);
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
    PQclear(b->row);
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
    PQclear(b->row);
    PQclear(b->first);
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
    PGresult *r[4] = { NULL, NULL, NULL, NULL };
    asbp_code rc;
    int i;

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
    rc = asbp_conn_pipeline(c, q, 4, r, asbp_ctx_clock(ctx),
                            asbp_ctx_now(ctx) + qms + 2000, NULL, err);
    if (rc == ASBP_OK)
        a->deleted = atoll(PQcmdTuples(r[2]));
    for (i = 0; i < 4; i++)
        PQclear(r[i]);
    return rc;
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
