/*
 * asbp_patroni: parses one answer of Patroni's GET /cluster with yajl's
 * streaming (callback) parser and selects the leader.
 *
 * Why streaming: yajl_tree builds and frees the document recursively, so a
 * hostile answer nested deeply enough would exhaust the C stack.  Here the
 * parser keeps no tree: a small state machine follows where it is
 * (top-level object, "members" array, one member object, or a value being
 * skipped) and the callbacks refuse to go deeper than
 * ASBP_PATRONI_MAX_DEPTH, which cancels the parse cleanly.
 *
 * Decisions written down (see also asbp_patroni.h):
 * - "port": a JSON integer 1..65535.  A string of ASCII digits only
 *   ("5432") is accepted too, with the same range: Patroni never sends one,
 *   but a proxy re-encoding the answer might, and the pure-Perl module
 *   (Perl does not tell "5432" from 5432) accepts it.  Anything else (float,
 *   exponent, negative, out of range, bool, null, object) gives port 0.
 * - "host": a non-empty string of at most 255 bytes without NUL, comma,
 *   whitespace or control characters, else NULL (libpq would read a comma
 *   as a host list, and such a value cannot be a host name or address).
 * - name, role, state, api_url: kept when they are strings; NUL and control
 *   characters are replaced by '?' so the stored C string never hides a
 *   tail ("leader\u0000x" is not "leader") and can be logged safely.  A
 *   non-string value makes the field NULL.
 * - "lag": a JSON integer 0..10^18 (bytes), else -1 (absent, "unknown",
 *   a float, a negative number...): it is shown, never used to decide.
 * - Duplicate keys: the last one wins, also for "members".
 * - Unknown keys, at any level, are skipped whatever their value.
 */
#include "asbp_patroni.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

enum where {
    W_START,     /* before the top-level value */
    W_TOP,       /* inside the top-level object */
    W_MEMBERS,   /* inside the "members" array */
    W_MEMBER,    /* inside one member object */
    W_DONE       /* top-level object closed */
};

enum field {
    F_NONE, F_SKIP, F_MEMBERS,
    F_NAME, F_ROLE, F_STATE, F_HOST, F_API_URL, F_PORT, F_LAG
};

typedef struct pctx {
    int depth;          /* containers open */
    int skip;           /* > 0: containers open inside a skipped value */
    enum where where;
    enum field field;   /* what the next value of the current object is */
    int members_seen;
    asbp_topology *t;   /* owned by asbp_patroni_parse until returned */
    size_t cap;         /* allocated entries of t->members */
    int nomem;
    char why[160];      /* why a callback stopped the parse */
} pctx;

static void member_clear(asbp_member *m)
{
    free(m->name);
    free(m->role);
    free(m->state);
    free(m->host);
    free(m->api_url);
    memset(m, 0, sizeof *m);
}

void asbp_topology_free(asbp_topology *t)
{
    size_t i;
    if (!t)
        return;
    for (i = 0; i < t->n; i++)
        member_clear(&t->members[i]);
    free(t->members);
    free(t);
}

static int stop(pctx *c, const char *why)
{
    size_t n = strlen(why);
    if (n >= sizeof c->why)
        n = sizeof c->why - 1;
    memcpy(c->why, why, n);
    c->why[n] = '\0';
    return 0;
}

static int stop_nomem(pctx *c)
{
    c->nomem = 1;
    return stop(c, "out of memory");
}

static asbp_member *cur(pctx *c)
{
    return &c->t->members[c->t->n - 1];
}

/* The string field the current key names, or NULL. */
static char **str_field(pctx *c)
{
    asbp_member *m = cur(c);
    switch (c->field) {
    case F_NAME: return &m->name;
    case F_ROLE: return &m->role;
    case F_STATE: return &m->state;
    case F_HOST: return &m->host;
    case F_API_URL: return &m->api_url;
    default: return NULL;
    }
}

/* A value that is not what the current known field wants: it becomes
 * absent (the last duplicate wins, even when it is of the wrong type). */
static void field_unset(pctx *c)
{
    char **f;
    if (c->where != W_MEMBER)
        return;
    if (c->field == F_PORT) {
        cur(c)->port = 0;
        return;
    }
    if (c->field == F_LAG) {
        cur(c)->lag = -1;
        return;
    }
    f = str_field(c);
    if (f) {
        free(*f);
        *f = NULL;
    }
}

