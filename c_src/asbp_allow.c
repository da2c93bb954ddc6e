#include "asbp_allow.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

typedef enum entry_kind {
    E_NAME,     /* text: lower case */
    E_NET4,     /* addr[0..3], bits 0..32 */
    E_NET6,     /* addr[0..15], bits 0..128 */
    E_SOCKET    /* text: "/dir" (no trailing '/') or "@name" */
} entry_kind;

typedef struct entry {
    entry_kind kind;
    unsigned char addr[16];
    int bits;
    char *text;             /* owned (NAME, SOCKET), else NULL */
} entry;

struct asbp_allow {
    entry *e;               /* owned */
    size_t n, cap;
};

/* An entry being parsed: its text is borrowed until it is added. */
typedef struct draft {
    entry_kind kind;
    unsigned char addr[16];
    int bits;
    const char *text;
    size_t len;
} draft;

asbp_allow *asbp_allow_new(void)
{
    return calloc(1, sizeof(asbp_allow));   /* freed by asbp_allow_free */
}

static void truncate_to(asbp_allow *a, size_t n)
{
    while (a->n > n)
        free(a->e[--a->n].text);
}

void asbp_allow_free(asbp_allow *a)
{
    if (!a)
        return;
    truncate_to(a, 0);
    free(a->e);
    free(a);
}

size_t asbp_allow_count(const asbp_allow *a) { return a ? a->n : 0; }

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c; }

static int add(asbp_allow *a, const draft *d)
{
    entry *e;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 8;
        entry *ne = realloc(a->e, cap * sizeof *ne);   /* freed by asbp_allow_free */
        if (!ne)
            return -1;
        a->e = ne;
        a->cap = cap;
    }
    e = &a->e[a->n];
    memset(e, 0, sizeof *e);
    e->kind = d->kind;
    memcpy(e->addr, d->addr, sizeof e->addr);
    e->bits = d->bits;
    if (d->kind == E_NAME || d->kind == E_SOCKET) {
        size_t i;
        e->text = malloc(d->len + 1);   /* freed by truncate_to */
        if (!e->text)
            return -1;
        for (i = 0; i < d->len; i++)
            e->text[i] = d->kind == E_NAME ? lower(d->text[i]) : d->text[i];
        e->text[d->len] = '\0';
    }
    a->n++;
    return 0;
}

/* ---- addresses -------------------------------------------------------- */

static int is_mapped(const unsigned char *a6)
{
    static const unsigned char pre[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    return memcmp(a6, pre, sizeof pre) == 0;
}

/* The n bytes at p as an address (no brackets): 4 (addr[0..3]) or 6
 * (addr[0..15]), 0 when not one. */
static int parse_addr(const char *p, size_t n, unsigned char addr[16])
{
    char buf[INET6_ADDRSTRLEN + 1];
    if (n == 0 || n >= sizeof buf || memchr(p, '\0', n))
        return 0;
    memcpy(buf, p, n);
    buf[n] = '\0';
    memset(addr, 0, 16);
    if (inet_pton(AF_INET, buf, addr) == 1)
        return 4;
    if (inet_pton(AF_INET6, buf, addr) == 1)
        return 6;
    return 0;
}

/* An IPv4-mapped IPv6 address is the IPv4 address it holds. */
static int unmap(int fam, unsigned char addr[16])
{
    if (fam != 6 || !is_mapped(addr))
        return fam;
    memmove(addr, addr + 12, 4);
    memset(addr + 4, 0, 12);
    return 4;
}

static int in_net(const unsigned char *addr, const unsigned char *net, int bits)
{
    int full = bits / 8, rest = bits % 8;
    if (memcmp(addr, net, (size_t)full) != 0)
        return 0;
    if (rest) {
        unsigned char m = (unsigned char)(0xff << (8 - rest));
        return (addr[full] & m) == (net[full] & m);
    }
    return 1;
}

/* 1 when no bit past bits is set in addr (of nbytes). */
static int clean_net(const unsigned char *addr, size_t nbytes, int bits)
{
    size_t i;
    for (i = 0; i < nbytes; i++) {
        int keep = bits - (int)i * 8;
        unsigned char m = keep >= 8 ? 0xff : keep <= 0 ? 0 : (unsigned char)(0xff << (8 - keep));
        if (addr[i] & (unsigned char)~m)
            return 0;
    }
    return 1;
}

/* ---- the explicit list ------------------------------------------------ */

#define SHOW_MAX 120   /* bytes of an entry quoted in a message */

static asbp_code bad(asbp_err *err, const char *p, size_t n, const char *why)
{
    char shown[SHOW_MAX + 4];
    size_t i;
    for (i = 0; i < n && i < SHOW_MAX; i++)   /* never a control character */
        shown[i] = (unsigned char)p[i] < 0x20 || p[i] == 0x7f ? '?' : p[i];
    if (n > SHOW_MAX)
        memcpy(shown + i, "...", 4);
    else
        shown[i] = '\0';
    return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                        "invalid %s entry '%s': %s", ASBP_ALLOW_OPTION, shown, why);
}

