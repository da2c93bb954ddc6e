/*
 * asbp_options: the options of a store or a class method call, as the user
 * gave them (DESIGN.md section 6), before a source resolves them.
 *
 * The policy lives here: which names are read (and their aliases), how a
 * value is parsed (seconds, truth), which options are refused, and the
 * messages for bad values.  A caller (the XS glue) only walks the names
 * below in their order and hands over each value as text.
 */
#ifndef ASBP_OPTIONS_H
#define ASBP_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#include "asbp_err.h"

/* Defaults, in milliseconds. */
#define ASBP_DEFAULT_CONNECT_TIMEOUT_MS   2000
#define ASBP_DEFAULT_FAILOVER_TIMEOUT_MS  4000
#define ASBP_DEFAULT_QUERY_TIMEOUT_MS     30000
#define ASBP_DEFAULT_PATRONI_TIMEOUT_MS   3000
#define ASBP_DEFAULT_PATRONI_TTL_MS       60000
#define ASBP_DEFAULT_PATRONI_BREAKER_MS   30000

/* The largest value of an option in seconds. */
#define ASBP_OPTION_MAX_SECONDS 86400

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
    const char *patroni_allowed_hosts; /* checked (asbp_allow.h); NULL: none */
    int64_t patroni_timeout_ms;       /* <= 0: default */
    int64_t patroni_cache_ttl_ms;     /* <= 0: default */
    int64_t patroni_breaker_ms;       /* <= 0: default */
    int patroni_verify_ssl;           /* < 0: default (1) */
    const char *patroni_ca_file;
    const char *patroni_ca_path;
    const char *patroni_cert_file;
    const char *patroni_key_file;
    int commit;                       /* < 0: default (1); a store's COMMIT */
    int prepared_statements;          /* < 0: default (1); 0: no named
                                       * prepared statement (PgBouncer's
                                       * transaction pooling) */
    int patroni_leader_port;          /* 0: the port the API gives; else the
                                       * port of the leader and members
                                       * (PgBouncer on every node) */
} asbp_options;

void asbp_options_init(asbp_options *o);

/*
 * The option names read, by index (0 <= i < asbp_options_count()), in the
 * order they are checked: a caller that sets them in this order reports
 * the same first error for the same options.  *len (when not NULL) gets
 * the name's length.  NULL past the end.
 */
size_t asbp_options_count(void);
const char *asbp_options_name(size_t i, size_t *len);

/*
 * Sets option i from its value: value is NULL when the option is present
 * but has no value (Perl's undef), else text of len bytes followed by a
 * NUL.  Options taking a string keep the pointer (borrowed: the caller
 * keeps the text alive until the options are used); others parse it now.
 *   - a string: as given (an alias is used only when its main name is not);
 *   - seconds: a decimal number (fraction, exponent, surrounding spaces
 *     allowed, as Perl's numbers), from 0 to ASBP_OPTION_MAX_SECONDS,
 *     kept in milliseconds (rounded);
 *   - truth: false for "" and "0", true otherwise (as Perl's);
 *   - a port (PatroniLeaderPort): an integer from 1 to 65535 (spaces
 *     around allowed), or 0 / "" for the default;
 *   - a host list (PatroniAllowedHosts): a string, its entries checked now
 *     (asbp_allow_parse);
 *   - refused (Handle): an error, with or without a value.
 * An undefined value leaves the option at its default.  ASBP_E_USAGE with
 * the message for the user on a bad value; the option is left unchanged.
 */
asbp_code asbp_options_set_at(asbp_options *o, size_t i, const char *value,
                              size_t len, asbp_err *err);

/* The same by name (exact, case-sensitive); an unknown name is ignored
 * (ASBP_OK), as other modules' options are. */
asbp_code asbp_options_set(asbp_options *o, const char *key, const char *value,
                           size_t len, asbp_err *err);

#endif
