/*
 * asbp_stream.c: the rows of one statement, one at a time (libpq's
 * single-row mode), for asbp_conn_stream_open / _next (asbp_conn.h).  Part
 * of the connection module: it shares the connection's state with
 * asbp_conn.c (asbp_conn_impl.h).
 */
#include "asbp_conn_impl.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* A row is the PGresult of one row in libpq's single-row mode. */
static PGresult *pgres(asbp_row *r) { return (PGresult *)(void *)r; }
static const PGresult *cpgres(const asbp_row *r)
{
    return (const PGresult *)(const void *)r;
}

const char *asbp_row_value(const asbp_row *r, size_t col, size_t *len)
{
    const PGresult *res = cpgres(r);
    if (!res || PQgetisnull(res, 0, (int)col)) {   /* also past the last column */
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = (size_t)PQgetlength(res, 0, (int)col);
    return PQgetvalue(res, 0, (int)col);
}

void asbp_row_free(asbp_row *r) { PQclear(pgres(r)); }

static asbp_code stream_wait(asbp_conn *c, asbp_err *err)
{
    return asbp_conn__wait_input(c, c->stream_clk, 0, c->stream_idle_ms, err);
}

/* Leaves pipeline mode after its synchronisation point was read. */
static void stream_pipeline_off(asbp_conn *c)
{
    if (!PQexitPipelineMode(c->pg))
        c->broken = 1;
}

/* Reads the results left after an error, up to the pipeline's
 * synchronisation point, so that the connection can be reused; marks it
 * broken when that does not work. */
static void stream_drain(asbp_conn *c)
{
    asbp_err e;
    int nulls = 0;
    for (;;) {
        PGresult *r;
        asbp_err_clear(&e);
        if (stream_wait(c, &e) != ASBP_OK) {
            c->broken = 1;
            return;
        }
        r = PQgetResult(c->pg);
        if (!r) {
            if (++nulls > 1) {       /* nothing more will come */
                c->broken = 1;
                return;
            }
            continue;
        }
        nulls = 0;
        if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            stream_pipeline_off(c);
            return;
        }
        PQclear(r);
    }
}

/* A failed result r (or none): fills err, reads what is left. */
static asbp_code stream_error(asbp_conn *c, PGresult *r, asbp_err *err)
{
    asbp_code rc;
    if (!r) {
        c->broken = 1;
        return asbp_err_set(err, ASBP_E_IO, ASBP_EC_FAILOVER, "no result from %s",
                            c->server);
    }
    rc = asbp_conn__result_error(c, r, err);
    PQclear(r);
    if (asbp_conn_usable(c))
        stream_drain(c);
    return rc;
}

/* The statement's last result r was read: the end, or an error. */
static asbp_code stream_end(asbp_conn *c, PGresult *r, asbp_err *err)
{
    asbp_code rc;
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK)
        return stream_error(c, r, err);
    PQclear(r);
    rc = stream_wait(c, err);
    if (rc)
        return rc;
    r = PQgetResult(c->pg);
    if (r) {
        /* More than one result for one statement: not ours to read. */
        PQclear(r);
        c->broken = 1;
    } else {
        rc = stream_wait(c, err);
        if (rc)
            return rc;
        r = PQgetResult(c->pg);
        if (r && PQresultStatus(r) == PGRES_PIPELINE_SYNC)
            stream_pipeline_off(c);
        else
            c->broken = 1;
        PQclear(r);
    }
    return ASBP_OK;
}

asbp_code asbp_conn_stream_next(asbp_conn *c, asbp_row **row, asbp_err *err)
{
    PGresult *r;
    asbp_code rc;
    *row = NULL;
    rc = stream_wait(c, err);
    if (rc)
        return rc;
    r = PQgetResult(c->pg);
    if (r && PQresultStatus(r) == PGRES_SINGLE_TUPLE) {
        *row = (asbp_row *)(void *)r;   /* see pgres() */
        return ASBP_OK;
    }
    return stream_end(c, r, err);
}