static asbp_code socket_entry(const char *p, size_t n, draft *d, asbp_err *err)
{
    size_t i;
    for (i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
            return bad(err, p, n, "a socket path without control characters was expected");
    if (p[0] == '@' && n == 1)
        return bad(err, p, n, "an abstract socket needs a name after '@'");
    while (p[0] == '/' && n > 1 && p[n - 1] == '/')
        n--;
    d->kind = E_SOCKET;
    d->text = p;
    d->len = n;
    return ASBP_OK;
}

/* "[v6]" -> "v6": 1 when brackets were removed, -1 when they are wrong. */
static int unbracket(const char **p, size_t *n)
{
    if (*n == 0 || (**p != '[' && !memchr(*p, ']', *n)))
        return memchr(*p, '[', *n) ? -1 : 0;
    if (**p != '[' || (*p)[*n - 1] != ']')
        return -1;
    (*p)++;
    *n -= 2;
    return 1;
}

/* The address part of an entry (before any '/') into d: ASBP_OK or an error. */
static asbp_code addr_part(const char *whole, size_t wn, const char *p, size_t n,
                           draft *d, asbp_err *err)
{
    int br = unbracket(&p, &n), fam;
    if (br < 0)
        return bad(err, whole, wn, "brackets go around a whole IPv6 address, as in [::1]");
    fam = parse_addr(p, n, d->addr);
    if (!fam || (br && fam != 6))
        return bad(err, whole, wn, br ? "not an IPv6 address in the brackets"
                                      : "not an IPv4 or IPv6 address before the '/'");
    d->kind = fam == 4 ? E_NET4 : E_NET6;
    d->bits = fam == 4 ? 32 : 128;
    return ASBP_OK;
}

static asbp_code cidr_entry(const char *p, size_t n, const char *slash, draft *d,
                            asbp_err *err)
{
    const char *q, *end = p + n;
    int bits = 0, max;
    asbp_code rc = addr_part(p, n, p, (size_t)(slash - p), d, err);
    if (rc)
        return rc;
    if (slash + 1 == end)
        return bad(err, p, n, "a prefix length is expected after the '/'");
    for (q = slash + 1; q < end; q++) {
        if (*q < '0' || *q > '9')
            return bad(err, p, n, "the prefix length after the '/' is not a number");
        if ((bits = bits * 10 + (*q - '0')) > 128)
            break;
    }
    max = d->kind == E_NET4 ? 32 : 128;
    if (bits > max)
        return bad(err, p, n, d->kind == E_NET4 ? "the prefix length of an IPv4 range is 0 to 32"
                                                : "the prefix length of an IPv6 range is 0 to 128");
    if (!clean_net(d->addr, d->kind == E_NET4 ? 4 : 16, bits))
        return bad(err, p, n, "bits are set past the prefix length (write the first "
                              "address of the range)");
    d->bits = bits;
    if (d->kind == E_NET6 && bits >= 96 && is_mapped(d->addr)) {
        unmap(6, d->addr);   /* ::ffff:a.b.c.d/n is an IPv4 range */
        d->kind = E_NET4;
        d->bits = bits - 96;
    }
    return ASBP_OK;
}

static int name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
        || c == '-' || c == '_' || c == '.';
}

static asbp_code name_entry(const char *p, size_t n, draft *d, asbp_err *err)
{
    size_t i;
    int numeric = 1;
    if (memchr(p, ':', n) || memchr(p, '[', n) || memchr(p, ']', n))
        return bad(err, p, n, "not an IPv6 address (give a host without a port)");
    for (i = 0; i < n; i++) {
        if (p[i] == '*' || p[i] == '?')
            return bad(err, p, n, "wildcards are not supported (give a CIDR range "
                                  "such as 10.0.0.0/8 for addresses)");
        if (!name_char(p[i]))
            return bad(err, p, n, "a host name holds only letters, digits, '-', '_' and '.'");
        if (!(p[i] == '.' || (p[i] >= '0' && p[i] <= '9')))
            numeric = 0;
    }
    if (numeric)
        return bad(err, p, n, "not an IPv4 address (four numbers 0 to 255, no leading "
                              "zeros)");
    d->kind = E_NAME;
    d->text = p;
    d->len = n;
    return ASBP_OK;
}

