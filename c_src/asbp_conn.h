/*
 * asbp_conn: one PostgreSQL connection, opened and driven without blocking
 * beyond a caller's deadline.
 *
 * - Opened with PQconnectStartParams from keyword/value arrays (never from a
 *   pasted conninfo string); the wait is bounded by a deadline in ms.
 * - Remembers the pid that opened it.  Used or freed from another process,
 *   it is abandoned: its socket is replaced by /dev/null before PQfinish, so
 *   nothing reaches the server on the parent's session (DESIGN.md section 4).
 * - Runs pipelines of statements (libpq pipeline mode): one round trip for
 *   several statements; statements flagged "prepared" are prepared once per
 *   connection, in the same round trip as their first execution.
 * - Streams the rows of one statement, one at a time (libpq's single-row
 *   mode), each wait bounded by the caller's QueryTimeout.
 * - Classifies every failure (asbp_classify_sqlstate).
 *
 * It is the only module that drives libpq's connection (PGconn): the
 * other modules see results (PGresult) of asbp_conn_pipeline at most.
 * Files: asbp_conn.c (connections, pipelines), asbp_stream.c (streams),
 * asbp_conn_impl.h (what the two share, private to the module).
 */
#ifndef ASBP_CONN_H
#define ASBP_CONN_H

#include <stdint.h>
#include <sys/types.h>
#include <libpq-fe.h>

#include "asbp_buf.h"
#include "asbp_clock.h"
#include "asbp_err.h"
#include "asbp_log.h"

typedef struct asbp_conn asbp_conn;

/* Keyword/value arrays as PQconnectStartParams takes them (NULL-terminated). */
typedef struct asbp_connparams {
    const char *const *keys;
    const char *const *values;
    const char *label;        /* how messages name the server, no password */
} asbp_connparams;

asbp_code asbp_conn_open(const asbp_connparams *p, const asbp_clock *clk,
                         int64_t deadline_ms, const asbp_logger *lg,
                         asbp_conn **out, asbp_err *err);

/*
 * Opens n connections at once (all started, then polled together) until
 * the deadline: out[i] is the connection or NULL when it failed.
 */
void asbp_conn_open_many(const asbp_connparams *p, size_t n, const asbp_clock *clk,
                         int64_t deadline_ms, const asbp_logger *lg, asbp_conn **out);

/* Accepts NULL.  Abandons (see above) a connection of another process. */
void asbp_conn_free(asbp_conn *c);

/* Non-zero when the connection was opened by this process and is healthy. */
int asbp_conn_usable(const asbp_conn *c);
/* Cheap check for an idle connection taken from the pool: polls the socket
 * (without blocking) for what the server may have sent (e.g. a FATAL before
 * closing).  Non-zero when usable; otherwise the connection is marked
 * broken (hence the mutable pointer). */
int asbp_conn_check_idle(asbp_conn *c);
/* Non-zero when c may wait in the pool for its next user: usable, outside
 * any transaction, nothing in flight but the answer of asbp_conn_send_nowait
 * (no unfinished stream or pipeline).  Parses what libpq has already
 * received (PQisBusy), reads nothing from the socket: hence not const.
 * (asbp_conn_check_idle, when it leaves the pool, also requires all that.) */
int asbp_conn_reusable(asbp_conn *c);

const char *asbp_conn_label(const asbp_conn *c);
pid_t asbp_conn_pid(const asbp_conn *c);
/* "host:port" the connection reached (for messages and the pool). */
const char *asbp_conn_server(const asbp_conn *c);
/* The pool key the connection was opened for (copied). */
int asbp_conn_set_key(asbp_conn *c, const char *key);
const char *asbp_conn_key(const asbp_conn *c);
/* on 0: statements flagged "prepared" (asbp_query.prepared, a stream's
 * max_prepared) run unnamed, with their parameters, from now on: nothing
 * prepared outlives a transaction, as PgBouncer's transaction pooling
 * needs (PreparedStatements => 0).  1 (the default): prepared once per
 * connection.  Set by the user of a pooled connection at each checkout. */
void asbp_conn_set_prepared(asbp_conn *c, int on);
/* Marks the connection as unusable (it will be freed, never reused). */
void asbp_conn_set_broken(asbp_conn *c);
/* Inside a transaction (open or aborted by an error); 0 while the answer
 * of asbp_conn_send_nowait (a ROLLBACK) is unread. */
int asbp_conn_in_transaction(const asbp_conn *c);
/* Inside a transaction that an error aborted (only ROLLBACK can end it). */
int asbp_conn_in_failed_transaction(const asbp_conn *c);

