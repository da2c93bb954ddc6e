/*
 * asbp_secret: memory for secrets, and fingerprints that stand for them.
 *
 * The core keeps one copy of each password it is given (the source's),
 * allocated here: on its own pages, excluded from core dumps where the
 * platform allows (MADV_DONTDUMP on Linux, MADV_NOCORE on the BSDs), and
 * wiped when freed.  Everything that only needs to tell option sets apart
 * (the source key, the pool key of a route, the cluster key) carries a
 * fingerprint instead of the secret: a keyed hash (two SipHash-2-4 with
 * independent 128-bit keys, 128 bits in all) under a key drawn at random
 * once per process and kept in such a page.  Equal inputs give equal
 * fingerprints; different inputs collide with probability about 2^-128,
 * and without the key (not in a core dump) a fingerprint cannot be
 * checked against guessed passwords.
 *
 * The process key is the one piece of global state: fingerprints must
 * compare equal across every context of the process (and its forks).  It
 * is set once, atomically (the first caller's draw wins).
 */
#ifndef ASBP_SECRET_H
#define ASBP_SECRET_H

#include <stddef.h>
#include <stdint.h>

/* 1 when secrets are kept out of core dumps on this platform. */
int asbp_secret_nodump(void);

/* n zeroed bytes of secret memory (NULL: no memory); free with
 * asbp_secret_free. */
void *asbp_secret_alloc(size_t n);
/* A copy of s in secret memory; NULL when s is NULL or no memory. */
char *asbp_secret_dup(const char *s);
/* Wipes the whole block and releases it; NULL is fine. */
void asbp_secret_free(void *p);

/* SipHash-2-4 state, fed in pieces. */
typedef struct asbp_sip {
    uint64_t v0, v1, v2, v3;
    uint64_t tail;       /* the bytes not yet compressed, little-endian */
    size_t len;          /* bytes fed so far */
} asbp_sip;

void asbp_sip_init(asbp_sip *s, const unsigned char key[16]);
void asbp_sip_update(asbp_sip *s, const void *data, size_t n);
uint64_t asbp_sip_final(asbp_sip *s);   /* wipes s */

/* A fingerprint in the making: asbp_fp_init, any number of updates, then
 * asbp_fp_hex (which wipes the state). */
typedef struct asbp_fp {
    asbp_sip a, b;
} asbp_fp;

#define ASBP_FP_HEX 32   /* characters of a fingerprint */

/* 0, or -1 when no random key can be drawn (no secure random source or
 * no memory). */
int asbp_fp_init(asbp_fp *fp);
void asbp_fp_update(asbp_fp *fp, const void *data, size_t n);
void asbp_fp_puts(asbp_fp *fp, const char *s);
/* Writes ASBP_FP_HEX hex digits and a NUL into out. */
void asbp_fp_hex(asbp_fp *fp, char out[ASBP_FP_HEX + 1]);

#endif
