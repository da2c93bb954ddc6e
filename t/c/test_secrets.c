/* Unit tests: copies of the password in memory (asbp_secret, the keys of
 * sources, clusters and routes).  SipHash-2-4 against its reference
 * vectors; fingerprints tell inputs apart; the source keeps its one copy
 * of the password on pages marked "dd" (not dumped) in /proc/self/smaps;
 * no key holds the password; and once the context is freed, no copy is
 * left anywhere in the process's heap or anonymous memory.  With a server
 * (t/19-c-secrets.t passes its address and password in ASBP_TEST_PG_*)
 * a connection is made and pooled first, so pool and route keys exist;
 * without one the connection is refused (the route is still built). */
#include "tap.h"
#include "asbp_secret.h"
#include "asbp_source.h"
#include "asbp_source_int.h"

#include <stdint.h>
#include <stdio.h>

/* The passwords: distinctive and long, so that a freed block still holds
 * their end (malloc writes its links over the first 16 to 32 bytes of a
 * free block): the scan looks for their last TAIL characters. */
#define OWN_PASSWORD "asbp-Secret-Qz8Wx3-Pk4mNv7-Rt2-Jd5Yf8-Lc0"
#define DSN_PASSWORD "asbp-InDsn-Hy6Lc1-Bw9eTs4-Gm5-Vb3Xk2-Ua7"
#define TAIL 12

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

/* ---- libpq's own copy ------------------------------------------------- */

/* libpq (15 here) parses the parameters of PQconnectStartParams into an
 * array of copies and frees it with PQconninfoFree without wiping the
 * password: a copy this module cannot reach (an upstream limitation).
 * The test takes that function's place (libpq calls it through its PLT)
 * and wipes every value first, so that the scan sees only the copies this
 * module is responsible for.  It frees as libpq's does. */
static int libpq_wipes;

void PQconninfoFree(PQconninfoOption *opts)
{
    PQconninfoOption *o;
    if (!opts)
        return;
    for (o = opts; o->keyword; o++) {
        if (o->val) {
            asbp_wipe(o->val, strlen(o->val));
            libpq_wipes++;
        }
        free(o->val);
    }
    free(opts);
}

/* ---- scanning our own memory ------------------------------------------ */

/* 1 under valgrind or AddressSanitizer (seen in our own mappings): the
 * heap is theirs, not ours to scan (ASan's anonymous mappings include its
 * shadow memory, which must not be read). */
static int under_valgrind(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int vg = 0;
    if (!f)
        return 0;
    while (!vg && fgets(line, sizeof line, f))
        vg = strstr(line, "vgpreload") != NULL || strstr(line, "libasan") != NULL;
    fclose(f);
    return vg;
}

/* Occurrences of the password's end in the heap and in every anonymous read-write
 * mapping (malloc's other arenas and large blocks, our secret pages).
 * The stack (where the environment lives) and the files mapped are not
 * searched.  -1: no /proc/self/maps. */
static int count_in_memory(const char *password)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    size_t nl = strlen(password) < TAIL ? strlen(password) : TAIL;
    const char *needle = password + strlen(password) - nl;
    int hits = 0;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char perms[8], path[256] = "";
        const char *p, *end;
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %255s", &lo, &hi, perms, path) < 3)
            continue;
        if (perms[0] != 'r' || perms[1] != 'w')
            continue;
        if (path[0] && strcmp(path, "[heap]") != 0)
            continue;
        p = (const char *)(uintptr_t)lo;
        end = (const char *)(uintptr_t)hi;
        while (p + nl <= end && (p = memmem(p, (size_t)(end - p), needle, nl)) != NULL) {
            hits++;
            p++;
        }
    }
    fclose(f);
    return hits;
}

/* 1 when the mapping holding addr is marked "dd" (not dumped), 0 when
 * not, -1 when /proc/self/smaps cannot tell. */
static int marked_dontdump(const void *addr)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    uintptr_t a = (uintptr_t)addr;
    int in = 0, res = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {   /* a mapping's first line */
            in = a >= lo && a < hi;
            continue;
        }
        if (in && strncmp(line, "VmFlags:", 8) == 0) {
            res = strstr(line, " dd") != NULL;
            break;
        }
    }
    fclose(f);
    return res;
}

/* ---- SipHash and fingerprints ----------------------------------------- */

static uint64_t sip(const unsigned char *key, const unsigned char *m, size_t n)
{
    asbp_sip s;
    asbp_sip_init(&s, key);
    asbp_sip_update(&s, m, n / 2);           /* in two pieces: the tail */
    asbp_sip_update(&s, m + n / 2, n - n / 2);
    return asbp_sip_final(&s);
}

static void test_siphash(void)
{
    unsigned char key[16], m[64];
    int i;
    for (i = 0; i < 16; i++)
        key[i] = (unsigned char)i;
    for (i = 0; i < 64; i++)
        m[i] = (unsigned char)i;
    /* the reference vectors: key 00..0f, message 00..(n-1) */
    ok(sip(key, m, 0) == UINT64_C(0x726fdb47dd0e0e31), "siphash-2-4: empty message");
    ok(sip(key, m, 1) == UINT64_C(0x74f839c593dc67fd), "siphash-2-4: 1 byte");
    ok(sip(key, m, 15) == UINT64_C(0xa129ca6149be45e5), "siphash-2-4: 15 bytes");
}

static void fp_of(const char *s, char out[ASBP_FP_HEX + 1])
{
    asbp_fp f;
    if (asbp_fp_init(&f) < 0) {
        strcpy(out, "(no key)");
        return;
    }
    asbp_fp_puts(&f, s);
    asbp_fp_hex(&f, out);
}

