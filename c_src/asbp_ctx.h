/*
 * asbp_ctx: everything one process (one Perl interpreter) keeps between
 * calls: the clock, the logger, the connection pool, the per-DataSource
 * cluster states, and the objects kept under a key for the life of the
 * context (the resolved option sets, "sources", of asbp_source_get).
 *
 * This is the only long-lived state of the core, and it is explicit: the
 * XS layer creates one context per interpreter and passes it to every call.
 * After a fork the context notices the new pid and abandons the parent's
 * connections and the messages still queued (asbp_ctx_check_fork).
 */
#ifndef ASBP_CTX_H
#define ASBP_CTX_H

#include <stdint.h>
#include <sys/types.h>

#include "asbp_clock.h"
#include "asbp_cluster.h"
#include "asbp_log.h"
#include "asbp_pool.h"

typedef struct asbp_ctx asbp_ctx;

/* Created with one reference; asbp_ctx_release frees it on the last one.
 * Objects that outlive their creator's scope (tied stores) retain it. */
asbp_ctx *asbp_ctx_new(void);
void asbp_ctx_retain(asbp_ctx *ctx);
void asbp_ctx_release(asbp_ctx *ctx); /* accepts NULL */
void asbp_ctx_free(asbp_ctx *ctx);    /* frees now, whatever the count */

asbp_clock *asbp_ctx_clock(asbp_ctx *ctx);
asbp_logger *asbp_ctx_logger(asbp_ctx *ctx);
asbp_pool *asbp_ctx_pool(asbp_ctx *ctx);
/* A queue of 64 messages, owned by the context, for a logger whose
 * messages must wait until the core call returns (see asbp_log.h); the
 * logger is not connected to it unless its user does so. */
asbp_log_queue *asbp_ctx_log_queue(asbp_ctx *ctx);
int64_t asbp_ctx_now(const asbp_ctx *ctx);

#ifdef ASBP_TEST_HOOKS
/*
 * Fault injection, compiled in a test build only (perl Makefile.PL
 * ASBP_TEST_HOOKS=1): the next n COMMITs that succeed are reported as
 * "connection lost", so the tests can prove that a transaction whose
 * COMMIT outcome is unknown is redone without a duplicate-key error.
 */
void asbp_ctx_inject_commit_lost(asbp_ctx *ctx, int n);
int asbp_ctx_take_commit_lost(asbp_ctx *ctx);
#endif

/* Call at each entry: if the pid changed, abandons inherited connections. */
void asbp_ctx_check_fork(asbp_ctx *ctx);

/* The cluster state of a DataSource (created on first use; owned by ctx). */
asbp_cluster *asbp_ctx_cluster(asbp_ctx *ctx, const char *datasource);
size_t asbp_ctx_cluster_count(const asbp_ctx *ctx);
asbp_cluster *asbp_ctx_cluster_at(asbp_ctx *ctx, size_t i);

/*
 * Objects kept for the life of the context under a key (asbp_source_get
 * keeps its sources here; they are opaque to the context).  The context
 * owns obj from asbp_ctx_keep on and calls free_fn(obj) when it is freed;
 * key is borrowed and must live as long as obj (typically obj's own copy).
 */
typedef void (*asbp_ctx_free_fn)(void *obj);
void *asbp_ctx_find_kept(const asbp_ctx *ctx, const char *key);   /* NULL: none */
int asbp_ctx_keep(asbp_ctx *ctx, const char *key, void *obj,
                  asbp_ctx_free_fn free_fn);                       /* 0, or -1 out of memory */

#endif
