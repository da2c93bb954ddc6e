/*
 * asbp_pool: idle connections of this process, keyed by their effective
 * connection parameters (user and password included).
 *
 * A tied session checks a connection out for the length of its transaction
 * and checks it back in when the transaction has ended; nested ties simply
 * hold two connections.  A connection opened by another process (after a
 * fork) is never handed out: the pool abandons it (asbp_conn_free).
 */
#ifndef ASBP_POOL_H
#define ASBP_POOL_H

#include <stddef.h>
#include "asbp_conn.h"

typedef struct asbp_pool asbp_pool;

asbp_pool *asbp_pool_new(size_t max_idle_per_key);
void asbp_pool_free(asbp_pool *p);   /* frees (or abandons) every idle conn */

/* An idle, healthy connection for key, or NULL. */
asbp_conn *asbp_pool_checkout(asbp_pool *p, const char *key);
/* Keeps c for later when it is healthy and idle, else frees it. */
void asbp_pool_checkin(asbp_pool *p, const char *key, asbp_conn *c);
/* Frees every idle connection whose key is key (NULL: all keys). */
void asbp_pool_drop(asbp_pool *p, const char *key);
/* Abandons every idle connection opened by another process. */
void asbp_pool_after_fork(asbp_pool *p);
size_t asbp_pool_idle_count(const asbp_pool *p);
/* The i-th idle connection (for statistics), NULL past the end. */
asbp_conn *asbp_pool_idle_at(asbp_pool *p, size_t i);

#endif