static asbp_code parse_entry(const char *p, size_t n, draft *d, asbp_err *err)
{
    const char *slash;
    memset(d, 0, sizeof *d);
    if (p[0] == '/' || p[0] == '@')
        return socket_entry(p, n, d, err);
    if ((slash = memchr(p, '/', n)) != NULL)
        return cidr_entry(p, n, slash, d, err);
    if (parse_addr(p, n, d->addr) || p[0] == '[') {
        asbp_code rc = addr_part(p, n, p, n, d, err);
        if (rc == ASBP_OK && d->kind == E_NET6 && unmap(6, d->addr) == 4) {
            d->kind = E_NET4;
            d->bits = 32;
        }
        return rc;
    }
    return name_entry(p, n, d, err);
}

static int is_sep(char c)
{
    return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'
        || c == '\v';
}

asbp_code asbp_allow_parse(asbp_allow *a, const char *list, size_t len, asbp_err *err)
{
    const char *p = list, *end = list + len;
    size_t n0 = a ? a->n : 0;
    while (p < end) {
        const char *e;
        draft d;
        asbp_code rc;
        while (p < end && is_sep(*p))
            p++;
        if (p == end)
            break;
        for (e = p; e < end && !is_sep(*e); e++)
            ;
        rc = parse_entry(p, (size_t)(e - p), &d, err);
        if (rc == ASBP_OK && a && add(a, &d) < 0)
            rc = asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT, "out of memory");
        if (rc) {
            if (a)
                truncate_to(a, n0);
            return rc;
        }
        p = e;
    }
    return ASBP_OK;
}

/* ---- hosts the operator wrote elsewhere ------------------------------- */

int asbp_allow_add_hosts(asbp_allow *a, const char *list)
{
    const char *p = list;
    while (p && *p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        draft d;
        memset(&d, 0, sizeof d);
        if (n && p[0] != '/' && p[0] != '@') {
            int fam = unmap(parse_addr(p, n, d.addr), d.addr);
            d.kind = fam == 4 ? E_NET4 : fam == 6 ? E_NET6 : E_NAME;
            d.bits = fam == 4 ? 32 : 128;
            d.text = p;
            d.len = n;
            if (add(a, &d) < 0)
                return -1;
        }
        p = e ? e + 1 : NULL;
    }
    return 0;
}

size_t asbp_allow_url_host(const char *url, char *buf, size_t n)
{
    const char *p = strstr(url, "://"), *end, *at, *h, *he;
    size_t len;
    p = p ? p + 3 : url;
    end = p + strcspn(p, "/?#");
    for (at = NULL, h = p; h < end; h++)
        if (*h == '@')
            at = h;
    h = at ? at + 1 : p;
    if (*h == '[') {
        he = memchr(h, ']', (size_t)(end - h));
        if (!he)
            return 0;
        h++;
    } else {
        he = memchr(h, ':', (size_t)(end - h));
        if (!he)
            he = end;
    }
    len = (size_t)(he - h);
    if (len == 0 || len >= n)
        return 0;
    memcpy(buf, h, len);
    buf[len] = '\0';
    return len;
}

/* ---- matching --------------------------------------------------------- */

static int match_text(const asbp_allow *a, entry_kind kind, const char *host, size_t n)
{
    size_t i, j;
    for (i = 0; i < a->n; i++) {
        const entry *e = &a->e[i];
        if (e->kind != kind || strlen(e->text) != n)
            continue;
        for (j = 0; j < n; j++)
            if ((kind == E_NAME ? lower(host[j]) : host[j]) != e->text[j])
                break;
        if (j == n)
            return 1;
    }
    return 0;
}

int asbp_allow_match(const asbp_allow *a, const char *host)
{
    unsigned char addr[16];
    size_t i, n;
    int fam;
    if (!a || !host || !*host)
        return 0;
    n = strlen(host);
    if (host[0] == '/' || host[0] == '@') {
        while (host[0] == '/' && n > 1 && host[n - 1] == '/')
            n--;
        return match_text(a, E_SOCKET, host, n);
    }
    fam = unmap(parse_addr(host, n, addr), addr);
    if (!fam)
        return match_text(a, E_NAME, host, n);
    for (i = 0; i < a->n; i++) {
        const entry *e = &a->e[i];
        if (e->kind == (fam == 4 ? E_NET4 : E_NET6) && in_net(addr, e->addr, e->bits))
            return 1;
    }
    return 0;
}
