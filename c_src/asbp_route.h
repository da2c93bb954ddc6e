/*
 * asbp_route: where a source connects now, and under which pool key.
 *
 * A route is the inputs (the DataSource, the credentials, the cached leader
 * and the members to try); asbp_route_target turns it into the libpq
 * parameters, a label for messages and the pool key (a value in the
 * target, nothing else is changed).  A leader or member whose host is not
 * in the route's allow list is left out (the caller reports it: see
 * asbp_failover.c).  Pure: no I/O, no clock.
 *
 * asbp_route_cache remembers the pool key of the last route built, so that
 * the hot path (a pooled connection for an unchanged route) builds nothing;
 * it is explicit state of its owner, keyed by the route's inputs.
 */
#ifndef ASBP_ROUTE_H
#define ASBP_ROUTE_H

#include <stddef.h>

#include "asbp_allow.h"
#include "asbp_buf.h"
#include "asbp_cluster.h"
#include "asbp_conn.h"
#include "asbp_dsn.h"

/* The libpq parameters a target can hold (a DataSource has fewer: see
 * ASBP_ROUTE_MAX_DSN). */
#define ASBP_ROUTE_MAX_PARAMS 64
/* DataSource parameters allowed: the rest is for what the route adds. */
#define ASBP_ROUTE_MAX_DSN (ASBP_ROUTE_MAX_PARAMS - 12)

/* The inputs; every pointer is borrowed and must outlive the targets. */
typedef struct asbp_route {
    const asbp_dsn *dsn;
    const char *user;              /* NULL: none */
    const char *password;          /* NULL: none; never in the label */
    const char *leader_host;       /* cached leader, NULL: none */
    int leader_port;
    const asbp_cluster *members;   /* members last seen to add, NULL: none */
    const asbp_allow *allow;       /* hosts the leader and members may
                                      have; NULL: none (neither is used) */
    int port_override;             /* > 0: the leader and the members are
                                      reached at this port, not the API's
                                      (PatroniLeaderPort); 0: none */
} asbp_route;

typedef struct asbp_target {
    const char *kw[ASBP_ROUTE_MAX_PARAMS + 1];    /* NULL-terminated */
    const char *val[ASBP_ROUTE_MAX_PARAMS + 1];   /* borrowed or in the bufs */
    int n;
    asbp_buf hosts, ports;         /* owned: the host list when overridden */
    asbp_buf label;                /* owned: for messages (no password) */
    asbp_buf key;                  /* owned: the pool key (a fingerprint) */
} asbp_target;

/* Builds the target of r into t: 0, or -1 out of memory.  Free t with
 * asbp_target_free in both cases. */
int asbp_route_target(const asbp_route *r, asbp_target *t);
/* Sets (or adds) one parameter; v is borrowed.  The key is not changed. */
void asbp_target_set(asbp_target *t, const char *kw, const char *v);
/* The parameters for asbp_conn_open (borrowed from t). */
void asbp_target_params(const asbp_target *t, const char *label, asbp_connparams *p);
const char *asbp_target_key(const asbp_target *t);
const char *asbp_target_label(const asbp_target *t);
void asbp_target_free(asbp_target *t);

typedef struct asbp_route_cache {
    int valid;
    char host[256];                /* leader of the route, "" for none */
    int port;
    int members;                   /* members were added */
    unsigned long gen;             /* their generation then */
    asbp_buf key;                  /* owned: the pool key */
} asbp_route_cache;

#define ASBP_ROUTE_CACHE_INIT { 0, "", 0, 0, 0, ASBP_BUF_INIT }

/* The pool key kept for r, or NULL when r differs from the route it was
 * kept for (or nothing is kept). */
const char *asbp_route_cache_get(const asbp_route_cache *c, const asbp_route *r);
/* Keeps key for r (copied): 0, or -1 out of memory (then nothing kept). */
int asbp_route_cache_put(asbp_route_cache *c, const asbp_route *r, const char *key);
void asbp_route_cache_clear(asbp_route_cache *c);   /* frees; stays usable */

#endif
