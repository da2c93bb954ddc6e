#include "asbp_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void asbp_err_clear(asbp_err *e)
{
    if (!e)
        return;
    e->code = ASBP_OK;
    e->eclass = ASBP_EC_NONE;
    e->sqlstate[0] = '\0';
    e->curl_code = 0;
    e->msg[0] = '\0';
}

asbp_code asbp_err_set(asbp_err *e, asbp_code code, asbp_eclass ec,
                       const char *fmt, ...)
{
    va_list ap;
    if (!e)
        return code;
    e->code = code;
    e->eclass = ec;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

void asbp_err_prefix(asbp_err *e, const char *fmt, ...)
{
    char head[ASBP_ERR_MSG_MAX];
    char old[ASBP_ERR_MSG_MAX];
    va_list ap;
    if (!e)
        return;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    {
        /* head, then ": " and the old message, cut to the buffer. */
        size_t cap = sizeof e->msg - 1, n = strlen(head), m;
        if (n > cap)
            n = cap;
        memcpy(e->msg, head, n);
        if (old[0] && n + 2 <= cap) {
            memcpy(e->msg + n, ": ", 2);
            n += 2;
            m = strlen(old);
            if (m > cap - n)
                m = cap - n;
            memcpy(e->msg + n, old, m);
            n += m;
        }
        e->msg[n] = '\0';
    }
}

asbp_eclass asbp_classify_sqlstate(const char *s, int connection_lost)
{
    if (connection_lost)
        return ASBP_EC_FAILOVER;
    if (!s || strlen(s) != 5)
        return ASBP_EC_REPORT;
    /* Class 08: connection exception. */
    if (s[0] == '0' && s[1] == '8')
        return ASBP_EC_FAILOVER;
    /* admin_shutdown, crash_shutdown, cannot_connect_now. */
    if (!strcmp(s, "57P01") || !strcmp(s, "57P02") || !strcmp(s, "57P03"))
        return ASBP_EC_FAILOVER;
    /* read_only_sql_transaction: a replica or a demoted leader. */
    if (!strcmp(s, "25006"))
        return ASBP_EC_FAILOVER;
    /* too_many_connections, serialization_failure, deadlock_detected. */
    if (!strcmp(s, "53300") || !strcmp(s, "40001") || !strcmp(s, "40P01"))
        return ASBP_EC_RETRY;
    return ASBP_EC_REPORT;
}

const char *asbp_code_name(asbp_code c)
{
    switch (c) {
    case ASBP_OK: return "ok";
    case ASBP_E_USAGE: return "usage";
    case ASBP_E_DSN: return "datasource";
    case ASBP_E_NOMEM: return "out of memory";
    case ASBP_E_CONNECT: return "connect";
    case ASBP_E_QUERY: return "query";
    case ASBP_E_IO: return "connection lost";
    case ASBP_E_TIMEOUT: return "timeout";
    case ASBP_E_NOTFOUND: return "not found";
    case ASBP_E_DISCOVERY: return "discovery";
    case ASBP_E_ABORTED: return "aborted";
    }
    return "unknown";
}

const char *asbp_eclass_name(asbp_eclass c)
{
    switch (c) {
    case ASBP_EC_NONE: return "none";
    case ASBP_EC_FAILOVER: return "failover";
    case ASBP_EC_RETRY: return "retry";
    case ASBP_EC_REPORT: return "report";
    }
    return "unknown";
}
