/*
 * asbp_discovery: asks every Patroni REST endpoint for /cluster at once
 * (libcurl multi interface) under one overall deadline, and tells where the
 * leader is (DESIGN.md section 3).
 *
 * - The first valid answer is used as soon as it is known, however the
 *   other endpoints behave (refusing, hanging, trickling bytes), except
 *   that answers already in (or arriving within ASBP_DISCOVERY_GRACE_MS of
 *   the first valid one) are compared: endpoints naming different leaders
 *   are refused (split brain or a stale view).  Among answers that arrive
 *   together, the endpoint listed first wins.
 * - An answer counts as valid when: HTTP 200, body at most 1 MiB, parsable
 *   by asbp_patroni_parse.  A valid answer whose leader selection is not OK
 *   is a cluster in transition (no leader yet, leader not running) or a bad
 *   leader address: it does not make the API "failed".
 * - TLS: peer and host verification on unless verify_ssl is 0; CA file or
 *   directory; client certificate and key.
 * - Every problem is logged through the logger, naming the endpoint with
 *   any credentials in its URL masked, with the upstream wording:
 *   "No leader found", "Leader missing host or port", "Leader not in
 *   running state", "Multiple leaders detected", "Bad response from".
 */
#ifndef ASBP_DISCOVERY_H
#define ASBP_DISCOVERY_H

#include <stddef.h>
#include <stdint.h>

#include "asbp_clock.h"
#include "asbp_err.h"
#include "asbp_log.h"
#include "asbp_patroni.h"

#define ASBP_DISCOVERY_GRACE_MS 20

/* What one endpoint did in a round (for the operator tool's metrics). */
typedef struct asbp_endpoint_result {
    char endpoint[512];        /* the URL, masked */
    int finished;              /* its transfer ended (an answer, an error, a
                                  refusal) before the round's end: not by
                                  the timeout */
    int valid;                 /* a valid answer (HTTP 200, parsable) */
    int64_t elapsed_us;        /* the transfer's whole time (libcurl's total
                                  time), -1 when not finished */
} asbp_endpoint_result;

typedef struct asbp_discovery_cfg {
    const char *const *urls;   /* endpoints, preferred first */
    size_t n_urls;
    int64_t timeout_ms;        /* PatroniTimeout, also capped by deadline */
    int verify_ssl;            /* 0: no peer/host verification */
    const char *ca_file;       /* NULL: system default */
    const char *ca_path;
    const char *cert_file;     /* client certificate (PEM), or NULL */
    const char *key_file;      /* client key (PEM), or NULL */
    int wait_all;              /* 1: wait for every endpoint (until the
                                  round's end) instead of stopping
                                  ASBP_DISCOVERY_GRACE_MS after the first
                                  valid answer; the decision is the same */
    asbp_endpoint_result *per_endpoint; /* NULL, or n_urls entries (the
                                  caller's) filled in URL order */
} asbp_discovery_cfg;

typedef enum asbp_disc_outcome {
    ASBP_DISC_LEADER = 0,      /* a usable leader: leader_host/port set */
    ASBP_DISC_TRANSITION,      /* valid answer(s), no usable leader yet */
    ASBP_DISC_SPLIT,           /* endpoints name different leaders */
    ASBP_DISC_FAILED           /* no endpoint gave a valid answer */
} asbp_disc_outcome;

typedef struct asbp_discovery_result {
    asbp_disc_outcome outcome;
    char leader_host[256];
    int leader_port;
    char endpoint[512];          /* the answer used (masked URL), or "" */
    asbp_topology *topology;     /* owned: members of the answer used (also
                                    for TRANSITION), NULL when none */
    size_t answered;             /* endpoints that gave a valid answer */
    size_t requests;             /* requests started */
    int64_t elapsed_ms;
} asbp_discovery_result;

/* Masks the credentials of a URL ("user:***@", or "***@" for a user name
 * alone, often a token); control characters become '?'.  Writes into buf
 * (size n), returns buf. */
char *asbp_url_mask(const char *url, char *buf, size_t n);

/*
 * Runs one discovery round.  Returns ASBP_OK whatever the outcome (see
 * res->outcome; for FAILED err also holds a summary and, when one applies,
 * the libcurl code of the first endpoint that had one), or an error for a
 * local failure (no memory, libcurl unusable, no endpoint configured,
 * ASBP_E_TIMEOUT when the deadline has already passed: the API was not
 * asked).  deadline_ms is an absolute time on clk; the round ends by
 * min(now + cfg->timeout_ms, deadline_ms); a value <= 0 (deadline_ms or
 * timeout_ms) means "none", and at least one is required.
 * res is overwritten (clear it first if it owns a topology).
 * The caller must have called curl_global_init(CURL_GLOBAL_DEFAULT) once
 * in the process.  Proxies from the environment are never used.
 */
asbp_code asbp_discover(const asbp_discovery_cfg *cfg, const asbp_clock *clk,
                        int64_t deadline_ms, const asbp_logger *lg,
                        asbp_discovery_result *res, asbp_err *err);

/* Releases what a result owns; the result may be reused. */
void asbp_discovery_result_clear(asbp_discovery_result *res);

#endif
