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
 * - Classifies every failure (asbp_classify_sqlstate).
 */
#ifndef ASBP_CONN_H
#define ASBP_CONN_H

#include <stdint.h>
#include <sys/types.h>
#include <libpq-fe.h>

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
int asbp_conn_usable(asbp_conn *c);
/* Cheap check for an idle connection: reads what the server may have sent
 * (e.g. a FATAL before closing) without blocking.  Non-zero when usable. */
int asbp_conn_check_idle(asbp_conn *c);

PGconn *asbp_conn_pg(asbp_conn *c);
const char *asbp_conn_label(const asbp_conn *c);
pid_t asbp_conn_pid(const asbp_conn *c);
/* "host:port" the connection reached (for messages and the pool). */
const char *asbp_conn_server(const asbp_conn *c);
/* The pool key the connection was opened for (copied). */
int asbp_conn_set_key(asbp_conn *c, const char *key);
const char *asbp_conn_key(const asbp_conn *c);
/* Marks the connection as unusable (it will be freed, never reused). */
void asbp_conn_set_broken(asbp_conn *c);
int asbp_conn_in_transaction(asbp_conn *c);

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
 * Needed before using the PGconn directly (libpq calls outside this module). */
asbp_code asbp_conn_settle(asbp_conn *c, const asbp_clock *clk,
                           int64_t deadline_ms, asbp_err *err);
/* Non-zero while results of asbp_conn_send_nowait are unread. */
int asbp_conn_pending(const asbp_conn *c);

/* Waits for the socket (POLLIN and/or POLLOUT) until the deadline.
 * Returns 1 ready, 0 timeout, -1 error. */
int asbp_conn_wait(asbp_conn *c, int for_read, int for_write,
                   const asbp_clock *clk, int64_t deadline_ms);

/*
 * Fills err from a failed result (or from the connection when res is NULL),
 * naming the server: message, SQLSTATE, class.  Returns the code.
 */
asbp_code asbp_conn_result_error(asbp_conn *c, const PGresult *res,
                                 asbp_err *err);

/*
 * Prepared statements for callers that send their own queries (the
 * pipeline's "prepared" flag uses the same per-connection list).  Call on
 * an idle connection: returns the name of sql's statement, *known = 1 when
 * the server has it already; otherwise the name is new, the caller sends
 * the Prepare and reports its outcome with asbp_conn_statement_done.
 * Returns NULL when the connection already keeps max statements (or out of
 * memory): the caller then runs sql as an unnamed statement.
 */
const char *asbp_conn_statement(asbp_conn *c, const char *sql, size_t max,
                                int *known);
void asbp_conn_statement_done(asbp_conn *c, const char *name, int ok);

/* Counters (for tests and the per-process view). */
unsigned long asbp_conn_prepare_count(const asbp_conn *c);

#endif
