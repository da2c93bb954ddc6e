#include "asbp_pool.h"
#include "asbp_pid.h"
#include "asbp_buf.h"

#include <stdlib.h>
#include <string.h>

#define NEVER INT64_MAX

typedef struct idle_conn {
    asbp_conn *c;         /* owned */
    int64_t expires_ms;   /* closed from then on; NEVER: kept */
} idle_conn;

typedef struct bucket {
    char *key;            /* owned */
    idle_conn *idle;      /* owned: oldest first, the last given back last */
    size_t n, cap;
} bucket;

struct asbp_pool {
    bucket *b;            /* owned */
    size_t nb, capb;
};

asbp_pool *asbp_pool_new(void)
{
    return calloc(1, sizeof(asbp_pool));
}

static void bucket_clear(bucket *b)
{
    size_t i;
    for (i = 0; i < b->n; i++)
        asbp_conn_free(b->idle[i].c);
    b->n = 0;
}

void asbp_pool_free(asbp_pool *p)
{
    size_t i;
    if (!p)
        return;
    for (i = 0; i < p->nb; i++) {
        bucket_clear(&p->b[i]);
        free(p->b[i].idle);
        free(p->b[i].key);
    }
    free(p->b);
    free(p);
}

static bucket *find(asbp_pool *p, const char *key, int create)
{
    size_t i;
    for (i = 0; i < p->nb; i++)
        if (strcmp(p->b[i].key, key) == 0)
            return &p->b[i];
    if (!create)
        return NULL;
    if (p->nb == p->capb) {
        size_t cap = p->capb ? p->capb * 2 : 4;
        bucket *nb = realloc(p->b, cap * sizeof *nb);
        if (!nb)
            return NULL;
        p->b = nb;
        p->capb = cap;
    }
    memset(&p->b[p->nb], 0, sizeof p->b[p->nb]);
    p->b[p->nb].key = asbp_strdup(key);
    if (!p->b[p->nb].key)
        return NULL;
    return &p->b[p->nb++];
}

/* Keeps the entries of b for which keep(entry) is true, in order; frees
 * the others.  How many were freed. */
static size_t bucket_filter(bucket *b, int (*keep)(const idle_conn *, int64_t), int64_t arg)
{
    size_t i, k = 0;
    for (i = 0; i < b->n; i++) {
        if (keep(&b->idle[i], arg))
            b->idle[k++] = b->idle[i];
        else
            asbp_conn_free(b->idle[i].c);
    }
    i = b->n - k;
    b->n = k;
    return i;
}

static int not_expired(const idle_conn *e, int64_t now_ms) { return now_ms < e->expires_ms; }

static int same_process(const idle_conn *e, int64_t pid)
{
    return (int64_t)asbp_conn_pid(e->c) == pid;
}

size_t asbp_pool_expire(asbp_pool *p, int64_t now_ms)
{
    size_t i, n = 0;
    if (!p)
        return 0;
    for (i = 0; i < p->nb; i++)
        n += bucket_filter(&p->b[i], not_expired, now_ms);
    return n;
}

asbp_conn *asbp_pool_checkout(asbp_pool *p, const char *key, int64_t now_ms)
{
    bucket *b;
    if (!p)
        return NULL;
    asbp_pool_expire(p, now_ms);
    b = find(p, key, 0);
    while (b && b->n) {
        asbp_conn *c = b->idle[--b->n].c;
        if (asbp_conn_check_idle(c))
            return c;
        asbp_conn_free(c);
    }
    return NULL;
}

/* Closes the oldest idle connections of b until it holds at most max. */
static void trim(bucket *b, size_t max)
{
    size_t drop, i;
    if (b->n <= max)
        return;
    drop = b->n - max;
    for (i = 0; i < drop; i++)
        asbp_conn_free(b->idle[i].c);
    memmove(b->idle, b->idle + drop, max * sizeof *b->idle);
    b->n = max;
}

/* Room for one more entry in b: 0, or -1 out of memory. */
static int grow(bucket *b)
{
    idle_conn *n;
    size_t cap;
    if (b->n < b->cap)
        return 0;
    cap = b->cap ? b->cap * 2 : 4;
    n = realloc(b->idle, cap * sizeof *n);
    if (!n)
        return -1;
    b->idle = n;
    b->cap = cap;
    return 0;
}

void asbp_pool_checkin(asbp_pool *p, const char *key, asbp_conn *c,
                       const asbp_pool_limits *lim, int64_t now_ms)
{
    bucket *b;
    if (!c)
        return;
    asbp_pool_expire(p, now_ms);
    if (!p || !lim || !asbp_conn_reusable(c)) {
        asbp_conn_free(c);
        return;
    }
    b = find(p, key, lim->max_idle > 0);
    if (b)
        trim(b, lim->max_idle ? lim->max_idle - 1 : 0);
    if (!b || lim->max_idle == 0 || grow(b) < 0) {
        asbp_conn_free(c);
        return;
    }
    b->idle[b->n].c = c;
    b->idle[b->n].expires_ms = lim->idle_timeout_ms > 0 && now_ms < NEVER - lim->idle_timeout_ms
                                   ? now_ms + lim->idle_timeout_ms : NEVER;
    b->n++;
}

void asbp_pool_drop(asbp_pool *p, const char *key)
{
    size_t i;
    if (!p)
        return;
    for (i = 0; i < p->nb; i++)
        if (!key || strcmp(p->b[i].key, key) == 0)
            bucket_clear(&p->b[i]);
}

void asbp_pool_after_fork(asbp_pool *p)
{
    size_t i;
    if (!p)
        return;
    for (i = 0; i < p->nb; i++)
        bucket_filter(&p->b[i], same_process, (int64_t)asbp_pid());
}

size_t asbp_pool_idle_count(const asbp_pool *p)
{
    size_t i, n = 0;
    if (!p)
        return 0;
    for (i = 0; i < p->nb; i++)
        n += p->b[i].n;
    return n;
}

asbp_conn *asbp_pool_idle_at(asbp_pool *p, size_t i)
{
    size_t b;
    if (!p)
        return NULL;
    for (b = 0; b < p->nb; b++) {
        if (i < p->b[b].n)
            return p->b[b].idle[i].c;
        i -= p->b[b].n;
    }
    return NULL;
}
