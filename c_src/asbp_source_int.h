/*
 * The inside of a source, shared by the modules of the failover engine
 * (asbp_source.c: options and connections; asbp_failover.c: finding the
 * leader; asbp_run.c: the retry loop).  Nothing else includes this.
 * It does not include asbp_source.h (the public side), so the include
 * graph stays a tree: the modules include both.
 */
#ifndef ASBP_SOURCE_INT_H
#define ASBP_SOURCE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "asbp_allow.h"
#include "asbp_cluster.h"
#include "asbp_conn.h"
#include "asbp_ctx.h"
#include "asbp_dsn.h"
#include "asbp_route.h"
#include "asbp_table.h"
#include "asbp_watch.h"

struct asbp_source {
    asbp_ctx *ctx;             /* borrowed: the context keeps the source */
    char *key;                 /* owned: identity of the option set */
    asbp_dsn *dsn;             /* owned */
    char *user;                /* owned, NULL: none */
    char *password;            /* owned (asbp_secret_dup), NULL: none; never printed */
    asbp_table table;          /* owned: name, SQL form, statements */
    int64_t connect_ms, failover_ms, query_ms;
    char **urls;               /* owned */
    size_t nurls;
    int64_t p_timeout_ms, p_ttl_ms, p_breaker_ms;
    int verify_ssl;
    char *ca_file, *ca_path, *cert_file, *key_file;   /* owned */
    asbp_allow *allow;         /* owned: hosts an API answer may name */
    int use_members;           /* route: add the members last seen */
    int prepared;              /* PreparedStatements (default 1) */
    int leader_port;           /* PatroniLeaderPort, 0: the API's ports */
    asbp_cluster *cluster;     /* borrowed from the context */
    asbp_route_cache route;    /* owned: pool key of the last route */
    asbp_watches watches;      /* owned: promotion watches of a failover */
};

/* The current route: the cached leader (when Patroni is used, it is
 * fresh and its host allowed) and the members when the failover asked for
 * them (the route keeps only the allowed ones). */
void asbp_source_route(const struct asbp_source *s, asbp_route *r);
/* Makes c a connection of the current route (pooled under its key):
 * 0, or -1 out of memory (c unchanged). */
int asbp_source_adopt(const struct asbp_source *s, asbp_conn *c);

#endif
