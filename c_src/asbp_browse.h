/*
 * asbp_browse: the class methods' queries (DESIGN.md section 6):
 * searchOn, searchOnExpr, get_key_from_all_sessions and deleteIfLowerThan.
 *
 * SQL text: a field name from the caller only ever reaches the SQL text as
 * a quoted literal (PQescapeLiteral on the connection), so that the
 * expression `a_session ->> '<field>'` is a constant the planner can match
 * against an expression index such as ((a_session ->> '_whatToTrace')) or
 * ((cast(a_session ->> '_utime' as bigint))).  Values, LIKE patterns and
 * thresholds are always parameters ($n).
 *
 * Reading: a query is an iterator (asbp_browse_open / _next / _free).  Rows
 * are streamed in libpq's single-row mode: the C side holds one row at a
 * time, whatever the size of the table, and its user (the XS layer) may
 * run anything between two calls of _next (including other queries and
 * tied sessions, which take other connections from the pool).  No callback
 * is ever made from C.
 *
 * Failover: asbp_browse_open runs through asbp_source_run, and returns only
 * once the first row (or the end of an empty result) has arrived, so a
 * failure before the first row is retried transparently, like a tied
 * session's.  A failure in the middle of a stream cannot be hidden: rows
 * were already handed out.  _next reports it; asbp_browse_can_restart says
 * whether the query may be started again (a failover- or retry-class error,
 * at most ASBP_BROWSE_MAX_RESTARTS times per iterator), and
 * asbp_browse_restart starts it again from the first row through
 * asbp_source_run, with the failover budget (FailoverTimeout) counted from
 * the restart.  A user that builds a complete result (a hash of all rows)
 * can discard what it built and restart; a user that has already passed
 * rows on (a Perl code reference) must report the error instead.
 *
 * Timeouts: each wait for the server during a stream (the first row, then
 * every further read) is bounded by the source's QueryTimeout; the clock
 * restarts whenever data arrives, so a long stream that keeps moving is
 * never cut, and a server that stops answering is given up after
 * QueryTimeout.  The DELETE of asbp_browse_delete_lower runs with
 * statement_timeout = QueryTimeout on the server and the same bound on the
 * client.
 */
#ifndef ASBP_BROWSE_H
#define ASBP_BROWSE_H

#include <stddef.h>
#include <stdint.h>

#include "asbp_buf.h"
#include "asbp_err.h"
#include "asbp_source.h"

#define ASBP_BROWSE_MAX_RESTARTS 3

typedef enum asbp_browse_filter {
    ASBP_BROWSE_ALL = 0,   /* every row of the table */
    ASBP_BROWSE_EQ,        /* a_session ->> field = value */
    ASBP_BROWSE_LIKE       /* a_session ->> field LIKE pattern, '*' = any string */
} asbp_browse_filter;

/* What to read.  Strings are borrowed (copied by asbp_browse_open). */
typedef struct asbp_browse_spec {
    asbp_browse_filter filter;
    const char *field;          /* EQ, LIKE: the JSON key compared */
    const char *value;          /* EQ: value; LIKE: pattern; NULL: matches nothing */
    int whole;                  /* non-zero: columns are (id, a_session) */
    const char *const *fields;  /* whole == 0: (id, a_session ->> fields[i], ...) */
    size_t nfields;             /* may be 0: (id) only */
} asbp_browse_spec;

typedef struct asbp_browse asbp_browse;

/*
 * Starts the query (with failover) and waits for its first row.  On
 * success *out is the iterator (free it with asbp_browse_free); the first
 * call of asbp_browse_next delivers the row already received.  With
 * BrowseFromStandby the synchronous standby is tried first, the leader
 * after it (asbp_standby.h); a restart after the standby failed mid-read
 * goes to the leader.  asbp_browse_delete_lower always uses the leader.
 */
asbp_code asbp_browse_open(asbp_source *src, const asbp_browse_spec *spec,
                           asbp_browse **out, asbp_err *err);

/*
 * Moves to the next row: *has_row = 1 and the row is readable through the
 * accessors below until the next call; *has_row = 0 at the end (the
 * connection has then gone back to the pool).  After an error the stream
 * is over (its connection was dropped); see asbp_browse_can_restart.
 */
