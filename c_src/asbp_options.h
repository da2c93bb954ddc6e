/*
 * asbp_options: the options of a store or a class method call, as the user
 * gave them (DESIGN.md section 6), before a source resolves them.
 */
#ifndef ASBP_OPTIONS_H
#define ASBP_OPTIONS_H

#include <stdint.h>

/* Defaults, in milliseconds. */
#define ASBP_DEFAULT_CONNECT_TIMEOUT_MS   2000
#define ASBP_DEFAULT_FAILOVER_TIMEOUT_MS  4000
#define ASBP_DEFAULT_QUERY_TIMEOUT_MS     30000
#define ASBP_DEFAULT_PATRONI_TIMEOUT_MS   3000
#define ASBP_DEFAULT_PATRONI_TTL_MS       60000
#define ASBP_DEFAULT_PATRONI_BREAKER_MS   30000

/* Options as the user gave them; strings are borrowed (copied by get). */
typedef struct asbp_options {
    const char *datasource;
    const char *user;                 /* NULL or "": libpq default */
    const char *password;             /* NULL or "": none */
    const char *table;                /* NULL or "": "sessions" */
    int64_t connect_timeout_ms;       /* <= 0: default */
    int64_t failover_timeout_ms;      /* <= 0: default */
    int64_t query_timeout_ms;         /* <= 0: default */
    const char *patroni_urls;         /* comma/space separated; NULL: none */
    int64_t patroni_timeout_ms;       /* <= 0: default */
    int64_t patroni_cache_ttl_ms;     /* <= 0: default */
    int64_t patroni_breaker_ms;       /* <= 0: default */
    int patroni_verify_ssl;           /* < 0: default (1) */
    const char *patroni_ca_file;
    const char *patroni_ca_path;
    const char *patroni_cert_file;
    const char *patroni_key_file;
} asbp_options;

void asbp_options_init(asbp_options *o);

#endif
