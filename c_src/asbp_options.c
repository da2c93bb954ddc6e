#include "asbp_options.h"
#include "asbp_allow.h"

#include <math.h>
#include <string.h>

typedef enum opt_kind {
    OPT_REFUSED,   /* an error whenever present */
    OPT_STRING,    /* const char *, borrowed */
    OPT_ALIAS,     /* const char *, used when the main name gave none */
    OPT_SECONDS,   /* int64_t milliseconds */
    OPT_TRUTH,     /* int: 0 or 1 */
    OPT_HOSTS,     /* const char *, borrowed, entries checked */
    OPT_PORT       /* int: 1 to 65535, 0: default */
} opt_kind;

typedef struct opt_def {
    const char *name;
    size_t len;
    opt_kind kind;
    size_t off;    /* of the field in asbp_options */
} opt_def;

#define DEF(name, kind, field) { name, sizeof name - 1, kind, offsetof(asbp_options, field) }

/* In the order they are checked: Handle first, so that its refusal is the
 * error reported whatever else is wrong. */
static const opt_def defs[] = {
    DEF("Handle", OPT_REFUSED, datasource),
    DEF("DataSource", OPT_STRING, datasource),
    DEF("UserName", OPT_STRING, user),
    DEF("Password", OPT_STRING, password),
    DEF("TableName", OPT_STRING, table),
    DEF("ConnectTimeout", OPT_SECONDS, connect_timeout_ms),
    DEF("FailoverTimeout", OPT_SECONDS, failover_timeout_ms),
    DEF("QueryTimeout", OPT_SECONDS, query_timeout_ms),
    DEF("PatroniUrl", OPT_STRING, patroni_urls),
    DEF("patroniUrl", OPT_ALIAS, patroni_urls),
    DEF("PatroniAllowedHosts", OPT_HOSTS, patroni_allowed_hosts),
    DEF("PatroniTimeout", OPT_SECONDS, patroni_timeout_ms),
    DEF("PatroniCacheTTL", OPT_SECONDS, patroni_cache_ttl_ms),
    DEF("PatroniCircuitBreakerDelay", OPT_SECONDS, patroni_breaker_ms),
    DEF("PatroniVerifySSL", OPT_TRUTH, patroni_verify_ssl),
    DEF("PatroniSSLCAFile", OPT_STRING, patroni_ca_file),
    DEF("PatroniSSLCAPath", OPT_STRING, patroni_ca_path),
    DEF("PatroniSSLCertFile", OPT_STRING, patroni_cert_file),
    DEF("PatroniSSLKeyFile", OPT_STRING, patroni_key_file),
    DEF("Commit", OPT_TRUTH, commit),
    DEF("PreparedStatements", OPT_TRUTH, prepared_statements),
    DEF("PatroniLeaderPort", OPT_PORT, patroni_leader_port),
};

#define NDEFS (sizeof defs / sizeof defs[0])

void asbp_options_init(asbp_options *o)
{
    memset(o, 0, sizeof *o);
    o->patroni_verify_ssl = -1;
    o->commit = -1;
    o->prepared_statements = -1;
}

size_t asbp_options_count(void) { return NDEFS; }

const char *asbp_options_name(size_t i, size_t *len)
{
    if (i >= NDEFS)
        return NULL;
    if (len)
        *len = defs[i].len;
    return defs[i].name;
}