typedef struct asbp_query {
    const char *sql;
    int prepared;                  /* prepare once per connection */
    int nparams;
    const char *const *values;     /* text parameters */
    const int *lengths;            /* NULL: NUL-terminated values */
} asbp_query;

/*
 * Sends the n statements in one pipeline and waits (until deadline_ms) for
 * their results.  On success every res[i] is set (caller PQclear()s them).
 * On failure res[] holds NULLs from the failing statement on, err names the
 * server, carries the SQLSTATE and the class, and *failed_at (when not
 * NULL) is the index of the failing statement (-1: connection-level).
 */
asbp_code asbp_conn_pipeline(asbp_conn *c, const asbp_query *q, int n,
                             PGresult **res, const asbp_clock *clk,
                             int64_t deadline_ms, int *failed_at,
                             asbp_err *err);

/*
 * Sends statements (plain, not prepared) and a sync without waiting for
 * their results: they are read by the next asbp_conn_pipeline (in the same
 * round trip as its own statements) or by asbp_conn_settle.  Used for the
 * ROLLBACK that ends a transaction that changed nothing: the server releases
 * the row lock as soon as it reads it, and the caller does not wait.
 * A failure to send marks the connection broken.
 */
asbp_code asbp_conn_send_nowait(asbp_conn *c, const asbp_query *q, int n,
                                const asbp_clock *clk, int64_t deadline_ms,
                                asbp_err *err);
/* Reads what asbp_conn_send_nowait left pending, leaves pipeline mode.
 * (asbp_conn_pipeline and asbp_conn_stream_open do it themselves.) */
asbp_code asbp_conn_settle(asbp_conn *c, const asbp_clock *clk,
                           int64_t deadline_ms, asbp_err *err);
/* Non-zero while results of asbp_conn_send_nowait are unread. */
int asbp_conn_pending(const asbp_conn *c);

/*
 * Runs the n statements like asbp_conn_pipeline and keeps none of their
 * results: *count is the row count of statement `which` (the rows a DELETE
 * or UPDATE touched).
 */
asbp_code asbp_conn_run_count(asbp_conn *c, const asbp_query *q, int n, int which,
                              long long *count, const asbp_clock *clk,
                              int64_t deadline_ms, asbp_err *err);

/*
 * Appends s to out as a SQL string literal, quoted for this connection
 * (PQescapeLiteral).  Returns 0; -1 when libpq refuses s (why: its reason,
 * one line); -2 out of memory.
 */
int asbp_conn_quote(const asbp_conn *c, const char *s, asbp_buf *out, char *why,
                    size_t nwhy);

/* ---- streams ------------------------------------------------------------ */

/* One row of a stream; its values stay readable until asbp_row_free. */
typedef struct asbp_row asbp_row;

typedef struct asbp_stream_query {
    const char *sql;
    int nparams;                /* text parameters ($1 ...), may be 0 */
    const char *const *values;  /* NULL entries are SQL NULLs */
    size_t max_prepared;        /* > 0: run as a prepared statement, prepared
                                 * once per connection (in the round trip of
                                 * its first execution) while the connection
                                 * keeps fewer than this many; 0: unnamed */
    const char *what;           /* names the stream in traces ("browse") */
} asbp_stream_query;

/*
 * Starts streaming the rows of q on c and waits for the first one: *first
 * is that row (owned by the caller), or NULL when the result is empty (the
 * stream is then over and c idle again).  Results left unread by
 * asbp_conn_send_nowait are read first.  Every wait for the server, from
 * here to the stream's end, lasts at most idle_ms without data (counted
 * again whenever data arrives): a timeout is reported (ASBP_EC_REPORT),
 * not failed over.  On error the stream is over: c was read back to idle
 * when possible, else marked broken.
 *
 * While a stream runs, c is used for nothing else.  To stop one early,
 * free the connection (asbp_conn_free): the rows still coming are not
 * read, and the server's work ends with the connection.
 */
asbp_code asbp_conn_stream_open(asbp_conn *c, const asbp_stream_query *q,
                                const asbp_clock *clk, int64_t idle_ms,
                                asbp_row **first, asbp_err *err);
/* The next row (owned by the caller) or, at the end, *row = NULL (c is
 * then idle, ready for the pool).  On error as for asbp_conn_stream_open. */
asbp_code asbp_conn_stream_next(asbp_conn *c, asbp_row **row, asbp_err *err);

/* The value of column col (from 0); NULL for SQL NULL or past the last
 * column, *len 0.  Points into the row. */
const char *asbp_row_value(const asbp_row *r, size_t col, size_t *len);
/* Accepts NULL. */
void asbp_row_free(asbp_row *r);

/* Counters (for tests and the per-process view). */
unsigned long asbp_conn_prepare_count(const asbp_conn *c);

#endif
