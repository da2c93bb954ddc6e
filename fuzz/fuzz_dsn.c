/*
 * Fuzz target: the option strings that may carry secrets or reach SQL.
 * The input (up to its first NUL byte) is given, as one C string, to
 *   asbp_dsn_parse + accessors   (a DataSource)
 *   asbp_dsn_mask                (any text; several buffer sizes)
 *   asbp_table_quote             (a TableName; from asbp_source.h)
 *   asbp_url_mask                (a PatroniUrl entry; several sizes)
 *
 * Properties checked besides memory safety (ASan, UBSan):
 * - dsn: success gives keys in lower case, non-empty, made of [a-z0-9_],
 *   unique, never "db" or "database"; asbp_dsn_get agrees with the
 *   key/value lists; the display (what error messages show) parses back
 *   to the same keys and values, except that the value of a key that may
 *   hold a secret (asbp_dsn_key_is_secret: any password key) is "***":
 *   a display never shows a password, nor any part of one, and never
 *   loses or invents a parameter;
 * - an error leaves *out NULL and a message (built from the masked text,
 *   so the mask properties below cover it);
 * - masks: the output is NUL-terminated within the buffer (a zero-size
 *   buffer is left alone), and a truncated output is a prefix of the full
 *   one (truncation never reveals what the full mask hides);
 * - table: success gives one or two double-quoted identifiers, with every
 *   inner double quote doubled: nothing the caller wrote can end a quoted
 *   identifier early (no SQL injection through TableName);
 * - url: a URL of the plain form scheme://user:PASSWORD@... (one '@')
 *   never shows PASSWORD after masking.
 */
#include "fuzz_common.h"
#include "asbp_dsn.h"
#include "asbp_discovery.h"
#include "asbp_source.h"

#include <ctype.h>

/* Buffer sizes tried for the mask functions. */
static const size_t fuzz_sizes[] = { 1, 2, 5, 13, 64 };

static void check_dsn(const char *s)
{
    asbp_dsn *d = (asbp_dsn *)&d, *d2 = NULL;
    asbp_err err, err2;
    size_t i, j, n;
    const char *pw, *shown;

    asbp_err_clear(&err);
    if (asbp_dsn_parse(s, &d, &err) != ASBP_OK) {
        FUZZ_CHECK(d == NULL);
        FUZZ_CHECK(err.code == ASBP_E_DSN || err.code == ASBP_E_NOMEM);
        FUZZ_CHECK(memchr(err.msg, '\0', sizeof err.msg) != NULL);
        FUZZ_CHECK(err.msg[0] != '\0');
        /* Accessors accept NULL. */
        FUZZ_CHECK(asbp_dsn_count(NULL) == 0);
        FUZZ_CHECK(asbp_dsn_get(NULL, "host") == NULL);
        FUZZ_CHECK(strcmp(asbp_dsn_display(NULL), "") == 0);
        asbp_dsn_free(NULL);
        return;
    }
    FUZZ_CHECK(d != NULL);
    n = asbp_dsn_count(d);
    for (i = 0; i < n; i++) {
        const char *k = asbp_dsn_key(d, i), *v = asbp_dsn_value(d, i);
        FUZZ_CHECK(k && v && *k);
        for (j = 0; k[j]; j++)
            FUZZ_CHECK(islower((unsigned char)k[j]) || isdigit((unsigned char)k[j])
                       || k[j] == '_');
        FUZZ_CHECK(strcmp(k, "db") && strcmp(k, "database"));
        for (j = 0; j < i; j++)
            FUZZ_CHECK(strcmp(k, asbp_dsn_key(d, j)) != 0);
        FUZZ_CHECK(asbp_dsn_get(d, k) == v);
    }
    FUZZ_CHECK(asbp_dsn_key(d, n) == NULL && asbp_dsn_value(d, n) == NULL);

    /* The display: what messages show.  Stored truncated to 511 bytes, so
     * the round trip is checked only when it is whole. */
    shown = asbp_dsn_display(d);
    pw = asbp_dsn_get(d, "password");
    if (strlen(shown) < 500) {
        asbp_err_clear(&err2);
        FUZZ_CHECK(asbp_dsn_parse(shown, &d2, &err2) == ASBP_OK);
        FUZZ_CHECK(asbp_dsn_count(d2) == n);
        for (i = 0; i < n; i++) {
            const char *k = asbp_dsn_key(d, i);
            FUZZ_CHECK(strcmp(asbp_dsn_key(d2, i), k) == 0);
            if (asbp_dsn_key_is_secret(k))
                FUZZ_CHECK(strcmp(asbp_dsn_value(d2, i), "***") == 0);
            else
                FUZZ_CHECK(strcmp(asbp_dsn_value(d2, i), asbp_dsn_value(d, i)) == 0);
        }
        asbp_dsn_free(d2);
    } else if (pw && strlen(pw) >= 4 && !strchr(pw, '*') && fuzz_count(s, pw) == 1) {
        /* A long display is cut; the cut must not reveal the password. */
        FUZZ_CHECK(strstr(shown, pw) == NULL);
    }
    asbp_dsn_free(d);
}