static void test_fingerprint(void)
{
    char a[ASBP_FP_HEX + 1], b[ASBP_FP_HEX + 1], c[ASBP_FP_HEX + 1];
    fp_of("pw-one", a);
    fp_of("pw-one", b);
    fp_of("pw-onf", c);
    is_int(strlen(a), ASBP_FP_HEX, "a fingerprint has %d hex digits", ASBP_FP_HEX);
    is_str(a, b, "equal inputs, equal fingerprints");
    ok(strcmp(a, c) != 0, "different inputs, different fingerprints");
}

/* ---- the source's copies ---------------------------------------------- */

static void options_for(asbp_options *o, const char *ds, const char *user, const char *pw)
{
    asbp_options_init(o);
    o->datasource = ds;
    o->user = user;
    o->password = pw;
    o->connect_timeout_ms = 3000;
}

/* While the source lives: its copy on a page kept out of core dumps, and
 * no key holding the password.  Then one connection, pooled. */
static void use_source(asbp_ctx *ctx, const char *ds, const char *user, const char *pw,
                       int have_server)
{
    asbp_options o, o2;
    asbp_source *s = NULL, *s2 = NULL, *s3 = NULL;
    asbp_conn *c = NULL;
    asbp_err e;
    asbp_err_clear(&e);
    options_for(&o, ds, user, pw);
    if (!ok(asbp_source_get(ctx, &o, &s, &e) == ASBP_OK, "source created"))
        tap_diag("%s", e.msg);
    if (!s)
        return;
    ok(asbp_source_get(ctx, &o, &s2, &e) == ASBP_OK && s2 == s, "same options: same source");
    options_for(&o2, ds, user, "another-password");
    ok(asbp_source_get(ctx, &o2, &s3, &e) == ASBP_OK && s3 && s3 != s,
       "another password: another source");
    ok(s->password && strcmp(s->password, pw) == 0, "the source keeps the password");
    unlike_str(asbp_source_key(s), pw, "the source key does not hold it");
    unlike_str(asbp_cluster_key(asbp_source_cluster(s)), pw, "nor the cluster key");
#if defined(__linux__)
    if (asbp_secret_nodump())
        is_int(marked_dontdump(s->password), 1, "its page is marked dd (not in core dumps)");
#endif
    if (asbp_source_acquire(s, 0, &c, &e) == ASBP_OK) {
        ok(have_server, "connected");
        unlike_str(asbp_conn_key(c), pw, "the pool key does not hold the password");
        asbp_source_release(s, c);
        is_int(asbp_pool_idle_count(asbp_ctx_pool(ctx)), 1, "the connection is pooled");
    } else {
        ok(!have_server, "no server: the connection is refused (%s)", e.msg);
    }
    if (s->route.valid)
        unlike_str(s->route.key.data, pw, "the route cache key does not hold it");
}

/* A password written in the DataSource: not in the source key nor in the
 * cluster key (the cluster is shared by the DataSource's option sets). */
static void dsn_password(asbp_ctx *ctx)
{
    asbp_options o;
    asbp_source *s = NULL;
    asbp_err e;
    asbp_err_clear(&e);
    options_for(&o, "dbi:Pg:host=127.0.0.1;port=1;dbname=none;password=" DSN_PASSWORD,
                "nobody", NULL);
    if (!ok(asbp_source_get(ctx, &o, &s, &e) == ASBP_OK, "source with a password in its DataSource"))
        tap_diag("%s", e.msg);
    if (!s)
        return;
    unlike_str(asbp_source_key(s), DSN_PASSWORD, "its key does not hold the password");
    unlike_str(asbp_cluster_key(asbp_source_cluster(s)), DSN_PASSWORD, "nor its cluster key");
}

int main(void)
{
    const char *host = env_or("ASBP_TEST_PG_HOST", NULL);
    const char *pw = host ? env_or("ASBP_TEST_PG_PASSWORD", OWN_PASSWORD) : OWN_PASSWORD;
    char ds[512];
    asbp_ctx *ctx;
    int before;

    test_siphash();
    test_fingerprint();
    if (host)
        snprintf(ds, sizeof ds, "dbi:Pg:host=%s;port=%s;dbname=%s", host,
                 env_or("ASBP_TEST_PG_PORT", "5432"), env_or("ASBP_TEST_PG_DBNAME", "postgres"));
    else
        snprintf(ds, sizeof ds, "dbi:Pg:host=127.0.0.1;port=1;dbname=none");
    if (!host)
        tap_diag("no server (ASBP_TEST_PG_HOST unset): the connection will be refused");
    before = under_valgrind() ? -1 : count_in_memory(pw);
    if (before < 0) {
        tap_diag("no /proc/self/maps, or under valgrind or ASan: the memory scan is skipped");
    } else {
        is_int(before, 0, "no copy of the password before the test");
    }
    ctx = asbp_ctx_new();
    use_source(ctx, ds, env_or("ASBP_TEST_PG_USER", "nobody"), pw, host != NULL);
    dsn_password(ctx);
    if (before >= 0) {
        ok(count_in_memory(pw) > 0, "while the source lives, the scan finds its copy");
        ok(count_in_memory(DSN_PASSWORD) > 0, "and the DataSource's");
    }
    asbp_ctx_free(ctx);
    ok(libpq_wipes > 0, "libpq's parsed parameters were wiped (through the test's PQconninfoFree)");
    if (before >= 0) {
        is_int(count_in_memory(pw), 0, "no copy of the password left once all is freed");
        is_int(count_in_memory(DSN_PASSWORD), 0, "nor of the DataSource's password");
    }
    return tap_done();
}
