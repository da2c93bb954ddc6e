/*
 * asbp_ctx: everything one process (one Perl interpreter) keeps between
 * calls: the clock, the logger, the connection pool, the per-DataSource
 * cluster states and the resolved option sets ("sources").
 *
 * This is the only long-lived state of the core, and it is explicit: the
 * XS layer creates one context per interpreter and passes it to every call.
 * After a fork the context notices the new pid and abandons the parent's
 * connections (asbp_ctx_check_fork).
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
int64_t asbp_ctx_now(asbp_ctx *ctx);

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

/* Sources are stored here by asbp_source_get (opaque to the context). */
struct asbp_source;
struct asbp_source *asbp_ctx_find_source(asbp_ctx *ctx, const char *key);
int asbp_ctx_add_source(asbp_ctx *ctx, struct asbp_source *src);
size_t asbp_ctx_source_count(const asbp_ctx *ctx);
struct asbp_source *asbp_ctx_source_at(asbp_ctx *ctx, size_t i);

#endif
