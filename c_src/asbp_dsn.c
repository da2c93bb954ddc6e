#include "asbp_dsn.h"
#include "asbp_buf.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct asbp_dsn {
    size_t n, cap;
    char **keys;     /* owned */
    char **values;   /* owned */
    char *display;   /* owned: masked DataSource */
};

static int is_sep(char c)
{
    return c == ';' || c == ' ' || c == '\t' || c == '\n' || c == '\r'
        || c == '\f' || c == '\v';
}

static int is_keychar(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

/*
 * Skips "dbi:Pg:" (the "dbi" prefix in any case, optional driver
 * attributes in parentheses as DBI allows).  Returns the rest, or NULL.
 */
static const char *skip_prefix(const char *s)
{
    const char *p;
    if (strncasecmp(s, "dbi:", 4) != 0)
        return NULL;
    p = s + 4;
    if (strncmp(p, "Pg", 2) != 0)
        return NULL;
    p += 2;
    if (*p == '(') {
        p = strchr(p, ')');
        if (!p)
            return NULL;
        p++;
    }
    if (*p != ':')
        return NULL;
    return p + 1;
}

char *asbp_dsn_mask(const char *src, char *buf, size_t n)
{
    asbp_buf out = ASBP_BUF_INIT;
    const char *p = src ? src : "";
    if (!n)
        return buf;
    while (*p) {
        /* A key "password" followed by optional spaces and '='. */
        if ((p == src || is_sep(p[-1]) || p[-1] == ':')
            && strncasecmp(p, "password", 8) == 0) {
            const char *q = p + 8;
            while (*q == ' ' || *q == '\t')
                q++;
            if (*q == '=') {
                q++;
                while (*q == ' ' || *q == '\t')
                    q++;
                if (*q == '\'') {
                    q++;
                    while (*q && *q != '\'') {
                        if (*q == '\\' && q[1])
                            q++;
                        q++;
                    }
                    if (*q == '\'')
                        q++;
                } else {
                    while (*q && !is_sep(*q))
                        q++;
                }
                asbp_buf_puts(&out, "password=***");
                p = q;
                continue;
            }
        }
        asbp_buf_append(&out, p, 1);
        p++;
    }
    if (out.data) {
        size_t len = out.len < n - 1 ? out.len : n - 1;
        memcpy(buf, out.data, len);
        buf[len] = '\0';
    } else {
        buf[0] = '\0';
    }
    asbp_buf_free(&out);
    return buf;
}

static int dsn_put(asbp_dsn *d, char *key, char *value)
{
    size_t i;
    for (i = 0; i < d->n; i++) {
        if (strcmp(d->keys[i], key) == 0) {
            free(d->values[i]);
            d->values[i] = value;
            free(key);
            return 0;
        }
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        char **k = realloc(d->keys, cap * sizeof *k);
        char **v;
        if (!k)
            return -1;
        d->keys = k;
        v = realloc(d->values, cap * sizeof *v);
        if (!v)
            return -1;
        d->values = v;
        d->cap = cap;
    }
    d->keys[d->n] = key;
    d->values[d->n] = value;
    d->n++;
    return 0;
}

asbp_code asbp_dsn_parse(const char *ds, asbp_dsn **out, asbp_err *err)
{
    char shown[512];
    const char *p;
    asbp_dsn *d;

    *out = NULL;
    if (!ds || !*ds)
        return asbp_err_set(err, ASBP_E_DSN, ASBP_EC_REPORT,
                            "No DataSource given (expected dbi:Pg:...)");
    asbp_dsn_mask(ds, shown, sizeof shown);
    p = skip_prefix(ds);
    if (!p)
        return asbp_err_set(err, ASBP_E_DSN, ASBP_EC_REPORT,
                            "Invalid DataSource '%s': it must start with "
                            "'dbi:Pg:'", shown);
    d = calloc(1, sizeof *d);
    if (!d)
        return asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT,
                            "out of memory");
    d->display = asbp_strdup(shown);
    if (!d->display)
        goto nomem;

    for (;;) {
        const char *ks;
        size_t klen, i;
        char *key;
        asbp_buf val = ASBP_BUF_INIT;

        while (is_sep(*p))
            p++;
        if (!*p)
            break;
        ks = p;
        while (is_keychar(*p))
            p++;
        klen = (size_t)(p - ks);
        while (*p == ' ' || *p == '\t')
            p++;
        if (klen == 0 || *p != '=') {
            asbp_dsn_free(d);
            return asbp_err_set(err, ASBP_E_DSN, ASBP_EC_REPORT,
                                "Invalid DataSource '%s': expected key=value "
                                "at character %u", shown,
                                (unsigned)(ks - ds) + 1);
        }
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\'') {
            p++;
            while (*p && *p != '\'') {
                if (*p == '\\' && p[1])
                    p++;
                if (asbp_buf_append(&val, p, 1) < 0)
                    goto nomem_val;
                p++;
            }
            if (*p != '\'') {
                asbp_buf_free(&val);
                asbp_dsn_free(d);
                return asbp_err_set(err, ASBP_E_DSN, ASBP_EC_REPORT,
                                    "Invalid DataSource '%s': unterminated "
                                    "quoted value", shown);
            }
            p++;
        } else {
            const char *vs = p;
            while (*p && !is_sep(*p))
                p++;
            if (asbp_buf_append(&val, vs, (size_t)(p - vs)) < 0)
                goto nomem_val;
        }
        key = malloc(klen + 1);
        if (!key)
            goto nomem_val;
        for (i = 0; i < klen; i++)
            key[i] = (char)tolower((unsigned char)ks[i]);
        key[klen] = '\0';
        if (!strcmp(key, "db") || !strcmp(key, "database")) {
            free(key);
            key = asbp_strdup("dbname");
            if (!key)
                goto nomem_val;
        }
        if (dsn_put(d, key, asbp_buf_steal(&val)) < 0) {
            free(key);
            goto nomem;
        }
        continue;
    nomem_val:
        asbp_buf_free(&val);
        goto nomem;
    }
    *out = d;
    return ASBP_OK;
nomem:
    asbp_dsn_free(d);
    return asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT, "out of memory");
}

void asbp_dsn_free(asbp_dsn *d)
{
    size_t i;
    if (!d)
        return;
    for (i = 0; i < d->n; i++) {
        free(d->keys[i]);
        free(d->values[i]);
    }
    free(d->keys);
    free(d->values);
    free(d->display);
    free(d);
}

size_t asbp_dsn_count(const asbp_dsn *d) { return d ? d->n : 0; }

const char *asbp_dsn_key(const asbp_dsn *d, size_t i)
{
    return d && i < d->n ? d->keys[i] : NULL;
}

const char *asbp_dsn_value(const asbp_dsn *d, size_t i)
{
    return d && i < d->n ? d->values[i] : NULL;
}

const char *asbp_dsn_get(const asbp_dsn *d, const char *key)
{
    size_t i;
    if (!d)
        return NULL;
    for (i = 0; i < d->n; i++)
        if (!strcmp(d->keys[i], key))
            return d->values[i];
    return NULL;
}

const char *asbp_dsn_display(const asbp_dsn *d)
{
    return d ? d->display : "";
}
