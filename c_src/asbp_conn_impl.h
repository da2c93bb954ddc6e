/*
 * asbp_conn_impl.h: what the files of the connection module share, and
 * nothing outside it may use: the connection's state and the helpers that
 * drive libpq.  asbp_conn.c opens, frees and checks connections and runs
 * pipelines; asbp_stream.c streams rows.  Everything else goes through
 * asbp_conn.h.
 */
#ifndef ASBP_CONN_IMPL_H
#define ASBP_CONN_IMPL_H

#include "asbp_conn.h"

typedef struct prepared_stmt {
    char *sql;      /* owned */
    char name[48];   /* asbp_<hash of the text>[_<n>] */
    int confirmed;  /* the server acknowledged the Prepare */
} prepared_stmt;

struct asbp_conn {
    PGconn *pg;              /* owned: PQfinish'ed by asbp_conn_free */
    pid_t pid;               /* process that opened it */
    int broken;
    char *label;             /* owned */
    char *key;               /* owned: pool key, NULL until set */
    char server[300];
    prepared_stmt *stmts;    /* owned */
    size_t nstmts, capstmts;
    unsigned long prepares;
    unsigned long name_seq;  /* times unconfirmed statements were dropped:
                              * the suffix of names prepared again */
    int named;               /* named prepared statements allowed (1 unless
                              * PreparedStatements => 0 said otherwise) */
    int pending_cmds;        /* commands sent without waiting, results unread */
    int pending_sync;        /* their sync result is unread (pipeline mode on) */
    /* The stream running (asbp_conn_stream_open up to its end). */
    const asbp_clock *stream_clk;  /* borrowed: the caller's clock */
    int64_t stream_idle_ms;        /* longest wait for data (QueryTimeout) */
    const asbp_logger *lg;   /* borrowed: the context outlives connections */
};

/*
 * Fills err from a failed result (or from the connection when res is NULL),
 * naming the server: message, SQLSTATE, class.  A lost connection is
 * marked broken.  Returns the code.
 */
asbp_code asbp_conn__result_error(asbp_conn *c, const PGresult *res, asbp_err *err);

/*
 * Waits until PQgetResult will not block: until deadline_ms (idle_ms 0),
 * or for at most idle_ms without data (a stream's QueryTimeout), then
 * a timeout; sends what libpq has queued, with the same bounds.  On error
 * the connection is broken and err set.
 */
asbp_code asbp_conn__wait_input(asbp_conn *c, const asbp_clock *clk,
                                int64_t deadline_ms, int64_t idle_ms, asbp_err *err);
asbp_code asbp_conn__flush_out(asbp_conn *c, const asbp_clock *clk,
                               int64_t deadline_ms, int64_t idle_ms, asbp_err *err);

/*
 * The prepared statement of sql: its name, *known = 1 when the server has
 * it already; otherwise the name is new, the caller sends the Prepare and
 * reports its outcome with asbp_conn__statement_done.  NULL when the
 * connection already keeps max statements (or out of memory): sql then
 * runs as an unnamed statement.
 */
const char *asbp_conn__statement_lookup(asbp_conn *c, const char *sql, size_t max,
                                        int *known);
void asbp_conn__statement_done(asbp_conn *c, const char *name, int ok);

#endif