/* ---- numbers, as Perl's looks_like_number accepts them ---------------- */

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int is_xdigit(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Advances *p past w (lower case) when the text there spells it, in any
 * case (ASCII only: no locale). */
static int skip_word(const char **p, const char *end, const char *w)
{
    size_t i, n = strlen(w);
    if ((size_t)(end - *p) < n)
        return 0;
    for (i = 0; i < n; i++) {
        char c = (*p)[i];
        if ((c >= 'A' && c <= 'Z' ? (char)(c + 32) : c) != w[i])
            return 0;
    }
    *p += n;
    return 1;
}

/* A NaN's optional payload: "(digits)" or "(0xhexdigits)". */
static int skip_payload(const char **p, const char *end)
{
    const char *q = *p;
    int hex;
    if (q >= end || *q != '(')
        return 1;
    q++;
    hex = skip_word(&q, end, "0x");
    if (q >= end || !(hex ? is_xdigit(*q) : is_digit(*q)))
        return 0;
    while (q < end && (hex ? is_xdigit(*q) : is_digit(*q)))
        q++;
    if (q >= end || *q != ')')
        return 0;
    *p = q + 1;
    return 1;
}

/* Perl's spellings of infinity (1) and NaN (2), after the sign, up to the
 * end of the text but for spaces; 0 when it is not one of them. */
static int infnan(const char *p, const char *end)
{
    int kind = 0;
    if (skip_word(&p, end, "1.#inf") || skip_word(&p, end, "1.#ind")) {
        kind = p[-1] == 'f' || p[-1] == 'F' ? 1 : 2;
        while (p < end && *p == '0')
            p++;
    } else if (skip_word(&p, end, "1.#qnan") || skip_word(&p, end, "1.#snan")) {
        kind = 2;
    } else if (skip_word(&p, end, "inf")) {
        kind = 1;
        (void)skip_word(&p, end, "inity");
    } else if (skip_word(&p, end, "nan")) {
        kind = 2;
        if (!skip_word(&p, end, "q"))
            (void)skip_word(&p, end, "s");
        if (!skip_payload(&p, end))
            return 0;
    } else if (skip_word(&p, end, "qnan") || skip_word(&p, end, "snan")) {
        kind = 2;
        if (!skip_payload(&p, end))
            return 0;
    }
    while (p < end && is_space(*p))
        p++;
    return p == end ? kind : 0;
}

/* m * 10^e, correctly rounded when m < 2^53 and |e| <= 22 (the values
 * people write); beyond, within an ulp or so. */
static double scale(uint64_t m, long e)
{
    static const double p10[] = {
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
        1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
    };
    double v = (double)m;
    if (m == 0)
        return 0.0;
    if (e > 40)
        return HUGE_VAL;   /* m >= 1: far above any limit */
    for (; e > 22; e -= 22)
        v *= 1e22;
    for (; e < -22; e += 22)
        v /= 1e22;
    return e >= 0 ? v * p10[e] : v / p10[-e];
}

/*
 * The value of a decimal number written as Perl's looks_like_number
 * accepts it: spaces, a sign, digits with an optional fraction (at least
 * one digit in all), an optional exponent, spaces; "0 but true"; the
 * spellings of infinity and NaN.  0 when the text is not a number.
 */
static int parse_number(const char *s, size_t len, double *v)
{
    const char *p = s, *end = s + len;
    uint64_t m = 0;
    long e = 0, x = 0;
    int neg = 0, xneg = 0, digits = 0, kept = 0, frac = 0, kind;

    if (len == 10 && memcmp(s, "0 but true", 10) == 0) {
        *v = 0.0;
        return 1;
    }
    while (p < end && is_space(*p))
        p++;
    if (p < end && (*p == '-' || *p == '+'))
        neg = *p++ == '-';
    /* Infinity and NaN start with a letter or "1.#": looked for only then
     * (numbers are parsed on every tie). */
    if (p < end && ((!is_digit(*p) && *p != '.')
                    || (end - p > 2 && p[0] == '1' && p[1] == '.' && p[2] == '#'))) {
        if ((kind = infnan(p, end)) == 0)
            return 0;
        *v = kind == 1 ? (neg ? -HUGE_VAL : HUGE_VAL) : NAN;
        return 1;
    }
    for (; p < end && (is_digit(*p) || (*p == '.' && !frac)); p++) {
        if (*p == '.') {
            frac = 1;
            continue;
        }
        digits++;
        if (kept < 19) {   /* 19 digits fit in 64 bits; the rest scale */
            m = m * 10 + (uint64_t)(*p - '0');
            kept += m != 0;
            e -= frac;
        } else {
            e += !frac;
        }
    }
    if (!digits)
        return 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '-' || *p == '+'))
            xneg = *p++ == '-';
        if (p >= end || !is_digit(*p))
            return 0;
        for (; p < end && is_digit(*p); p++)
            if (x < 100000)
                x = x * 10 + (*p - '0');
        e += xneg ? -x : x;
    }
    while (p < end && is_space(*p))
        p++;
    if (p != end)
        return 0;
    *v = scale(m, e);
    if (neg)
        *v = -*v;
    return 1;
}

