/*
 * Fuzz target: a Patroni GET /cluster answer (asbp_patroni_parse) and
 * leader selection on what it returns (asbp_topology_leader).
 *
 * The input is the HTTP body as received: arbitrary bytes, not
 * NUL-terminated, up to a little over ASBP_PATRONI_MAX_BODY (run with
 * -max_len=1100000 to cover the size limit).
 *
 * Properties checked besides memory safety (ASan, UBSan):
 * - an error leaves *out NULL, has code DISCOVERY (or NOMEM), a non-empty
 *   one-line message without control characters;
 * - a success returns at most ASBP_PATRONI_MAX_MEMBERS members whose
 *   strings have no control characters, whose host is sane (non-empty,
 *   <= 255 bytes, no comma, no space) and whose port is 0 or 1..65535;
 * - leader selection agrees with a plain count of "leader" roles.
 */
#include "fuzz_common.h"
#include "asbp_patroni.h"

static void check_str(const char *s)
{
    if (s)
        FUZZ_CHECK(!fuzz_has_controls(s));
}

static int fuzz_patroni_one(const uint8_t *data, size_t size)
{
    asbp_topology *t = (asbp_topology *)&t;   /* must be overwritten */
    const asbp_member *leader = (const asbp_member *)&t;
    asbp_leader_status ls;
    asbp_err err;
    asbp_code rc;
    size_t i, leaders = 0;

    asbp_err_clear(&err);
    rc = asbp_patroni_parse((const char *)data, size, &t, &err);
    if (rc != ASBP_OK) {
        FUZZ_CHECK(t == NULL);
        FUZZ_CHECK(rc == ASBP_E_DISCOVERY || rc == ASBP_E_NOMEM);
        FUZZ_CHECK(err.code == rc);
        FUZZ_CHECK(memchr(err.msg, '\0', sizeof err.msg) != NULL);
        FUZZ_CHECK(err.msg[0] != '\0');
        FUZZ_CHECK(!fuzz_has_controls(err.msg));
        FUZZ_CHECK(asbp_topology_leader(NULL, &leader) == ASBP_LEADER_NONE);
        FUZZ_CHECK(leader == NULL);
        return 0;
    }
    FUZZ_CHECK(t != NULL);
    FUZZ_CHECK(size <= ASBP_PATRONI_MAX_BODY);
    FUZZ_CHECK(t->n <= ASBP_PATRONI_MAX_MEMBERS);
    FUZZ_CHECK(t->n == 0 || t->members != NULL);
    for (i = 0; i < t->n; i++) {
        const asbp_member *m = &t->members[i];
        check_str(m->name);
        check_str(m->role);
        check_str(m->state);
        check_str(m->api_url);
        if (m->host) {
            size_t hl = strlen(m->host);
            FUZZ_CHECK(hl >= 1 && hl <= 255);
            FUZZ_CHECK(strpbrk(m->host, ", ") == NULL);
            check_str(m->host);
        }
        FUZZ_CHECK(m->port >= 0 && m->port <= 65535);
        if (m->role && strcmp(m->role, "leader") == 0)
            leaders++;
    }

    ls = asbp_topology_leader(t, &leader);
    switch (ls) {
    case ASBP_LEADER_NONE:
        FUZZ_CHECK(leaders == 0);
        FUZZ_CHECK(leader == NULL);
        break;
    case ASBP_LEADER_MULTIPLE:
        FUZZ_CHECK(leaders > 1);
        FUZZ_CHECK(leader == NULL);
        break;
    case ASBP_LEADER_OK:
        FUZZ_CHECK(leaders == 1);
        FUZZ_CHECK(leader && leader->host && leader->port > 0);
        FUZZ_CHECK(!leader->state || strcmp(leader->state, "running") == 0);
        break;
    case ASBP_LEADER_BAD_ADDRESS:
        FUZZ_CHECK(leaders == 1);
        FUZZ_CHECK(leader && (!leader->host || leader->port == 0));
        break;
    case ASBP_LEADER_NOT_RUNNING:
        FUZZ_CHECK(leaders == 1);
        FUZZ_CHECK(leader && leader->host && leader->port > 0);
        FUZZ_CHECK(leader->state && strcmp(leader->state, "running") != 0);
        break;
    default:
        FUZZ_CHECK(!"unknown leader status");
    }
    if (leader)
        FUZZ_CHECK(leader >= t->members && leader < t->members + t->n);
    FUZZ_CHECK(strcmp(asbp_leader_status_name(ls), "unknown") != 0);
    asbp_topology_free(t);
    return 0;
}

#ifndef FUZZ_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_patroni_one(data, size);
}
#endif
