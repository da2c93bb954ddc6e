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

/*
 * One key=value pair at p, as written: the key (key characters), optional
 * blanks, '=', optional blanks, and the value (single-quoted, with \' and
 * \\ escapes, or up to the next separator).  Returns 1 and fills *ps, or
 * 0 (no key or no '=') or -1 (unterminated quoted value).  The parser and
 * the mask both read pairs through this function, so the mask hides
 * exactly the values the parser takes for passwords.
 */
typedef struct pair_span {
    const char *key;     /* key as written */
    size_t klen;
    const char *val;     /* value as written, quotes included */
    size_t vlen;
    int quoted;
    const char *end;     /* just after the value */
} pair_span;

static int scan_pair(const char *p, pair_span *ps)
{
    ps->key = p;
    while (is_keychar(*p))
        p++;
    ps->klen = (size_t)(p - ps->key);
    while (*p == ' ' || *p == '\t')
        p++;
    if (ps->klen == 0 || *p != '=')
        return 0;
    p++;
    while (*p == ' ' || *p == '\t')
        p++;
    ps->val = p;
    ps->quoted = *p == '\'';
    if (ps->quoted) {
        p++;
        while (*p && *p != '\'') {
            if (*p == '\\' && p[1])
                p++;
            p++;
        }
        if (*p != '\'')
            return -1;
        p++;
    } else {
        while (*p && !is_sep(*p))
            p++;
    }
    ps->vlen = (size_t)(p - ps->val);
    ps->end = p;
    return 1;
}

/*
 * The keys whose values are shown in messages: libpq's connection
 * parameters that never hold a secret, and DBD::Pg's aliases of dbname.
 * Any other key (a "password" in any spelling, "sslpassword", a key from
 * a newer libpq, a misspelt key) has its value masked: when in doubt,
 * mask.
 */
static const char *const shown_keys[] = {
    "application_name", "channel_binding", "client_encoding", "connect_timeout",
    "database", "db", "dbname", "fallback_application_name", "gssencmode",
    "gsslib", "host", "hostaddr", "keepalives", "keepalives_count",
    "keepalives_idle", "keepalives_interval", "krbsrvname", "load_balance_hosts",
    "options", "passfile", "port", "replication", "require_auth", "requirepeer",
    "service", "ssl_max_protocol_version", "ssl_min_protocol_version", "sslcert",
    "sslcertmode", "sslcompression", "sslcrl", "sslcrldir", "sslkey", "sslmode",
    "sslnegotiation", "sslrootcert", "sslsni", "target_session_attrs",
    "tcp_user_timeout", "user",
};

static int is_secret_key(const char *key, size_t klen)
{
    size_t i;
    for (i = 0; i + 8 <= klen; i++)
        if (strncasecmp(key + i, "password", 8) == 0)
            return 1;
    for (i = 0; i < sizeof shown_keys / sizeof shown_keys[0]; i++)
        if (strlen(shown_keys[i]) == klen && strncasecmp(shown_keys[i], key, klen) == 0)
            return 0;
    return 1;
}

int asbp_dsn_key_is_secret(const char *key)
{
    return is_secret_key(key ? key : "", key ? strlen(key) : 0);
}

/* A masked pair: "password=***" for the password (in any case, as the
 * parser folds it), else the key as written and "=***". */
static void put_masked(asbp_buf *out, const char *key, size_t klen)
{
    if (klen == 8 && strncasecmp(key, "password", 8) == 0)
        asbp_buf_puts(out, "password");
    else
        asbp_buf_append(out, key, klen);
    asbp_buf_puts(out, "=***");
}

/*
 * The end of the words that continue an unquoted secret value ending at
 * p: "password=my secret" (a space where DBD::Pg wanted a quoted value)
 * leaves "secret" as a word that is not a pair, and a syntax error that
 * would show it.  Those words, up to a ';' or a pair, are masked with the
 * value; returns p when there are none.
 */
static const char *secret_tail(const char *p)
{
    for (;;) {
        const char *w = p;
        pair_span ps;
        while (*w != ';' && is_sep(*w))
            w++;
        if (w == p || !*w || *w == ';' || scan_pair(w, &ps) != 0)
            return p;   /* not a word (a ';', the end, a pair) */
        while (*w && !is_sep(*w))
            w++;
        p = w;
    }
}

/* A masked pair (ps, a secret): the mask, and the end of what it hides
 * (the words that continue an unquoted value too). */
static const char *put_masked_pair(asbp_buf *out, const pair_span *ps)
{
    const char *end = ps->quoted ? ps->end : secret_tail(ps->end);
    put_masked(out, ps->key, ps->klen);
    if (end != ps->end)
        asbp_buf_puts(out, " ***");
    return end;
}

/*
 * Text that is not a valid DataSource (from start on): hides the value
 * after every "key=" that begins where a key could (the start, after a
 * separator, a ':' or a closing quote) unless the key is one whose values
 * are shown; an unterminated quoted value is hidden to the end.  When in
 * doubt, masks too much.
 */
