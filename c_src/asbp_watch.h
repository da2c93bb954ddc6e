/*
 * asbp_watch: the promotion watches of a failover.
 *
 * While the cluster has no leader (a switchover or a crash in progress),
 * the failover loop does not only wait and ask the API again: it watches
 * the members it knows for a promotion, on connections of its own that ask
 * pg_is_in_recovery() every few milliseconds.  A member seen in recovery
 * and then out of it has been promoted (only Patroni promotes): the next
 * attempt goes there at once, instead of at the next API poll.  A member
 * never seen in recovery (an old leader still shutting down, or isolated)
 * is never trusted this way.
 *
 * The libpq results of the watch query are read here (PQntuples,
 * PQgetvalue, PQclear).
 */
#ifndef ASBP_WATCH_H
#define ASBP_WATCH_H

#include <stddef.h>
#include <stdint.h>

#include "asbp_cluster.h"
#include "asbp_conn.h"
#include "asbp_ctx.h"
#include "asbp_route.h"

struct asbp_watch;

typedef struct asbp_watches {
    struct asbp_watch *w;          /* owned: one per member watched */
    size_t n;                      /* 0: none open */
    unsigned long gen;             /* members generation they were made for */
} asbp_watches;

#define ASBP_WATCHES_INIT { NULL, 0, 0 }

/*
 * Opens (once per failover, again when the members changed) a plain
 * connection to every member of members whose host route->allow allows
 * (the others are never connected to), all at once, for at most 500 ms.
 * The parameters are those of route (credentials, options) with the
 * member's host and port.
 */
void asbp_watches_open(asbp_watches *ws, const asbp_route *route,
                       const asbp_cluster *members, asbp_ctx *ctx);
/*
 * Asks every open watch once.  Returns 1 when a member was seen leaving
 * recovery: *host and *port name it (valid while ws is open) and *conn is its
 * connection, now the caller's.  Else 0.
 */
int asbp_watches_poll(asbp_watches *ws, asbp_ctx *ctx, const char **host,
                      int *port, asbp_conn **conn);
/*
 * The watch connection of host:port when that member is out of recovery
 * (now the caller's), else NULL.
 */
asbp_conn *asbp_watches_take(asbp_watches *ws, asbp_ctx *ctx, const char *host, int port);
size_t asbp_watches_count(const asbp_watches *ws);
void asbp_watches_close(asbp_watches *ws);   /* closes all; stays usable */

#endif
