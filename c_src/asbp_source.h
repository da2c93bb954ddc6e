/*
 * asbp_source: one resolved set of options (a DataSource with its user,
 * table and Patroni settings), and the code that gets a connection to the
 * writable node for it, failing over when the node is wrong or gone
 * (DESIGN.md sections 3 to 5).
 *
 * Sources live in the context (asbp_source_get finds or creates one and
 * keeps it there with asbp_ctx_keep) and are freed with it.
 *
 * The engine is split by concern: asbp_table (table name and the store's
 * statements), asbp_route (connection target and pool key), asbp_watch
 * (promotion watches), asbp_source.c (options, source key, connections),
 * asbp_failover.c (finding the leader), asbp_run.c (the retry loop).
 */
#ifndef ASBP_SOURCE_H
#define ASBP_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "asbp_cluster.h"
#include "asbp_conn.h"
#include "asbp_ctx.h"
#include "asbp_err.h"
#include "asbp_options.h"
#include "asbp_table.h"   /* asbp_table_quote, asbp_sql_id */

typedef struct asbp_source asbp_source;

/* Finds the source for these options in ctx, or creates it. */
asbp_code asbp_source_get(asbp_ctx *ctx, const asbp_options *o,
                          asbp_source **out, asbp_err *err);
void asbp_source_free(asbp_source *s);   /* the context's free callback */

const char *asbp_source_key(const asbp_source *s);
/* DataSource as shown in messages (password masked). */
const char *asbp_source_display(const asbp_source *s);
/* Table name quoted for SQL ("public"."sessions"). */
const char *asbp_source_table_sql(const asbp_source *s);
/* The store's statements for this table (asbp_sql_id: asbp_table.h). */
const char *asbp_source_sql(const asbp_source *s, asbp_sql_id id);
/* Table name as the user gave it. */
const char *asbp_source_table(const asbp_source *s);
/* The context and the cluster state the source uses (both borrowed from
 * the context, not part of the source: hence mutable). */
asbp_ctx *asbp_source_ctx(const asbp_source *s);
asbp_cluster *asbp_source_cluster(const asbp_source *s);
int asbp_source_has_patroni(const asbp_source *s);
int64_t asbp_source_failover_timeout(const asbp_source *s);
int64_t asbp_source_query_timeout(const asbp_source *s);
int64_t asbp_source_connect_timeout(const asbp_source *s);

/* A connection to the current target: from the pool, else a new one. */
asbp_code asbp_source_acquire(asbp_source *s, int64_t deadline_ms,
                              asbp_conn **out, asbp_err *err);
/* Gives a connection back: kept when healthy and idle, else freed. */
void asbp_source_release(asbp_source *s, asbp_conn *c);

/*
 * After a failover-class error: finds where the writable node is now
 * (Patroni discovery, respecting the circuit breaker; cached leader;
 * members last seen) and makes it the target of the next acquire.
 * ASBP_OK: try again now.  ASBP_E_DISCOVERY (class FAILOVER): no usable
 * leader yet (a cluster in transition): try again after a short wait.
 */
asbp_code asbp_source_failover(asbp_source *s, int64_t deadline_ms, asbp_err *err);

/*
 * For the operator tool: asks the Patroni API now (whatever the breaker
 * says, without changing it or the cache) and returns the answer.  The
 * caller clears res with asbp_discovery_result_clear.  per_endpoint: NULL,
 * or asbp_source_url_count(s) entries filled with what each endpoint did;
 * then the round waits for every endpoint (up to PatroniTimeout).
 */
struct asbp_discovery_result;
struct asbp_endpoint_result;
asbp_code asbp_source_discover_now(const asbp_source *s,
                                   struct asbp_endpoint_result *per_endpoint,
                                   struct asbp_discovery_result *res, asbp_err *err);
/* The Patroni settings, for the tool's report. */
size_t asbp_source_url_count(const asbp_source *s);
const char *asbp_source_url(const asbp_source *s, size_t i);   /* as configured */
int64_t asbp_source_cache_ttl(const asbp_source *s);
int64_t asbp_source_breaker_delay(const asbp_source *s);

/*
 * Runs one operation with failover: fn(ud, conn, err) is called with a
 * connection (*conn, acquired when NULL); on a failover-class error the
 * connection is dropped, asbp_source_failover runs, and fn is called again
 * on a new connection, with a short backoff while no leader exists, until
 * the failover budget (FailoverTimeout from the start of the operation)
 * is spent; a retry-class error is retried on the same node (bounded).
 * fn must be safe to call again on a new connection (the caller keeps what
 * it needs to redo its work there).  On return *conn is the connection
 * used (still checked out) or NULL when it was dropped.
 */
typedef asbp_code (*asbp_attempt_fn)(void *ud, asbp_conn *conn, asbp_err *err);
asbp_code asbp_source_run(asbp_source *s, asbp_conn **conn, int64_t start_ms,
                          asbp_attempt_fn fn, void *ud, asbp_err *err);

#endif