/* Port from the text of a JSON number or of a string: digits only. */
static int port_from_digits(const char *s, size_t len)
{
    size_t i;
    long v = 0;
    if (len == 0 || len > 5)
        return 0;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    return v >= 1 && v <= 65535 ? (int)v : 0;
}

/* Lag from the text of a JSON number: digits only, at most 10^18. */
static long long lag_from_digits(const char *s, size_t len)
{
    size_t i;
    long long v = 0;
    if (len == 0 || len > 18)
        return len == 19 && !memcmp(s, "1000000000000000000", 19)
            ? 1000000000000000000LL : -1;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int host_is_sane(const unsigned char *s, size_t len)
{
    size_t i;
    if (len == 0 || len > 255)
        return 0;
    for (i = 0; i < len; i++) {
        unsigned char ch = s[i];
        if (ch < 0x21 || ch == 0x7f || ch == ',')
            return 0;   /* NUL, controls, space; DEL; a libpq host list */
    }
    return 1;
}

/* A copy with NUL and control characters replaced by '?'. */
static char *copy_printable(const unsigned char *s, size_t len)
{
    size_t i;
    char *p = malloc(len + 1);
    if (!p)
        return NULL;
    for (i = 0; i < len; i++)
        p[i] = (s[i] < 0x20 || s[i] == 0x7f) ? '?' : (char)s[i];
    p[len] = '\0';
    return p;
}

/* A scalar value (not an object or array) in the current position. */
static int scalar(pctx *c)
{
    switch (c->where) {
    case W_START:
        return stop(c, "the answer is not a JSON object");
    case W_TOP:
        if (c->field == F_MEMBERS)
            return stop(c, "\"members\" is not an array");
        c->field = F_NONE;
        return 1;
    case W_MEMBERS: {
        char why[80];
        snprintf(why, sizeof why, "member %lu is not an object",
                 (unsigned long)c->t->n + 1);
        return stop(c, why);
    }
    case W_MEMBER:
        return 1;
    case W_DONE:
    default:
        return stop(c, "unexpected value after the top-level object");
    }
}

static int cb_null(void *ud)
{
    pctx *c = ud;
    if (c->skip)
        return 1;
    if (!scalar(c))
        return 0;
    field_unset(c);
    c->field = F_NONE;
    return 1;
}

static int cb_boolean(void *ud, int v)
{
    (void)v;
    return cb_null(ud);
}

static int cb_number(void *ud, const char *s, size_t len)
{
    pctx *c = ud;
    if (c->skip)
        return 1;
    if (!scalar(c))
        return 0;
    if (c->where == W_MEMBER) {
        if (c->field == F_PORT)
            cur(c)->port = port_from_digits(s, len);
        else if (c->field == F_LAG)
            cur(c)->lag = lag_from_digits(s, len);
        else
            field_unset(c);
    }
    c->field = F_NONE;
    return 1;
}

static int cb_string(void *ud, const unsigned char *s, size_t len)
{
    pctx *c = ud;
    char **f;
    if (c->skip)
        return 1;
    if (!scalar(c))
        return 0;
    if (c->where != W_MEMBER)
        return 1;
    if (c->field == F_PORT) {
        cur(c)->port = port_from_digits((const char *)s, len);
    } else if (c->field == F_LAG) {
        cur(c)->lag = -1;   /* "unknown" */
    } else if ((f = str_field(c)) != NULL) {
        free(*f);
        *f = NULL;
        if (c->field != F_HOST || host_is_sane(s, len)) {
            *f = copy_printable(s, len);
            if (!*f)
                return stop_nomem(c);
        }
    }
    c->field = F_NONE;
    return 1;
}

static int add_member(pctx *c)
{
    asbp_topology *t = c->t;
    if (t->n >= ASBP_PATRONI_MAX_MEMBERS) {
        char why[80];
        snprintf(why, sizeof why, "more than %d members",
                 ASBP_PATRONI_MAX_MEMBERS);
        return stop(c, why);
    }
    if (t->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 4;
        asbp_member *m = realloc(t->members, ncap * sizeof *m);
        if (!m)
            return stop_nomem(c);
        t->members = m;
        c->cap = ncap;
    }
    memset(&t->members[t->n], 0, sizeof t->members[0]);
    t->members[t->n].lag = -1;
    t->n++;
    return 1;
}

static int start_container(pctx *c, int is_map)
{
    if (++c->depth > ASBP_PATRONI_MAX_DEPTH) {
        char why[80];
        snprintf(why, sizeof why, "JSON nested deeper than %d levels",
                 ASBP_PATRONI_MAX_DEPTH);
        return stop(c, why);
    }
    if (c->skip) {
        c->skip++;
        return 1;
    }
    switch (c->where) {
    case W_START:
        if (!is_map)
            return stop(c, "the answer is not a JSON object");
        c->where = W_TOP;
        c->field = F_NONE;
        return 1;
    case W_TOP:
        if (c->field == F_MEMBERS) {
            size_t i;
            if (is_map)
                return stop(c, "\"members\" is not an array");
            /* A repeated "members": the last one wins. */
            for (i = 0; i < c->t->n; i++)
                member_clear(&c->t->members[i]);
            c->t->n = 0;
            c->members_seen = 1;
            c->where = W_MEMBERS;
            return 1;
        }
        c->skip = 1;
        return 1;
    case W_MEMBERS:
        if (!is_map) {
            char why[80];
            snprintf(why, sizeof why, "member %lu is not an object",
                     (unsigned long)c->t->n + 1);
            return stop(c, why);
        }
        if (!add_member(c))
            return 0;
        c->where = W_MEMBER;
        c->field = F_NONE;
        return 1;
    case W_MEMBER:
        field_unset(c);   /* "host": {...} is no host */
        c->skip = 1;
        return 1;
    case W_DONE:
    default:
        return stop(c, "unexpected value after the top-level object");
    }
}

static int end_container(pctx *c)
{
    c->depth--;
    if (c->skip) {
        if (--c->skip == 0)
            c->field = F_NONE;
        return 1;
    }
    switch (c->where) {
    case W_MEMBER: c->where = W_MEMBERS; c->field = F_NONE; break;
    case W_MEMBERS: c->where = W_TOP; c->field = F_NONE; break;
    case W_TOP: c->where = W_DONE; break;
    default: break;
    }
    return 1;
}

static int cb_start_map(void *ud) { return start_container(ud, 1); }
static int cb_start_array(void *ud) { return start_container(ud, 0); }
static int cb_end(void *ud) { return end_container(ud); }

#define KEY_IS(k, len, lit) ((len) == sizeof(lit) - 1 && !memcmp((k), (lit), (len)))

static int cb_map_key(void *ud, const unsigned char *k, size_t len)
{
    pctx *c = ud;
    if (c->skip)
        return 1;
    if (c->where == W_TOP) {
        c->field = KEY_IS(k, len, "members") ? F_MEMBERS : F_SKIP;
    } else if (c->where == W_MEMBER) {
        c->field = KEY_IS(k, len, "name") ? F_NAME
                 : KEY_IS(k, len, "role") ? F_ROLE
                 : KEY_IS(k, len, "state") ? F_STATE
                 : KEY_IS(k, len, "host") ? F_HOST
                 : KEY_IS(k, len, "api_url") ? F_API_URL
                 : KEY_IS(k, len, "port") ? F_PORT
                 : KEY_IS(k, len, "lag") ? F_LAG
                 : F_SKIP;
    }
    return 1;
}

static const yajl_callbacks callbacks = {
    cb_null, cb_boolean, NULL, NULL, cb_number, cb_string,
    cb_start_map, cb_map_key, cb_end, cb_start_array, cb_end
};

/* yajl's own short error text (no excerpt of the body), one line. */
static void yajl_why(yajl_handle h, const char *body, size_t len,
                     char *buf, size_t n)
{
    unsigned char *e = yajl_get_error(h, 0, (const unsigned char *)body, len);
    size_t i, k = 0;
    const char *s = e ? (const char *)e : "parse error";
    if (!strncmp(s, "parse error: ", 13))
        s += 13;
    else if (!strncmp(s, "lexical error: ", 15))
        s += 15;
    for (i = 0; s[i] && k + 1 < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\n' || ch == '\r')
            continue;
        buf[k++] = (ch < 0x20 || ch == 0x7f) ? ' ' : (char)ch;
    }
    while (k > 0 && (buf[k - 1] == ' ' || buf[k - 1] == '.'))
        k--;
    buf[k] = '\0';
    if (e)
        yajl_free_error(h, e);
}

asbp_code asbp_patroni_parse(const char *body, size_t len,
                             asbp_topology **out, asbp_err *err)
{
    pctx c;
    yajl_handle h;
    yajl_status st;
    size_t off;
    asbp_code rc = ASBP_OK;

    *out = NULL;
    if (len > ASBP_PATRONI_MAX_BODY)
        return asbp_err_set(err, ASBP_E_DISCOVERY, ASBP_EC_FAILOVER,
                            "answer larger than 1 MiB (%lu bytes)",
                            (unsigned long)len);
    if (len == 0 || !body)
        return asbp_err_set(err, ASBP_E_DISCOVERY, ASBP_EC_FAILOVER,
                            "empty answer");

    memset(&c, 0, sizeof c);
    c.where = W_START;
    c.t = calloc(1, sizeof *c.t);   /* returned through *out, or freed */
    if (!c.t)
        return asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT, "out of memory");
    h = yajl_alloc(&callbacks, NULL, &c);   /* freed below */
    if (!h) {
        asbp_topology_free(c.t);
        return asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT, "out of memory");
    }

    st = yajl_parse(h, (const unsigned char *)body, len);
    off = yajl_get_bytes_consumed(h);
    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);   /* errors found here are at the end */
        off = len;
    }

    if (st == yajl_status_client_canceled) {
        rc = c.nomem
            ? asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT, "out of memory")
            : asbp_err_set(err, ASBP_E_DISCOVERY, ASBP_EC_FAILOVER,
                           "not a /cluster answer: %s (at byte %lu)", c.why,
                           (unsigned long)off);
    } else if (st != yajl_status_ok) {
        char why[160];
        yajl_why(h, body, len, why, sizeof why);
        rc = asbp_err_set(err, ASBP_E_DISCOVERY, ASBP_EC_FAILOVER,
                          "bad JSON: %s (at byte %lu of %lu)", why,
                          (unsigned long)off, (unsigned long)len);
    } else if (c.where != W_DONE) {
        /* yajl accepts a lone scalar; and a safety net for early ends. */
        rc = asbp_err_set(err, ASBP_E_DISCOVERY, ASBP_EC_FAILOVER,
                          "not a /cluster answer: the answer is not a JSON object");
    } else if (!c.members_seen) {
        rc = asbp_err_set(err, ASBP_E_DISCOVERY, ASBP_EC_FAILOVER,
                          "not a /cluster answer: no \"members\" array");
    }
    yajl_free(h);

    if (rc != ASBP_OK) {
        asbp_topology_free(c.t);
        return rc;
    }
    *out = c.t;
    return ASBP_OK;
}

