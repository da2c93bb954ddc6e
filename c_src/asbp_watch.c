#include "asbp_watch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct asbp_watch {
    asbp_conn *c;              /* owned, NULL when closed */
    char host[256];
    int port;
    int seen_recovery;
    int dead;                  /* could not connect: not retried this time */
};

#define MAX_WATCHES 16
#define OPEN_MS 500            /* not the caller's backoff: a watch must
                                * outlive one wait to be of any use */
#define ASK_MS 100

static const char *const recovery_sql = "SELECT pg_catalog.pg_is_in_recovery()";

void asbp_watches_close(asbp_watches *ws)
{
    size_t i;
    for (i = 0; i < ws->n; i++)
        asbp_conn_free(ws->w[i].c);
    free(ws->w);
    ws->w = NULL;
    ws->n = 0;
}

size_t asbp_watches_count(const asbp_watches *ws) { return ws->n; }

/* The parameters of one watch: the route's, aimed at the member. */
static int watch_target(const asbp_route *route, const struct asbp_watch *w,
                        char *pbuf, size_t pn, asbp_target *t, asbp_connparams *p)
{
    if (asbp_route_target(route, t) < 0)
        return -1;
    /* PatroniLeaderPort: the member is reached there (its bouncer); w->port
     * stays the API's, which names the member to the caller. */
    snprintf(pbuf, pn, "%d", route->port_override > 0 ? route->port_override : w->port);
    asbp_target_set(t, "host", w->host);
    asbp_target_set(t, "port", pbuf);
    asbp_target_set(t, "hostaddr", "");
    asbp_target_set(t, "target_session_attrs", "any");
    asbp_target_params(t, "promotion watch", p);
    return 0;
}

/* The members to watch: those whose host the route allows (at most
 * MAX_WATCHES), by index into members.  Their number. */
static size_t allowed_members(const asbp_route *route, const asbp_cluster *members,
                              size_t idx[MAX_WATCHES])
{
    size_t i, n = 0;
    for (i = 0; i < asbp_cluster_member_count(members) && n < MAX_WATCHES; i++)
        if (asbp_allow_match(route->allow, asbp_cluster_member_host(members, i)))
            idx[n++] = i;
    return n;
}

void asbp_watches_open(asbp_watches *ws, const asbp_route *route,
                       const asbp_cluster *members, asbp_ctx *ctx)
{
    size_t i, n, idx[MAX_WATCHES];
    asbp_target t[MAX_WATCHES];
    asbp_connparams p[MAX_WATCHES];
    asbp_conn *c[MAX_WATCHES];
    char pbuf[MAX_WATCHES][16];

    if (ws->n && ws->gen != asbp_cluster_members_gen(members))
        asbp_watches_close(ws);     /* the members changed since */
    if (ws->n)
        return;
    n = allowed_members(route, members, idx);
    if (!n)
        return;
    ws->w = calloc(n, sizeof *ws->w);   /* freed in asbp_watches_close */
    if (!ws->w)
        return;
    ws->n = n;
    ws->gen = asbp_cluster_members_gen(members);
    for (i = 0; i < n; i++) {
        struct asbp_watch *w = &ws->w[i];
        snprintf(w->host, sizeof w->host, "%s", asbp_cluster_member_host(members, idx[i]));
        w->port = asbp_cluster_member_port(members, idx[i]);
        if (watch_target(route, w, pbuf[i], sizeof pbuf[i], &t[i], &p[i]) < 0)
            p[i].keys = NULL;   /* as if it could not connect */
    }
    asbp_conn_open_many(p, n, asbp_ctx_clock(ctx), asbp_ctx_now(ctx) + OPEN_MS,
                        asbp_ctx_logger(ctx), c);
    for (i = 0; i < n; i++) {
        ws->w[i].c = c[i];
        ws->w[i].dead = c[i] == NULL;
        asbp_target_free(&t[i]);
    }
}

/* Asks w whether its member is in recovery: 1 yes, 0 no, -1 no answer
 * (the watch is closed when its connection failed). */
static int ask_recovery(struct asbp_watch *w, asbp_ctx *ctx, int64_t deadline_ms)
{
    /* Unnamed: behind PgBouncer in transaction pooling a named statement
     * would not outlive the first poll's transaction. */
    asbp_query q = { recovery_sql, 0, 0, NULL, NULL };
    PGresult *r = NULL;
    asbp_err e;
    int ans = -1;

    asbp_err_clear(&e);
    if (asbp_conn_pipeline(w->c, &q, 1, &r, asbp_ctx_clock(ctx), deadline_ms, NULL, &e)) {
        asbp_conn_free(w->c);
        w->c = NULL;
        return -1;
    }
    if (PQntuples(r) == 1)
        ans = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    return ans;
}

int asbp_watches_poll(asbp_watches *ws, asbp_ctx *ctx, const char **host,
                      int *port, asbp_conn **conn)
{
    int64_t now = asbp_ctx_now(ctx);
    size_t i;
    for (i = 0; i < ws->n; i++) {
        struct asbp_watch *w = &ws->w[i];
        int in_recovery;
        if (!w->c)
            continue;
        in_recovery = ask_recovery(w, ctx, now + ASK_MS);
        if (in_recovery == 1) {
            w->seen_recovery = 1;
        } else if (in_recovery == 0 && w->seen_recovery) {
            *host = w->host;
            *port = w->port;
            /* Already connected and authenticated: the retried operation
             * runs on this connection. */
            *conn = w->c;
            w->c = NULL;
            return 1;
        }
    }
    return 0;
}

asbp_conn *asbp_watches_take(asbp_watches *ws, asbp_ctx *ctx, const char *host, int port)
{
    size_t i;
    for (i = 0; i < ws->n; i++) {
        struct asbp_watch *w = &ws->w[i];
        asbp_conn *c;
        if (!w->c || w->port != port || strcmp(w->host, host) != 0)
            continue;
        if (ask_recovery(w, ctx, asbp_ctx_now(ctx) + ASK_MS) != 0)
            return NULL;   /* in recovery, or gone */
        c = w->c;
        w->c = NULL;
        return c;
    }
    return NULL;
}
