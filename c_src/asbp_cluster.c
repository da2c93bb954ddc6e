#include "asbp_cluster.h"
#include "asbp_buf.h"

#include <stdlib.h>
#include <string.h>

struct asbp_cluster {
    char *key;                 /* owned */
    char *leader_host;         /* owned, NULL: none */
    int leader_port;
    int64_t leader_time;
    int64_t last_failure;      /* -1: breaker closed */
    char **member_hosts;       /* owned */
    int *member_ports;         /* owned */
    size_t nmembers;
    int64_t members_time;
    unsigned long members_gen;
    char *standby_host;        /* owned, NULL: none named */
    int standby_port;
    int64_t standby_time;      /* of the answer (or forget); -1: never */
    int standby_forgotten;     /* forget_standby, no answer since */
    asbp_cluster_stats stats;
};

asbp_cluster *asbp_cluster_new(const char *key)
{
    asbp_cluster *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->key = asbp_strdup(key ? key : "");
    if (!c->key) {
        free(c);
        return NULL;
    }
    c->last_failure = -1;
    c->standby_time = -1;
    return c;
}

static void clear_members(asbp_cluster *c)
{
    size_t i;
    for (i = 0; i < c->nmembers; i++)
        free(c->member_hosts[i]);
    free(c->member_hosts);
    free(c->member_ports);
    c->member_hosts = NULL;
    c->member_ports = NULL;
    c->nmembers = 0;
}

void asbp_cluster_free(asbp_cluster *c)
{
    if (!c)
        return;
    clear_members(c);
    free(c->leader_host);
    free(c->standby_host);
    free(c->key);
    free(c);
}

const char *asbp_cluster_key(const asbp_cluster *c) { return c ? c->key : ""; }

int asbp_cluster_set_leader(asbp_cluster *c, const char *host, int port,
                            int64_t now_ms)
{
    char *h = asbp_strdup(host);
    if (!h)
        return -1;
    if (!c->leader_host || strcmp(c->leader_host, h) != 0 || c->leader_port != port)
        c->stats.leader_changes++;
    free(c->leader_host);
    c->leader_host = h;
    c->leader_port = port;
    c->leader_time = now_ms;
    c->last_failure = -1;
    return 0;
}

int asbp_cluster_leader(const asbp_cluster *c, int64_t now_ms, int64_t ttl_ms,
                        const char **host, int *port, int64_t *age_ms)
{
    int64_t age;
    if (!c || !c->leader_host)
        return 0;
    age = now_ms - c->leader_time;
    if (age < 0)
        age = 0;
    if (age >= ttl_ms)
        return 0;
    if (host)
        *host = c->leader_host;
    if (port)
        *port = c->leader_port;
    if (age_ms)
        *age_ms = age;
    return 1;
}

int asbp_cluster_last_leader(const asbp_cluster *c, const char **host,
                             int *port, int64_t *found_at_ms)
{
    if (!c || !c->leader_host)
        return 0;
    if (host)
        *host = c->leader_host;
    if (port)
        *port = c->leader_port;
    if (found_at_ms)
        *found_at_ms = c->leader_time;
    return 1;
}

void asbp_cluster_forget_leader(asbp_cluster *c)
{
    if (!c)
        return;
    free(c->leader_host);
    c->leader_host = NULL;
    c->leader_port = 0;
}

int asbp_cluster_set_members(asbp_cluster *c, size_t n, const char *const *hosts,
                             const int *ports, int64_t now_ms)
{
    char **h;
    int *p;
    size_t i;
    if (n == 0)
        return 0;   /* an empty list teaches nothing: keep the last one */
    if (n == c->nmembers) {
        int same = 1;
        for (i = 0; i < n && same; i++)
            same = c->member_ports[i] == ports[i] && strcmp(c->member_hosts[i], hosts[i]) == 0;
        if (same) {
            c->members_time = now_ms;
            return 0;   /* unchanged: same generation */
        }
    }
    h = calloc(n, sizeof *h);
    p = calloc(n, sizeof *p);
    if (!h || !p) {
        free(h);
        free(p);
        return -1;
    }
    for (i = 0; i < n; i++) {
        h[i] = asbp_strdup(hosts[i]);
        p[i] = ports[i];
        if (!h[i]) {
            while (i--)
                free(h[i]);
            free(h);
            free(p);
            return -1;
        }
    }
    clear_members(c);
    c->member_hosts = h;
    c->member_ports = p;
    c->nmembers = n;
    c->members_time = now_ms;
    c->members_gen++;
    return 0;
}

