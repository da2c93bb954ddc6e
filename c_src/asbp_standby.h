/*
 * asbp_standby: the synchronous standby as the server of the read-only
 * class methods, on request (BrowseFromStandby; DESIGN.md section 9: in
 * synchronous mode the synchronous standby has flushed every acknowledged
 * commit, so it can spare the leader the whole-table reads).
 *
 * The standby is the member that the last answer of the Patroni API named
 * with role "sync_standby" (asbp_topology_sync_standby), kept in the
 * cluster state by asbp_standby_learn wherever an answer is applied.  When
 * nothing recent is known (PatroniCacheTTL), asbp_standby_acquire asks the
 * API first (unless the circuit breaker is open).  A standby whose host is
 * not allowed (DataSource, PatroniUrl, PatroniAllowedHosts) is never
 * connected to.  Whatever goes wrong, the caller reads from the leader.
 */
#ifndef ASBP_STANDBY_H
#define ASBP_STANDBY_H

#include <stdint.h>

#include "asbp_cluster.h"
#include "asbp_conn.h"
#include "asbp_err.h"
#include "asbp_patroni.h"
#include "asbp_source.h"

/* 1 when reads of s go to the standby first (BrowseFromStandby and a
 * PatroniUrl), else 0. */
int asbp_standby_wanted(const asbp_source *s);

/* Records the synchronous standby of answer t in c (none when t names
 * none).  NULL t: nothing (no answer, nothing learnt). */
void asbp_standby_learn(asbp_cluster *c, const asbp_topology *t, int64_t now_ms);

/*
 * A connection to the synchronous standby of s: from the pool, else a new
 * one opened within ConnectTimeout and deadline_ms (which also bounds the
 * API request).  ASBP_OK and *out (the caller's; give it back with
 * asbp_source_release), or an error saying why no standby serves the read
 * (none known, host not allowed, unreachable): the caller then reads from
 * the leader after asbp_standby_fallback.
 */
asbp_code asbp_standby_acquire(asbp_source *s, int64_t deadline_ms, asbp_conn **out,
                               asbp_err *err);

/*
 * The standby did not serve a read (err: why): says at info level that the
 * leader serves it (the logger drops repeats of a line for a while), and
 * forgets the standby when it failed as a server (a failover- or
 * retry-class error), so that the next reads go to the leader at once
 * until the API names a standby again.  Those later reads are traced
 * only (err class ASBP_EC_NONE from asbp_standby_acquire): the line was
 * written when the standby was forgotten.
 */
void asbp_standby_fallback(asbp_source *s, const asbp_err *err);

#endif