/* Reads the answer to the Prepare sent in front of a stream's statement. */
static asbp_code stream_prepared(asbp_conn *c, const char *name, asbp_err *err)
{
    PGresult *r;
    int ok;
    asbp_code rc = stream_wait(c, err);
    if (rc)
        return rc;
    r = PQgetResult(c->pg);
    ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
    asbp_conn__statement_done(c, name, ok);
    if (!ok && r)
        return stream_error(c, r, err);
    if (!ok) {
        rc = asbp_err_set(err, ASBP_E_IO, ASBP_EC_FAILOVER, "no result from %s",
                          c->server);
        if (asbp_conn_usable(c))
            stream_drain(c);
        return rc;
    }
    PQclear(r);
    rc = stream_wait(c, err);
    if (rc)
        return rc;
    r = PQgetResult(c->pg);   /* the NULL that ends the Prepare's results */
    if (r) {
        PQclear(r);
        c->broken = 1;
        return asbp_err_set(err, ASBP_E_IO, ASBP_EC_FAILOVER,
                            "unexpected result from %s", c->server);
    }
    return ASBP_OK;
}

static void stream_trace(const asbp_conn *c, const asbp_stream_query *q,
                         const char *note)
{
    ASBP_TRACE(c->lg, "pid %ld: %s on %s: %s%s%s%s%s", (long)getpid(), q->what,
               c->server, q->sql, note, q->nparams ? " [$1 = " : "",
               q->nparams ? (q->values[0] ? q->values[0] : "NULL") : "",
               q->nparams ? "]" : "");
}

/*
 * Sends the statement in a pipeline of its own (its synchronisation point
 * right after it): as a prepared statement when q->max_prepared and the
 * connection (asbp_conn_set_prepared) allow,
 * prepared first (in the same round trip) when the connection does not
 * have it yet; else unnamed.  Always in pipeline mode: after a statement
 * streamed outside pipeline mode, libpq (15) leaves single-row mode set
 * for the first statement of the next pipeline on the connection, whose
 * reader (asbp_conn_pipeline) would get a row instead of the result.
 */
static asbp_code stream_send(asbp_conn *c, const asbp_stream_query *q, asbp_err *err)
{
    int known = 0, ok;
    char name[sizeof c->stmts[0].name];
    const char *nm = q->max_prepared && c->named
                   ? asbp_conn__statement_lookup(c, q->sql, q->max_prepared, &known) : NULL;
    asbp_code rc;

    if (nm)
        snprintf(name, sizeof name, "%s", nm);
    stream_trace(c, q, nm && !known ? " (prepared now)" : "");
    if (!PQenterPipelineMode(c->pg))
        goto send_failed;
    if (nm) {
        ok = (known || PQsendPrepare(c->pg, name, q->sql, q->nparams, NULL))
            && PQsendQueryPrepared(c->pg, name, q->nparams, q->values, NULL, NULL, 0);
    } else {
        ok = PQsendQueryParams(c->pg, q->sql, q->nparams, NULL, q->values, NULL, NULL, 0);
        if (ok && !PQsetSingleRowMode(c->pg))   /* the statement is the current one */
            goto single_row_refused;
    }
    if (!ok || !PQpipelineSync(c->pg))
        goto send_failed;
    rc = asbp_conn__flush_out(c, c->stream_clk, 0, c->stream_idle_ms, err);
    if (rc)
        return rc;
    if (nm && !known && (rc = stream_prepared(c, name, err)) != ASBP_OK)
        return rc;
    if (nm && !PQsetSingleRowMode(c->pg))   /* after the Prepare's answer */
        goto single_row_refused;
    return ASBP_OK;
send_failed:
    c->broken = 1;
    return asbp_conn__result_error(c, NULL, err);
single_row_refused:
    c->broken = 1;
    return asbp_err_set(err, ASBP_E_IO, ASBP_EC_REPORT,
                        "cannot stream rows from %s (single-row mode refused)",
                        c->server);
}

asbp_code asbp_conn_stream_open(asbp_conn *c, const asbp_stream_query *q,
                                const asbp_clock *clk, int64_t idle_ms,
                                asbp_row **first, asbp_err *err)
{
    asbp_code rc;

    *first = NULL;
    c->stream_clk = clk;
    c->stream_idle_ms = idle_ms;
    /* A pooled connection may still have the answer of a tie's ROLLBACK
     * to read (asbp_conn_send_nowait): read it before streaming. */
    rc = asbp_conn_settle(c, clk, asbp_clock_now_ms(clk) + idle_ms, err);
    if (rc)
        return rc;
    if (!asbp_conn_usable(c) || PQisBusy(c->pg))
        return asbp_err_set(err, ASBP_E_IO, ASBP_EC_FAILOVER,
                            "connection to %s is not usable", c->server);
    rc = stream_send(c, q, err);
    if (rc)
        return rc;
    return asbp_conn_stream_next(c, first, err);
}