asbp_code asbp_browse_next(asbp_browse *b, int *has_row, asbp_err *err);

/* Columns of the current row.  The id is never NULL. */
const char *asbp_browse_id(const asbp_browse *b, size_t *len);
/* Value columns after the id: 1 when whole (a_session), else nfields. */
size_t asbp_browse_ncols(const asbp_browse *b);
/* i-th value column; NULL for SQL NULL (a missing key, or a NULL row). */
const char *asbp_browse_col(const asbp_browse *b, size_t i, size_t *len);

/* Rows delivered by asbp_browse_next since the (re)start. */
unsigned long asbp_browse_count(const asbp_browse *b);
/* Non-zero when, after err from asbp_browse_next, a restart is allowed. */
int asbp_browse_can_restart(const asbp_browse *b, const asbp_err *err);
/* Starts the query again from its first row (see the top of this file). */
asbp_code asbp_browse_restart(asbp_browse *b, asbp_err *err);

/* The SQL text last sent and its parameters (for traces and tests). */
const char *asbp_browse_sql(const asbp_browse *b);
size_t asbp_browse_nparams(const asbp_browse *b);
const char *asbp_browse_param(const asbp_browse *b, size_t i); /* NULL: SQL NULL */

/* Accepts NULL.  An unfinished stream's connection is closed, not reused. */
void asbp_browse_free(asbp_browse *b);

/* ---- deleteIfLowerThan ---------------------------------------------- */

typedef struct asbp_purge_item {
    const char *field;
    const char *value;   /* or/and: an integer in decimal; not: the string
                          * the field must differ from (NULL: the row is
                          * deleted only when the field is present) */
} asbp_purge_item;

/*
 * DELETE the rows where
 *   (cast(a_session ->> f as bigint) < n  for ANY of or_items)
 *   AND (cast(a_session ->> f as bigint) < n  for ALL of and_items)
 *   AND (a_session ->> f IS DISTINCT FROM s  for each of not_items)
 * A group that is empty is left out; or_items and and_items must not both
 * be empty (an empty rule is refused: it would delete every row).
 */
typedef struct asbp_purge_rule {
    const asbp_purge_item *or_items;
    size_t n_or;
    const asbp_purge_item *and_items;
    size_t n_and;
    const asbp_purge_item *not_items;
    size_t n_not;
} asbp_purge_rule;

/* One DELETE statement, with failover; *deleted is the row count. */
asbp_code asbp_browse_delete_lower(asbp_source *src, const asbp_purge_rule *rule,
                                   long long *deleted, asbp_err *err);

/* ---- pure helpers (no server needed; unit-tested on their own) -------- */

/* Non-zero when s is an integer PostgreSQL's bigint holds: an optional '-'
 * then decimal digits, nothing else (no spaces, '+', exponent or point). */
int asbp_browse_is_integer(const char *s);

/* A searchOnExpr pattern as a LIKE pattern (escape character '\'):
 * '*' becomes '%'; '%', '_' and '\' are escaped so they match themselves. */
int asbp_browse_like_pattern(const char *pattern, asbp_buf *out);

/*
 * How a caller-given string becomes a SQL literal: appends the quoted
 * literal of s to out; returns 0, or -1 (with err set) when s cannot be
 * quoted.  The core uses PQescapeLiteral on the connection.
 */
typedef int (*asbp_quote_fn)(void *ud, const char *s, asbp_buf *out, asbp_err *err);

/* Builds the SELECT of spec on table_sql (an already quoted table name);
 * its parameters are, in order: the value or LIKE pattern (EQ, LIKE). */
asbp_code asbp_browse_select_sql(const asbp_browse_spec *spec, const char *table_sql,
                                 asbp_quote_fn quote, void *ud, asbp_buf *sql,
                                 asbp_err *err);

/* Builds the DELETE of rule; checks the rule (integers, not empty).  Its
 * parameters, in order: or values, and values, not values (maxparams at
 * least n_or + n_and + n_not; params[i] points into rule). */
asbp_code asbp_browse_delete_sql(const asbp_purge_rule *rule, const char *table_sql,
                                 asbp_quote_fn quote, void *ud, asbp_buf *sql,
                                 const char **params, size_t maxparams,
                                 size_t *nparams, asbp_err *err);

#endif
