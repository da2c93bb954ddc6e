#include "asbp_secret.h"
#include "asbp_buf.h"
#include "asbp_random.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(MADV_DONTDUMP)
#define NODUMP_ADVICE MADV_DONTDUMP
#elif defined(MADV_NOCORE)
#define NODUMP_ADVICE MADV_NOCORE
#endif
#if !defined(MAP_ANONYMOUS) && defined(MAP_ANON)
#define MAP_ANONYMOUS MAP_ANON
#endif

/* ---- secret memory ---------------------------------------------------- */

/* A block is [total size][pad to HDR][the caller's bytes], mapped on whole
 * pages of its own when the platform can keep them out of core dumps. */
#define HDR 16

int asbp_secret_nodump(void)
{
#if defined(NODUMP_ADVICE) && defined(MAP_ANONYMOUS)
    return 1;
#else
    return 0;
#endif
}

void *asbp_secret_alloc(size_t n)
{
    unsigned char *base;
    size_t total;
    if (n > (size_t)-1 / 2)
        return NULL;
    total = n + HDR;
#if defined(NODUMP_ADVICE) && defined(MAP_ANONYMOUS)
    {
        long pg = sysconf(_SC_PAGESIZE);
        size_t page = pg > 0 ? (size_t)pg : 4096;
        void *m;
        total = (total + page - 1) / page * page;
        m = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return NULL;
        (void)madvise(m, total, NODUMP_ADVICE);   /* best effort: old kernels */
        base = m;   /* anonymous pages come zeroed */
    }
#else
    base = calloc(1, total);
    if (!base)
        return NULL;
#endif
    memcpy(base, &total, sizeof total);
    return base + HDR;
}

char *asbp_secret_dup(const char *s)
{
    size_t n;
    char *p;
    if (!s)
        return NULL;
    n = strlen(s);
    p = asbp_secret_alloc(n + 1);
    if (p)
        memcpy(p, s, n + 1);
    return p;
}

void asbp_secret_free(void *p)
{
    unsigned char *base;
    size_t total;
    if (!p)
        return;
    base = (unsigned char *)p - HDR;
    memcpy(&total, base, sizeof total);
    asbp_wipe(base, total);
#if defined(NODUMP_ADVICE) && defined(MAP_ANONYMOUS)
    munmap(base, total);
#else
    free(base);
#endif
}

/* ---- SipHash-2-4 ------------------------------------------------------ */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static void sip_round(asbp_sip *s)
{
    s->v0 += s->v1; s->v1 = ROTL(s->v1, 13); s->v1 ^= s->v0; s->v0 = ROTL(s->v0, 32);
    s->v2 += s->v3; s->v3 = ROTL(s->v3, 16); s->v3 ^= s->v2;
    s->v0 += s->v3; s->v3 = ROTL(s->v3, 21); s->v3 ^= s->v0;
    s->v2 += s->v1; s->v1 = ROTL(s->v1, 17); s->v1 ^= s->v2; s->v2 = ROTL(s->v2, 32);
}

static void sip_compress(asbp_sip *s, uint64_t m)
{
    s->v3 ^= m;
    sip_round(s);
    sip_round(s);
    s->v0 ^= m;
}

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    int i;
    for (i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

void asbp_sip_init(asbp_sip *s, const unsigned char key[16])
{
    uint64_t k0 = le64(key), k1 = le64(key + 8);
    s->v0 = k0 ^ UINT64_C(0x736f6d6570736575);
    s->v1 = k1 ^ UINT64_C(0x646f72616e646f6d);
    s->v2 = k0 ^ UINT64_C(0x6c7967656e657261);
    s->v3 = k1 ^ UINT64_C(0x7465646279746573);
    s->tail = 0;
    s->len = 0;
}

void asbp_sip_update(asbp_sip *s, const void *data, size_t n)
{
    const unsigned char *p = data;
    size_t i;
    for (i = 0; i < n; i++) {
        s->tail |= (uint64_t)p[i] << (8 * (s->len % 8));
        s->len++;
        if (s->len % 8 == 0) {
            sip_compress(s, s->tail);
            s->tail = 0;
        }
    }
}

uint64_t asbp_sip_final(asbp_sip *s)
{
    uint64_t r;
    sip_compress(s, s->tail | (uint64_t)(s->len & 0xff) << 56);
    s->v2 ^= 0xff;
    sip_round(s);
    sip_round(s);
    sip_round(s);
    sip_round(s);
    r = s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
    asbp_wipe(s, sizeof *s);
    return r;
}

/* ---- fingerprints ----------------------------------------------------- */

/* The process key (32 bytes of secret memory), drawn on first use. */
static unsigned char *fp_key;

static const unsigned char *process_key(void)
{
    unsigned char *k = __atomic_load_n(&fp_key, __ATOMIC_ACQUIRE), *expected = NULL;
    asbp_err err;
    if (k)
        return k;
    k = asbp_secret_alloc(32);
    if (!k)
        return NULL;
    asbp_err_clear(&err);
    if (asbp_random_bytes(k, 32, &err) != ASBP_OK) {
        asbp_secret_free(k);
        return NULL;
    }
    if (!__atomic_compare_exchange_n(&fp_key, &expected, k, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        asbp_secret_free(k);   /* another thread drew first: use its key */
        return expected;
    }
    return k;   /* kept for the life of the process */
}

int asbp_fp_init(asbp_fp *fp)
{
    const unsigned char *k = process_key();
    if (!k)
        return -1;
    asbp_sip_init(&fp->a, k);
    asbp_sip_init(&fp->b, k + 16);
    return 0;
}

void asbp_fp_update(asbp_fp *fp, const void *data, size_t n)
{
    asbp_sip_update(&fp->a, data, n);
    asbp_sip_update(&fp->b, data, n);
}

void asbp_fp_puts(asbp_fp *fp, const char *s)
{
    asbp_fp_update(fp, s, strlen(s));
}

void asbp_fp_hex(asbp_fp *fp, char out[ASBP_FP_HEX + 1])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t h[2];
    int i, j, o = 0;
    h[0] = asbp_sip_final(&fp->a);
    h[1] = asbp_sip_final(&fp->b);
    for (j = 0; j < 2; j++)
        for (i = 60; i >= 0; i -= 4)
            out[o++] = hex[(h[j] >> i) & 15];
    out[o] = '\0';
    asbp_wipe(h, sizeof h);
}