size_t asbp_cluster_member_count(const asbp_cluster *c) { return c ? c->nmembers : 0; }
unsigned long asbp_cluster_members_gen(const asbp_cluster *c) { return c ? c->members_gen : 0; }

const char *asbp_cluster_member_host(const asbp_cluster *c, size_t i)
{
    return c && i < c->nmembers ? c->member_hosts[i] : NULL;
}

int asbp_cluster_member_port(const asbp_cluster *c, size_t i)
{
    return c && i < c->nmembers ? c->member_ports[i] : 0;
}

int asbp_cluster_set_standby(asbp_cluster *c, const char *host, int port,
                             int64_t now_ms)
{
    char *h = NULL;
    if (host && !(h = asbp_strdup(host)))
        return -1;
    free(c->standby_host);
    c->standby_host = h;
    c->standby_port = h ? port : 0;
    c->standby_time = now_ms;
    c->standby_forgotten = 0;
    return 0;
}

int asbp_cluster_standby(const asbp_cluster *c, int64_t now_ms, int64_t ttl_ms,
                         const char **host, int *port)
{
    if (!c || c->standby_time < 0 || now_ms - c->standby_time >= ttl_ms)
        return -1;
    if (!c->standby_host)
        return 0;
    if (host)
        *host = c->standby_host;
    if (port)
        *port = c->standby_port;
    return 1;
}

void asbp_cluster_forget_standby(asbp_cluster *c, int64_t now_ms)
{
    if (!c)
        return;
    free(c->standby_host);
    c->standby_host = NULL;
    c->standby_port = 0;
    c->standby_time = now_ms;
    c->standby_forgotten = 1;
}

int asbp_cluster_standby_forgotten(const asbp_cluster *c)
{
    return c ? c->standby_forgotten : 0;
}

void asbp_cluster_trip(asbp_cluster *c, int64_t now_ms)
{
    if (c)
        c->last_failure = now_ms;
}

void asbp_cluster_reset_breaker(asbp_cluster *c)
{
    if (c)
        c->last_failure = -1;
}

int asbp_cluster_breaker_open(const asbp_cluster *c, int64_t now_ms,
                              int64_t delay_ms, int64_t *remaining_ms)
{
    int64_t since;
    if (!c || c->last_failure < 0)
        return 0;
    since = now_ms - c->last_failure;
    if (since < 0)
        since = 0;
    if (since >= delay_ms)
        return 0;
    if (remaining_ms)
        *remaining_ms = delay_ms - since;
    return 1;
}

int64_t asbp_cluster_last_failure(const asbp_cluster *c)
{
    return c ? c->last_failure : -1;
}

void asbp_cluster_count(asbp_cluster *c, asbp_counter which)
{
    if (!c)
        return;
    switch (which) {
    case ASBP_COUNT_DISCOVERIES:  c->stats.discoveries++;   break;
    case ASBP_COUNT_API_FAILURES: c->stats.api_failures++;  break;
    case ASBP_COUNT_TRANSITIONS:  c->stats.transitions++;   break;
    case ASBP_COUNT_FAILOVERS:    c->stats.failovers++;     break;
    case ASBP_COUNT_RETRIES:      c->stats.retries++;       break;
    case ASBP_COUNT_BREAKER_SKIPS: c->stats.breaker_skips++; break;
    }
}

void asbp_cluster_stats_get(const asbp_cluster *c, asbp_cluster_stats *out)
{
    if (c)
        *out = c->stats;
    else
        memset(out, 0, sizeof *out);
}