/* ---- setting one option ----------------------------------------------- */

static asbp_code set_seconds(int64_t *field, const opt_def *d, const char *value,
                             size_t len, asbp_err *err)
{
    double v;
    if (!parse_number(value, len, &v))
        return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                            "invalid %s '%.*s': expected a number of seconds",
                            d->name, (int)len, value);
    if (!(v >= 0 && v <= ASBP_OPTION_MAX_SECONDS))   /* NaN too */
        return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                            "invalid %s '%.*s': expected between 0 and %d seconds",
                            d->name, (int)len, value, ASBP_OPTION_MAX_SECONDS);
    *field = (int64_t)(v * 1000.0 + 0.5);
    return ASBP_OK;
}

static asbp_code set_port(int *field, const opt_def *d, const char *value, size_t len,
                          asbp_err *err)
{
    double v;
    if (len == 0) {
        *field = 0;
        return ASBP_OK;
    }
    if (!parse_number(value, len, &v) || !(v >= 0 && v <= 65535) || v != (double)(int)v)
        return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                            "invalid %s '%.*s': expected a TCP port number (1 to 65535; "
                            "0 for the port the Patroni API gives)",
                            d->name, (int)len, value);
    *field = (int)v;
    return ASBP_OK;
}

asbp_code asbp_options_set_at(asbp_options *o, size_t i, const char *value,
                              size_t len, asbp_err *err)
{
    const opt_def *d;
    const char *nul;
    char *field;
    if (i >= NDEFS)
        return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT, "no option number %lu",
                            (unsigned long)i);
    d = &defs[i];
    field = (char *)o + d->off;
    if (d->kind == OPT_REFUSED)
        return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                            "the %s option (an open DBI handle) is not supported: "
                            "this backend opens its own libpq connections; give "
                            "DataSource, UserName and Password instead", d->name);
    if (!value)
        return ASBP_OK;   /* undefined: the default */
    /* C strings end at a NUL: "sessions\0x" would silently become
     * "sessions".  The value itself is not shown (it may be a secret). */
    nul = memchr(value, '\0', len);
    if (nul)
        return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                            "invalid %s: its value contains a NUL character (byte "
                            "%lu of %lu); option values are text without NUL",
                            d->name, (unsigned long)(nul - value) + 1,
                            (unsigned long)len);
    switch (d->kind) {
    case OPT_ALIAS:
        if (*(const char **)(void *)field)
            break;
        /* fall through */
    case OPT_STRING:
        *(const char **)(void *)field = value;
        break;
    case OPT_HOSTS:
        if (asbp_allow_parse(NULL, value, len, err) != ASBP_OK)
            return err->code;
        *(const char **)(void *)field = value;
        break;
    case OPT_SECONDS:
        return set_seconds((int64_t *)(void *)field, d, value, len, err);
    case OPT_TRUTH:
        *(int *)(void *)field = !(len == 0 || (len == 1 && value[0] == '0'));
        break;
    case OPT_PORT:
        return set_port((int *)(void *)field, d, value, len, err);
    case OPT_REFUSED:
        break;
    }
    return ASBP_OK;
}

asbp_code asbp_options_set(asbp_options *o, const char *key, const char *value,
                           size_t len, asbp_err *err)
{
    size_t i, klen = strlen(key);
    for (i = 0; i < NDEFS; i++)
        if (defs[i].len == klen && memcmp(defs[i].name, key, klen) == 0)
            return asbp_options_set_at(o, i, value, len, err);
    return ASBP_OK;
}