asbp_leader_status asbp_topology_leader(const asbp_topology *t,
                                        const asbp_member **leader)
{
    const asbp_member *found = NULL;
    size_t i, n = 0;

    *leader = NULL;
    if (!t)
        return ASBP_LEADER_NONE;
    for (i = 0; i < t->n; i++) {
        const asbp_member *m = &t->members[i];
        if (m->role && !strcmp(m->role, "leader")) {
            if (!found)
                found = m;
            n++;
        }
    }
    if (n == 0)
        return ASBP_LEADER_NONE;
    if (n > 1)
        return ASBP_LEADER_MULTIPLE;
    *leader = found;
    /* Address first: a leader we could not connect to is reported as such
     * even while it is also starting or stopping. */
    if (!found->host || found->port <= 0)
        return ASBP_LEADER_BAD_ADDRESS;
    if (found->state && strcmp(found->state, "running"))
        return ASBP_LEADER_NOT_RUNNING;
    return ASBP_LEADER_OK;
}

const char *asbp_leader_status_name(asbp_leader_status s)
{
    switch (s) {
    case ASBP_LEADER_OK: return "leader";
    case ASBP_LEADER_NONE: return "no leader";
    case ASBP_LEADER_NOT_RUNNING: return "leader not running";
    case ASBP_LEADER_BAD_ADDRESS: return "leader missing host or port";
    case ASBP_LEADER_MULTIPLE: return "multiple leaders";
    }
    return "unknown";
}

const asbp_member *asbp_topology_sync_standby(const asbp_topology *t)
{
    size_t i;
    for (i = 0; t && i < t->n; i++) {
        const asbp_member *m = &t->members[i];
        if (m->role && !strcmp(m->role, "sync_standby") && m->host && m->port > 0
            && m->state && (!strcmp(m->state, "running") || !strcmp(m->state, "streaming")))
            return m;
    }
    return NULL;
}
