/*
 * asbp_cluster: what this process knows about one Patroni cluster, kept
 * per original DataSource (DESIGN.md section 3): the leader last found and
 * when, the circuit breaker, the members last seen, the synchronous
 * standby last named, and counters for the per-process view.  Pure
 * state: every function takes the time "now" from its caller (the
 * context's clock), so tests drive it without sleeping.
 *
 * NULL: read-only accessors, asbp_cluster_free, forget_leader,
 * forget_standby, trip, reset_breaker and count accept a NULL cluster
 * (nothing, 0, "" or -1); set_leader, set_members and set_standby need a
 * cluster.
 */
#ifndef ASBP_CLUSTER_H
#define ASBP_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

typedef struct asbp_cluster asbp_cluster;

typedef struct asbp_cluster_stats {
    unsigned long discoveries;     /* API asked */
    unsigned long api_failures;    /* no endpoint gave a valid answer */
    unsigned long transitions;     /* valid answer, no usable leader yet */
    unsigned long leader_changes;  /* a different leader was found */
    unsigned long failovers;       /* operations that needed a failover */
    unsigned long retries;         /* operations retried on the same node */
    unsigned long breaker_skips;   /* API not asked: breaker open */
} asbp_cluster_stats;

/* key copied (NULL: ""); free with asbp_cluster_free (the owner: asbp_ctx). */
asbp_cluster *asbp_cluster_new(const char *key);
void asbp_cluster_free(asbp_cluster *c);
const char *asbp_cluster_key(const asbp_cluster *c);

/*
 * Records a leader found now (host copied): resets the breaker and counts a
 * leader change when host or port differ from the leader kept (none kept
 * counts too).  -1: host NULL or no memory (nothing changed).
 */
int asbp_cluster_set_leader(asbp_cluster *c, const char *host, int port,
                            int64_t now_ms);
/*
 * The cached leader when it is younger than ttl_ms: returns 1 and fills
 * host/port/age; else 0.  (A leader is kept after it expired, for the
 * per-process view: see asbp_cluster_last_leader.)
 */
int asbp_cluster_leader(const asbp_cluster *c, int64_t now_ms, int64_t ttl_ms,
                        const char **host, int *port, int64_t *age_ms);
int asbp_cluster_last_leader(const asbp_cluster *c, const char **host,
                             int *port, int64_t *found_at_ms);
/* Forgets the cached leader (it refused us: not writable or gone). */
void asbp_cluster_forget_leader(asbp_cluster *c);

/*
 * Members last seen in a valid answer (copied).  n == 0 keeps the last
 * list.  The same list (same hosts and ports in the same order) only
 * refreshes its time; another list replaces it and moves the generation.
 * -1: no memory (the last list is kept).
 */
int asbp_cluster_set_members(asbp_cluster *c, size_t n, const char *const *hosts,
                             const int *ports, int64_t now_ms);
size_t asbp_cluster_member_count(const asbp_cluster *c);
/* Changes whenever the members last seen change. */
unsigned long asbp_cluster_members_gen(const asbp_cluster *c);
const char *asbp_cluster_member_host(const asbp_cluster *c, size_t i);
int asbp_cluster_member_port(const asbp_cluster *c, size_t i);

/*
 * The synchronous standby the last answer of the API named (for
 * BrowseFromStandby): host copied, NULL when the answer named none (that
 * is knowledge too: the API is not asked again before it is stale).
 * -1: no memory (the last one is kept, with its time).
 */
int asbp_cluster_set_standby(asbp_cluster *c, const char *host, int port,
                             int64_t now_ms);
/*
 * The synchronous standby known from an answer younger than ttl_ms:
 * 1 with host and port (valid until the next set or forget) when it named
 * one, 0 when it named none (or the standby was forgotten since); -1 when
 * nothing that recent is known (ask the API).  NULL c: -1.
 */
int asbp_cluster_standby(const asbp_cluster *c, int64_t now_ms, int64_t ttl_ms,
                         const char **host, int *port);
/* The standby could not be used: none is known from now_ms on, until an
 * answer names one again (or ttl_ms passed: see asbp_cluster_standby). */
void asbp_cluster_forget_standby(asbp_cluster *c, int64_t now_ms);
/* 1 when the standby was forgotten and no answer was recorded since (the
 * reason none is known), else 0 (NULL c too). */
int asbp_cluster_standby_forgotten(const asbp_cluster *c);

/* Circuit breaker: trip records a failure at now_ms (set_leader resets). */
void asbp_cluster_trip(asbp_cluster *c, int64_t now_ms);
void asbp_cluster_reset_breaker(asbp_cluster *c);
/* 1 when open (API must not be asked): less than delay_ms since the last
 * failure; remaining_ms filled when open. */
int asbp_cluster_breaker_open(const asbp_cluster *c, int64_t now_ms,
                              int64_t delay_ms, int64_t *remaining_ms);
int64_t asbp_cluster_last_failure(const asbp_cluster *c); /* -1: none */

/* Counters change only here: one event of the given kind (leader_changes
 * is counted by asbp_cluster_set_leader). */
typedef enum asbp_counter {
    ASBP_COUNT_DISCOVERIES = 0,
    ASBP_COUNT_API_FAILURES,
    ASBP_COUNT_TRANSITIONS,
    ASBP_COUNT_FAILOVERS,
    ASBP_COUNT_RETRIES,
    ASBP_COUNT_BREAKER_SKIPS
} asbp_counter;
void asbp_cluster_count(asbp_cluster *c, asbp_counter which);
/* A copy of the counters (zeros for NULL). */
void asbp_cluster_stats_get(const asbp_cluster *c, asbp_cluster_stats *out);

#endif
