/*
 * asbp_allow: the hosts a source may connect to when a Patroni answer (or
 * a member it listed) names them (DESIGN.md section 9: an API answer
 * decides where the password goes).
 *
 * The list holds what the operator wrote: the hosts of the DataSource and
 * of the PatroniUrl endpoints, and the entries of PatroniAllowedHosts.
 * Hosts are compared as written, without DNS: a name matches a name
 * (ASCII case-insensitive), an address matches an address or a CIDR range
 * (IPv4 and IPv6 in any spelling inet_pton accepts, an IPv4-mapped IPv6
 * address being the IPv4 address), a socket path (a leading '/': a Unix
 * socket directory; a leading '@': an abstract socket) matches the same
 * path, and only when PatroniAllowedHosts lists it.  A name never matches
 * an address, even when it would resolve to it.
 *
 * Pure: no I/O, no clock, no global state.
 */
#ifndef ASBP_ALLOW_H
#define ASBP_ALLOW_H

#include <stddef.h>

#include "asbp_err.h"

typedef struct asbp_allow asbp_allow;

/* The name of the option holding the explicit list. */
#define ASBP_ALLOW_OPTION "PatroniAllowedHosts"

/* Returns a new, empty list (no host allowed), or NULL out of memory. */
asbp_allow *asbp_allow_new(void);
void asbp_allow_free(asbp_allow *a);   /* accepts NULL */

/*
 * Checks (a NULL) or adds (a not NULL) the entries of an explicit list:
 * len bytes of text, entries separated by commas or white space.  An entry
 * is a host name (letters, digits, '-', '_', '.'), an IPv4 or IPv6 address
 * (an IPv6 address may be in brackets), a CIDR range (address/prefix, no
 * bits set past the prefix), a Unix socket directory ("/path") or an
 * abstract socket ("@name").  ASBP_E_USAGE with a message naming the
 * entry and ASBP_ALLOW_OPTION on a malformed entry (nothing added then);
 * ASBP_E_NOMEM.
 */
asbp_code asbp_allow_parse(asbp_allow *a, const char *list, size_t len, asbp_err *err);

/*
 * Adds the elements of a host list the operator wrote elsewhere (a libpq
 * "host" or "hostaddr" value, comma-separated; a PatroniUrl host): each is
 * an address or a name, never refused; socket paths are skipped (they are
 * allowed only through the explicit list).  0, or -1 out of memory.
 */
int asbp_allow_add_hosts(asbp_allow *a, const char *list);

/*
 * The host of a URL ("scheme://[userinfo@]host[:port][/path]"), an IPv6
 * literal without its brackets, into buf (NUL-terminated): its length, or
 * 0 when the URL has no host or it does not fit.
 */
size_t asbp_allow_url_host(const char *url, char *buf, size_t n);

/* 1 when host (as a Patroni answer gives it) is allowed, else 0. */
int asbp_allow_match(const asbp_allow *a, const char *host);

/* The number of entries (for tests and reports). */
size_t asbp_allow_count(const asbp_allow *a);

#endif
