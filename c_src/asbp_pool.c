#include "asbp_pool.h"
#include "asbp_pid.h"
#include "asbp_buf.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct bucket {
    char *key;            /* owned */
    asbp_conn **idle;     /* owned array of owned connections */
    size_t n;
} bucket;

struct asbp_pool {
    bucket *b;            /* owned */
    size_t nb, capb;
    size_t max_idle;
};

asbp_pool *asbp_pool_new(size_t max_idle)
{
    asbp_pool *p = calloc(1, sizeof *p);
    if (p)
        p->max_idle = max_idle ? max_idle : 1;
    return p;
}

static void bucket_clear(bucket *b)
{
    size_t i;
    for (i = 0; i < b->n; i++)
        asbp_conn_free(b->idle[i]);
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
    p->b[p->nb].idle = calloc(p->max_idle, sizeof(asbp_conn *));
    if (!p->b[p->nb].key || !p->b[p->nb].idle) {
        free(p->b[p->nb].key);
        free(p->b[p->nb].idle);
        return NULL;
    }
    return &p->b[p->nb++];
}

asbp_conn *asbp_pool_checkout(asbp_pool *p, const char *key)
{
    bucket *b;
    if (!p)
        return NULL;
    b = find(p, key, 0);
    while (b && b->n) {
        asbp_conn *c = b->idle[--b->n];
        if (asbp_conn_check_idle(c))
            return c;
        asbp_conn_free(c);
    }
    return NULL;
}

void asbp_pool_checkin(asbp_pool *p, const char *key, asbp_conn *c)
{
    bucket *b;
    if (!c)
        return;
    if (!p || !asbp_conn_reusable(c)) {
        asbp_conn_free(c);
        return;
    }
    b = find(p, key, 1);
    if (!b || b->n >= p->max_idle) {
        asbp_conn_free(c);
        return;
    }
    b->idle[b->n++] = c;
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
    size_t i, j, k;
    pid_t me = asbp_pid();
    if (!p)
        return;
    for (i = 0; i < p->nb; i++) {
        bucket *b = &p->b[i];
        for (j = k = 0; j < b->n; j++) {
            if (asbp_conn_pid(b->idle[j]) == me)
                b->idle[k++] = b->idle[j];
            else
                asbp_conn_free(b->idle[j]);
        }
        b->n = k;
    }
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
            return p->b[b].idle[i];
        i -= p->b[b].n;
    }
    return NULL;
}
