#include "asbp_route.h"
#include "asbp_secret.h"

#include <stdio.h>
#include <string.h>

#define APP_NAME "Apache::Session::Browseable::Patroni"

void asbp_target_set(asbp_target *t, const char *k, const char *v)
{
    int i;
    for (i = 0; i < t->n; i++) {
        if (strcmp(t->kw[i], k) == 0) {
            t->val[i] = v;
            return;
        }
    }
    if (t->n >= ASBP_ROUTE_MAX_PARAMS)
        return;   /* cannot happen: the DataSource is checked for room */
    t->kw[t->n] = k;
    t->val[t->n] = v;
    t->n++;
    t->kw[t->n] = NULL;
    t->val[t->n] = NULL;
}

/* 1 when host:port is already in the lists. */
static int has_host(const asbp_target *t, const char *host, const char *port)
{
    const char *hs = asbp_buf_cstr(&t->hosts), *ps = asbp_buf_cstr(&t->ports);
    size_t hlen = strlen(host), plen = strlen(port);
    while (*hs) {
        const char *he = strchr(hs, ','), *pe = strchr(ps, ',');
        size_t hl = he ? (size_t)(he - hs) : strlen(hs);
        size_t pl = pe ? (size_t)(pe - ps) : strlen(ps);
        if (hl == hlen && !strncmp(hs, host, hl) && pl == plen && !strncmp(ps, port, pl))
            return 1;
        if (!he || !pe)
            break;
        hs = he + 1;
        ps = pe + 1;
    }
    return 0;
}

static void add_host(asbp_target *t, const char *host, int port)
{
    char pbuf[16];
    snprintf(pbuf, sizeof pbuf, "%d", port);
    /* skip duplicates (the leader is also among the members), and a host
     * with a comma (it would split the list) */
    if (has_host(t, host, pbuf) || strchr(host, ','))
        return;
    if (t->hosts.len) {
        asbp_buf_puts(&t->hosts, ",");
        asbp_buf_puts(&t->ports, ",");
    }
    asbp_buf_puts(&t->hosts, host);
    asbp_buf_puts(&t->ports, pbuf);
}

/* The host list replacing the DataSource's: 1 when there is one. */
static int override_hosts(const asbp_route *r, asbp_target *t)
{
    size_t i;
    int override = 0, po = r->port_override;
    if (r->leader_host && asbp_allow_match(r->allow, r->leader_host)) {
        add_host(t, r->leader_host, po > 0 ? po : r->leader_port);
        override = 1;
    }
    if (r->members) {
        for (i = 0; i < asbp_cluster_member_count(r->members); i++)
            if (asbp_allow_match(r->allow, asbp_cluster_member_host(r->members, i)))
                add_host(t, asbp_cluster_member_host(r->members, i),
                         po > 0 ? po : asbp_cluster_member_port(r->members, i));
        override = t->hosts.len > 0;
    }
    return override;
}

static void add_params(const asbp_route *r, asbp_target *t, int override)
{
    size_t i;
    for (i = 0; i < asbp_dsn_count(r->dsn); i++) {
        const char *k = asbp_dsn_key(r->dsn, i);
        if (!strcmp(k, "client_encoding"))
            continue;
        if (override && (!strcmp(k, "host") || !strcmp(k, "port")
                         || !strcmp(k, "hostaddr")))
            continue;
        asbp_target_set(t, k, asbp_dsn_value(r->dsn, i));
    }
    if (r->user)
        asbp_target_set(t, "user", r->user);
    if (r->password)
        asbp_target_set(t, "password", r->password);
    asbp_target_set(t, "client_encoding", "UTF8");
    if (!asbp_dsn_get(r->dsn, "fallback_application_name"))
        asbp_target_set(t, "fallback_application_name", APP_NAME);
    if (!asbp_dsn_get(r->dsn, "target_session_attrs"))
        asbp_target_set(t, "target_session_attrs", "read-write");
    if (override) {
        asbp_target_set(t, "host", asbp_buf_cstr(&t->hosts));
        asbp_target_set(t, "port", asbp_buf_cstr(&t->ports));
    }
}

/* The pool key: a fingerprint of every parameter (asbp_secret.h), so that
 * neither the key nor its copies (pool, connection, route cache) hold the
 * password.  0, or -1 (no key for fingerprints). */
static int target_key(asbp_target *t)
{
    char hex[ASBP_FP_HEX + 1], len[24];
    asbp_fp f;
    int i;
    if (asbp_fp_init(&f) < 0)
        return -1;
    for (i = 0; i < t->n; i++) {
        asbp_fp_puts(&f, t->kw[i]);
        snprintf(len, sizeof len, "=%zu:", strlen(t->val[i]));
        asbp_fp_puts(&f, len);
        asbp_fp_puts(&f, t->val[i]);
        asbp_fp_update(&f, "\x1f", 1);
    }
    asbp_fp_hex(&f, hex);
    return asbp_buf_puts(&t->key, hex);
}

int asbp_route_target(const asbp_route *r, asbp_target *t)
{
    int override;

    memset(t, 0, sizeof *t);
    override = override_hosts(r, t);
    add_params(r, t, override);
    if (target_key(t) < 0)
        return -1;
    if (override)
        asbp_buf_printf(&t->label, "DataSource %s (%s %s port %s)",
                        asbp_dsn_display(r->dsn),
                        strchr(asbp_buf_cstr(&t->hosts), ',') ? "hosts" : "leader",
                        asbp_buf_cstr(&t->hosts), asbp_buf_cstr(&t->ports));
    else
        asbp_buf_printf(&t->label, "DataSource %s", asbp_dsn_display(r->dsn));
    return t->key.data && t->label.data ? 0 : -1;
}

void asbp_target_params(const asbp_target *t, const char *label, asbp_connparams *p)
{
    p->keys = t->kw;
    p->values = t->val;
    p->label = label ? label : asbp_buf_cstr(&t->label);
}

const char *asbp_target_key(const asbp_target *t) { return t->key.data; }
const char *asbp_target_label(const asbp_target *t) { return asbp_buf_cstr(&t->label); }

void asbp_target_free(asbp_target *t)
{
    asbp_buf_free(&t->hosts);
    asbp_buf_free(&t->ports);
    asbp_buf_free(&t->label);
    asbp_buf_free(&t->key);
}

const char *asbp_route_cache_get(const asbp_route_cache *c, const asbp_route *r)
{
    if (!c->valid || c->members != (r->members != NULL))
        return NULL;
    if (r->members && c->gen != asbp_cluster_members_gen(r->members))
        return NULL;
    if (r->leader_host ? c->port != r->leader_port || strcmp(c->host, r->leader_host) != 0
                       : c->host[0] != '\0')
        return NULL;
    return c->key.data;
}

int asbp_route_cache_put(asbp_route_cache *c, const asbp_route *r, const char *key)
{
    const char *h = r->leader_host ? r->leader_host : "";
    c->valid = 0;
    if (strlen(h) >= sizeof c->host)
        return 0;   /* not kept: such a route is built each time */
    asbp_buf_reset(&c->key);
    if (asbp_buf_puts(&c->key, key) < 0)
        return -1;
    memcpy(c->host, h, strlen(h) + 1);
    c->port = r->leader_port;
    c->members = r->members != NULL;
    c->gen = r->members ? asbp_cluster_members_gen(r->members) : 0;
    c->valid = 1;
    return 0;
}

void asbp_route_cache_clear(asbp_route_cache *c)
{
    asbp_buf_free(&c->key);
    c->valid = 0;
}
