/*
 * asbp_patroni: parses and validates one answer of Patroni's GET /cluster.
 *
 * The parser is a streaming yajl parser with a bounded nesting depth (a
 * hostile answer cannot exhaust the stack) and a bounded size.  It keeps
 * only what leader selection needs; unknown fields are ignored.
 * Shape (Patroni 3.x):
 *   {"members":[{"name","role","state","api_url","host","port",
 *                "timeline","lag"}...], ...}
 */
#ifndef ASBP_PATRONI_H
#define ASBP_PATRONI_H

#include <stddef.h>
#include "asbp_err.h"

#define ASBP_PATRONI_MAX_BODY (1024 * 1024)   /* 1 MiB */
#define ASBP_PATRONI_MAX_DEPTH 64              /* nesting of objects/arrays */
#define ASBP_PATRONI_MAX_MEMBERS 1024          /* entries of "members" */

typedef struct asbp_member {
    char *name;      /* owned; NULL when absent */
    char *role;      /* owned; NULL when absent */
    char *state;     /* owned; NULL when absent */
    char *host;      /* owned; NULL when absent or not a sane host: a
                        non-empty string of at most 255 bytes without NUL,
                        comma, whitespace or control characters */
    char *api_url;   /* owned; NULL when absent */
    int port;        /* 1..65535, or 0 when absent or not sane (a JSON
                        integer, or a string of digits only; floats,
                        negatives, bools... give 0) */
    long long lag;   /* "lag": bytes behind the leader, a JSON integer
                        0..10^18; -1 when absent, "unknown" or anything
                        else (the leader has none) */
} asbp_member;

typedef struct asbp_topology {
    asbp_member *members;   /* owned array */
    size_t n;
} asbp_topology;

/*
 * Parses body (len bytes, need not be NUL-terminated).  ASBP_OK and a
 * topology, or an error (ASBP_E_DISCOVERY) explaining why the answer is not
 * a valid /cluster answer: not JSON, truncated, not an object, no
 * "members" array, a member that is not an object, too large, nested too
 * deep, too many members.  The message never quotes the body.
 * name/role/state/api_url are kept with NUL and control characters
 * replaced by '?'; a key given twice keeps its last value.
 */
asbp_code asbp_patroni_parse(const char *body, size_t len,
                             asbp_topology **out, asbp_err *err);
void asbp_topology_free(asbp_topology *t);

typedef enum asbp_leader_status {
    ASBP_LEADER_OK = 0,          /* exactly one leader, host and port sane,
                                    state absent or "running" */
    ASBP_LEADER_NONE,            /* no member with role "leader" */
    ASBP_LEADER_NOT_RUNNING,     /* the leader's state is not "running" */
    ASBP_LEADER_BAD_ADDRESS,     /* the leader lacks a sane host or port */
    ASBP_LEADER_MULTIPLE         /* several members claim role "leader" */
} asbp_leader_status;

/*
 * Leader selection on a parsed answer.  *leader is set for OK,
 * NOT_RUNNING and BAD_ADDRESS (the member concerned), else NULL.
 * Only role "leader" (case-sensitive) counts: "standby_leader", "master",
 * "replica", "sync_standby", "quorum_standby" do not.  The address is
 * checked before the state: a leader without host or port is BAD_ADDRESS
 * whatever its state.
 */
asbp_leader_status asbp_topology_leader(const asbp_topology *t,
                                        const asbp_member **leader);

const char *asbp_leader_status_name(asbp_leader_status s);

/*
 * The synchronous standby of a parsed answer: the first member with role
 * "sync_standby" (case-sensitive; "replica", "quorum_standby" and the rest
 * do not count: only a synchronous standby has flushed every acknowledged
 * commit), state "running" (Patroni before 3.0.4) or "streaming", and a
 * sane host and port.  NULL when there is none (t NULL too).
 */
const asbp_member *asbp_topology_sync_standby(const asbp_topology *t);

#endif