static void check_mask(const char *s)
{
    size_t len = strlen(s), full_n = 2 * len + 16, i;
    char *full = malloc(full_n), small[64];

    if (!full)
        abort();
    /* Masking never makes a text more than twice longer: "password=x"
     * (10 bytes at least) becomes at most "password=*** " (13). */
    asbp_dsn_mask(s, full, full_n);
    FUZZ_CHECK(strlen(full) < full_n - 1);
    for (i = 0; i < sizeof fuzz_sizes / sizeof fuzz_sizes[0]; i++) {
        size_t n = fuzz_sizes[i];
        memset(small, 'Z', sizeof small);
        FUZZ_CHECK(asbp_dsn_mask(s, small, n) == small);
        FUZZ_CHECK(memchr(small, '\0', n) != NULL);
        FUZZ_CHECK(strncmp(small, full, strlen(small)) == 0);
    }
    small[0] = 'Z';
    asbp_dsn_mask(s, small, 0);
    FUZZ_CHECK(small[0] == 'Z');
    free(full);
}

/* One part of a quoted table name: "...", inner quotes doubled. */
static const char *quoted_part(const char *p)
{
    if (*p++ != '"')
        return NULL;
    for (;;) {
        if (!*p)
            return NULL;
        if (*p == '"') {
            if (p[1] == '"') {
                p += 2;
                continue;
            }
            return p + 1;
        }
        p++;
    }
}

static void check_table(const char *s)
{
    char out[300], tiny[8];
    asbp_err err;
    const char *p;

    asbp_err_clear(&err);
    if (asbp_table_quote(s, out, sizeof out, &err) != ASBP_OK) {
        FUZZ_CHECK(err.code == ASBP_E_USAGE);
        FUZZ_CHECK(err.msg[0] != '\0');
    } else {
        FUZZ_CHECK(memchr(out, '\0', sizeof out) != NULL);
        p = quoted_part(out);
        FUZZ_CHECK(p != NULL);
        if (*p == '.') {
            p = quoted_part(p + 1);
            FUZZ_CHECK(p != NULL);
        }
        FUZZ_CHECK(*p == '\0');
    }
    /* A buffer too small is an error, never an overflow. */
    memset(tiny, 'Z', sizeof tiny);
    if (asbp_table_quote(s, tiny, 5, &err) == ASBP_OK)
        FUZZ_CHECK(memchr(tiny, '\0', 5) != NULL);
    FUZZ_CHECK(tiny[5] == 'Z' && tiny[6] == 'Z' && tiny[7] == 'Z');
}

/* scheme://user:PASSWORD@rest, with exactly one '@' in the whole URL and
 * no '/', '?', '#' or ':' in user, no '/', '?', '#', '*' in PASSWORD:
 * returns PASSWORD's span. */
static int plain_password(const char *s, size_t *off, size_t *len)
{
    const char *p = s, *u, *c;
    if (!isalpha((unsigned char)*p))
        return 0;
    while (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.')
        p++;
    if (strncmp(p, "://", 3) != 0)
        return 0;
    u = p + 3;
    c = u + strcspn(u, "/?#@:");
    if (*c != ':')
        return 0;
    p = c + 1;
    p += strcspn(p, "/?#@*");
    if (*p != '@' || strchr(p + 1, '@'))
        return 0;
    *off = (size_t)(c + 1 - s);
    *len = (size_t)(p - (c + 1));
    return 1;
}

static void check_url(const char *s)
{
    size_t len = strlen(s), off, plen, i;
    char *full = malloc(len + 8), small[64];

    if (!full)
        abort();
    FUZZ_CHECK(asbp_url_mask(s, full, len + 8) == full);
    FUZZ_CHECK(strlen(full) <= len + 3);
    FUZZ_CHECK(!fuzz_has_controls(full));
    if (plain_password(s, &off, &plen) && plen > 0) {
        char *pw = malloc(plen + 1);
        if (!pw)
            abort();
        memcpy(pw, s + off, plen);
        pw[plen] = '\0';
        if (fuzz_count(s, pw) == 1)
            FUZZ_CHECK(strstr(full, pw) == NULL);
        free(pw);
    }
    for (i = 0; i < sizeof fuzz_sizes / sizeof fuzz_sizes[0]; i++) {
        size_t n = fuzz_sizes[i];
        memset(small, 'Z', sizeof small);
        asbp_url_mask(s, small, n);
        FUZZ_CHECK(memchr(small, '\0', n) != NULL);
        FUZZ_CHECK(strncmp(small, full, strlen(small)) == 0);
    }
    small[0] = 'Z';
    FUZZ_CHECK(asbp_url_mask(s, small, 0) == small && small[0] == 'Z');
    free(full);
}

static int fuzz_dsn_one(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    check_dsn(s);
    check_mask(s);
    check_table(s);
    check_url(s);
    free(s);
    return 0;
}

#ifndef FUZZ_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_dsn_one(data, size);
}
#endif
