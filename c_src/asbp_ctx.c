#include "asbp_ctx.h"
#include "asbp_pid.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct kept {
    const char *key;            /* borrowed from obj */
    void *obj;                  /* owned: freed with free_fn */
    asbp_ctx_free_fn free_fn;
} kept;

struct asbp_ctx {
    asbp_clock clock;
    asbp_logger logger;
    asbp_pool *pool;            /* owned */
    pid_t pid;                  /* process the pool's connections belong to */
    asbp_cluster **clusters;    /* owned */
    size_t nclusters;
    kept *kept;                 /* owned: the sources */
    size_t nkept;
    unsigned refs;
#ifdef ASBP_TEST_HOOKS
    int commit_lost;            /* fault injection, test builds only */
#endif
    asbp_log_recent recent[32]; /* the logger's repeat suppression */
    asbp_log_queue *logq;       /* owned: messages waiting for the caller */
};

/* Messages kept between two emptyings of the queue (the last ones). */
#define LOG_QUEUE_CAP 64

asbp_ctx *asbp_ctx_new(void)
{
    asbp_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return NULL;
    ctx->pool = asbp_pool_new();
    ctx->logq = asbp_log_queue_new(LOG_QUEUE_CAP);
    if (!ctx->pool || !ctx->logq) {
        asbp_pool_free(ctx->pool);
        asbp_log_queue_free(ctx->logq);
        free(ctx);
        return NULL;
    }
    ctx->pid = asbp_pid();
    ctx->refs = 1;
    ctx->logger.recent = ctx->recent;
    ctx->logger.nrecent = sizeof ctx->recent / sizeof ctx->recent[0];
    ctx->logger.dedupe_ms = 10000;
    return ctx;
}

void asbp_ctx_retain(asbp_ctx *ctx)
{
    if (ctx)
        ctx->refs++;
}

void asbp_ctx_release(asbp_ctx *ctx)
{
    if (ctx && --ctx->refs == 0)
        asbp_ctx_free(ctx);
}

void asbp_ctx_free(asbp_ctx *ctx)
{
    size_t i;
    if (!ctx)
        return;
    asbp_pool_free(ctx->pool);
    for (i = 0; i < ctx->nkept; i++)
        ctx->kept[i].free_fn(ctx->kept[i].obj);
    free(ctx->kept);
    for (i = 0; i < ctx->nclusters; i++)
        asbp_cluster_free(ctx->clusters[i]);
    free(ctx->clusters);
    asbp_log_queue_free(ctx->logq);
    free(ctx);
}

asbp_clock *asbp_ctx_clock(asbp_ctx *ctx) { return &ctx->clock; }
asbp_logger *asbp_ctx_logger(asbp_ctx *ctx) { return &ctx->logger; }
asbp_pool *asbp_ctx_pool(asbp_ctx *ctx) { return ctx->pool; }
asbp_log_queue *asbp_ctx_log_queue(asbp_ctx *ctx) { return ctx->logq; }
int64_t asbp_ctx_now(const asbp_ctx *ctx) { return asbp_clock_now_ms(&ctx->clock); }

#ifdef ASBP_TEST_HOOKS
void asbp_ctx_inject_commit_lost(asbp_ctx *ctx, int n) { ctx->commit_lost = n; }

int asbp_ctx_take_commit_lost(asbp_ctx *ctx)
{
    if (ctx->commit_lost <= 0)
        return 0;
    ctx->commit_lost--;
    return 1;
}
#endif

void asbp_ctx_check_fork(asbp_ctx *ctx)
{
    pid_t me = asbp_pid();
    if (ctx->pid == me)
        return;
    ASBP_TRACE(&ctx->logger, "pid %ld: forked from %ld, abandoning inherited connections",
               (long)me, (long)ctx->pid);
    asbp_pool_after_fork(ctx->pool);
    asbp_log_queue_clear(ctx->logq);   /* the parent's to emit */
    ctx->pid = me;
}

asbp_cluster *asbp_ctx_cluster(asbp_ctx *ctx, const char *ds)
{
    size_t i;
    asbp_cluster **n, *c;
    const char *key = ds ? ds : "";
    for (i = 0; i < ctx->nclusters; i++)
        if (strcmp(asbp_cluster_key(ctx->clusters[i]), key) == 0)
            return ctx->clusters[i];
    c = asbp_cluster_new(key);
    if (!c)
        return NULL;
    n = realloc(ctx->clusters, (ctx->nclusters + 1) * sizeof *n);
    if (!n) {
        asbp_cluster_free(c);
        return NULL;
    }
    ctx->clusters = n;
    ctx->clusters[ctx->nclusters++] = c;
    return c;
}

size_t asbp_ctx_cluster_count(const asbp_ctx *ctx) { return ctx->nclusters; }

asbp_cluster *asbp_ctx_cluster_at(asbp_ctx *ctx, size_t i)
{
    return i < ctx->nclusters ? ctx->clusters[i] : NULL;
}

void *asbp_ctx_find_kept(const asbp_ctx *ctx, const char *key)
{
    size_t i;
    for (i = 0; i < ctx->nkept; i++)
        if (strcmp(ctx->kept[i].key, key) == 0)
            return ctx->kept[i].obj;
    return NULL;
}

int asbp_ctx_keep(asbp_ctx *ctx, const char *key, void *obj, asbp_ctx_free_fn free_fn)
{
    kept *n = realloc(ctx->kept, (ctx->nkept + 1) * sizeof *n);
    if (!n)
        return -1;
    ctx->kept = n;
    ctx->kept[ctx->nkept].key = key;
    ctx->kept[ctx->nkept].obj = obj;
    ctx->kept[ctx->nkept].free_fn = free_fn;
    ctx->nkept++;
    return 0;
}