static void mask_loose(const char *start, asbp_buf *out)
{
    const char *p = start;
    while (*p) {
        if ((p == start || is_sep(p[-1]) || p[-1] == ':' || p[-1] == '\'')
            && is_keychar(*p)) {
            pair_span ps;
            int r = scan_pair(p, &ps);
            if (r < 0 && is_secret_key(ps.key, ps.klen)) {
                put_masked(out, ps.key, ps.klen);
                return;   /* unterminated quote: the rest is the value */
            }
            if (r > 0 && is_secret_key(ps.key, ps.klen)) {
                p = put_masked_pair(out, &ps);
                continue;
            }
            if (r == 0) {
                /* Not a pair: the word as is (its end may start a key). */
                asbp_buf_append(out, p, ps.klen);
                p += ps.klen;
                continue;
            }
        }
        asbp_buf_append(out, p, 1);
        p++;
    }
}

char *asbp_dsn_mask(const char *src, char *buf, size_t n)
{
    asbp_buf out = ASBP_BUF_INIT;
    const char *p = src ? src : "";
    const char *rest;
    if (!n)
        return buf;
    /* Pairs read as the parser reads them, as long as they parse; the
     * rest (a syntax error) is masked loosely. */
    rest = skip_prefix(p);
    if (rest) {
        asbp_buf_append(&out, p, (size_t)(rest - p));
        p = rest;
        for (;;) {
            pair_span ps;
            const char *s0 = p;
            while (is_sep(*p))
                p++;
            asbp_buf_append(&out, s0, (size_t)(p - s0));
            if (!*p || scan_pair(p, &ps) <= 0)
                break;
            if (is_secret_key(ps.key, ps.klen)) {
                p = put_masked_pair(&out, &ps);
                /* 'quoted'key=v: keep the next key apart from the mask. */
                if (*p && !is_sep(*p))
                    asbp_buf_puts(&out, " ");
            } else {
                asbp_buf_append(&out, ps.key, (size_t)(ps.end - ps.key));
                p = ps.end;
            }
        }
    }
    mask_loose(p, &out);
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
            asbp_free_secret(d->values[i]);   /* a value may be a password */
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

/* The value of a pair, unquoted (\' and \\ escapes resolved), into val. */
static int pair_value(const pair_span *ps, asbp_buf *val)
{
    const char *v;
    if (!ps->quoted)
        return asbp_buf_append(val, ps->val, ps->vlen);
    for (v = ps->val + 1; v < ps->end - 1; v++) {
        if (*v == '\\' && v + 1 < ps->end - 1)
            v++;
        if (asbp_buf_append(val, v, 1) < 0)
            return -1;
    }
    return 0;
}

/* The key of a pair folded to lower case, DBD::Pg's aliases of dbname
 * resolved.  Returns malloc'ed text (the caller frees it), NULL: no memory. */
static char *pair_key(const pair_span *ps)
{
    size_t i;
    char *key = malloc(ps->klen + 1);
    if (!key)
        return NULL;
    for (i = 0; i < ps->klen; i++)
        key[i] = (char)tolower((unsigned char)ps->key[i]);
    key[ps->klen] = '\0';
    if (!strcmp(key, "db") || !strcmp(key, "database")) {
        free(key);
        key = asbp_strdup("dbname");
    }
    return key;
}

/* Stores one scanned pair in d.  0, or -1: no memory (d unchanged). */
static int add_pair(asbp_dsn *d, const pair_span *ps)
{
    asbp_buf val = ASBP_BUF_INIT;
    char *key, *value;
    if (pair_value(ps, &val) < 0) {
        asbp_buf_free(&val);
        return -1;
    }
    key = pair_key(ps);
    if (!key) {
        asbp_buf_free(&val);
        return -1;
    }
    value = asbp_buf_steal(&val);   /* owned by d once dsn_put succeeds */
    if (!value || dsn_put(d, key, value) < 0) {
        free(key);
        free(value);
        return -1;
    }
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
    d = calloc(1, sizeof *d);   /* freed by asbp_dsn_free (the caller's) */
    if (!d)
        return asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT,
                            "out of memory");
    d->display = asbp_strdup(shown);
    if (!d->display)
        goto nomem;

    for (;;) {
        pair_span ps;
        int r;
        while (is_sep(*p))
            p++;
        if (!*p)
            break;
        r = scan_pair(p, &ps);
        if (r <= 0) {
            asbp_dsn_free(d);
            if (r == 0)
                return asbp_err_set(err, ASBP_E_DSN, ASBP_EC_REPORT,
                                    "Invalid DataSource '%s': expected "
                                    "key=value at character %u", shown,
                                    (unsigned)(p - ds) + 1);
            return asbp_err_set(err, ASBP_E_DSN, ASBP_EC_REPORT,
                                "Invalid DataSource '%s': unterminated "
                                "quoted value", shown);
        }
        if (add_pair(d, &ps) < 0)
            goto nomem;
        p = ps.end;
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
        asbp_free_secret(d->values[i]);   /* a value may be a password */
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
