/*
 * asbp_pool: idle connections of this process, keyed by their effective
 * connection parameters (user and password included).
 *
 * A tied session checks a connection out for the length of its transaction
 * and checks it back in when the transaction has ended; nested ties simply
 * hold two connections.  A connection opened by another process (after a
 * fork) is never handed out: the pool abandons it (asbp_conn_free).
 *
 * The limits come with each connection given back (the options of whoever
 * used it: PoolMaxIdle, PoolIdleTimeout): the key keeps at most max_idle
 * idle connections (the oldest over it are closed), and the connection
 * stays for at most idle_timeout_ms.  There is no timer: every checkout
 * and checkin first closes the connections, of every key, that have been
 * idle too long, by the time the caller gives (its context's clock).
 */
#ifndef ASBP_POOL_H
#define ASBP_POOL_H

#include <stddef.h>
#include <stdint.h>
#include "asbp_conn.h"

typedef struct asbp_pool asbp_pool;

typedef struct asbp_pool_limits {
    size_t max_idle;          /* idle connections kept for the key; 0: none */
    int64_t idle_timeout_ms;  /* longest idle time; 0: no limit */
} asbp_pool_limits;

asbp_pool *asbp_pool_new(void);
void asbp_pool_free(asbp_pool *p);   /* frees (or abandons) every idle conn */

/* An idle, healthy connection for key (the one given back last), or NULL;
 * connections idle too long at now_ms are closed first. */
asbp_conn *asbp_pool_checkout(asbp_pool *p, const char *key, int64_t now_ms);
/* Keeps c for later when it is healthy and idle and lim allows it, else
 * frees it; the key's idle connections over lim->max_idle are closed. */
void asbp_pool_checkin(asbp_pool *p, const char *key, asbp_conn *c,
                       const asbp_pool_limits *lim, int64_t now_ms);
/* Closes every idle connection too long idle at now_ms; how many. */
size_t asbp_pool_expire(asbp_pool *p, int64_t now_ms);
/* Frees every idle connection whose key is key (NULL: all keys). */
void asbp_pool_drop(asbp_pool *p, const char *key);
/* Abandons every idle connection opened by another process. */
void asbp_pool_after_fork(asbp_pool *p);
size_t asbp_pool_idle_count(const asbp_pool *p);
/* The i-th idle connection (for statistics), NULL past the end. */
asbp_conn *asbp_pool_idle_at(asbp_pool *p, size_t i);

#endif
