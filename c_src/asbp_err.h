/*
 * asbp_err: the error record every C core function fills.
 *
 * A function of the core returns ASBP_OK (0) or another asbp_code, and
 * leaves the details in a caller-owned asbp_err: a message written for an
 * operator (never containing a password), the SQLSTATE reported by
 * PostgreSQL when there is one, the libcurl code when there is one, and the
 * class that tells the caller what to do next (DESIGN.md section 5).
 */
#ifndef ASBP_ERR_H
#define ASBP_ERR_H

#include <stddef.h>

typedef enum asbp_code {
    ASBP_OK = 0,
    ASBP_E_USAGE,      /* bad argument or option value */
    ASBP_E_DSN,        /* DataSource cannot be parsed */
    ASBP_E_NOMEM,      /* allocation failed */
    ASBP_E_CONNECT,    /* no connection could be opened */
    ASBP_E_QUERY,      /* the server reported an error for a statement */
    ASBP_E_IO,         /* connection lost or protocol error mid-statement */
    ASBP_E_TIMEOUT,    /* a deadline passed */
    ASBP_E_NOTFOUND,   /* materialize: no row with that id */
    ASBP_E_DISCOVERY,  /* Patroni API gave no usable leader */
    ASBP_E_ABORTED     /* stopped on request (a caller's callback) */
} asbp_code;

/* What the caller should do about an error. */
typedef enum asbp_eclass {
    ASBP_EC_NONE = 0,
    ASBP_EC_FAILOVER,  /* wrong node or no node: discover, reconnect, retry */
    ASBP_EC_RETRY,     /* transient on this node: retry on the same node */
    ASBP_EC_REPORT     /* report at once */
} asbp_eclass;

#define ASBP_ERR_MSG_MAX 1024

typedef struct asbp_err {
    asbp_code code;
    asbp_eclass eclass;
    char sqlstate[6];        /* "" when none */
    int curl_code;           /* 0 when none */
    char msg[ASBP_ERR_MSG_MAX];
} asbp_err;

void asbp_err_clear(asbp_err *e);

/* Sets code, class and a printf-formatted message; returns code. */
asbp_code asbp_err_set(asbp_err *e, asbp_code code, asbp_eclass ec,
                       const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* Prepends "prefix: " to the current message (context added by callers). */
void asbp_err_prefix(asbp_err *e, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/*
 * Class of a PostgreSQL error.  sqlstate may be NULL or "" (none known);
 * connection_lost is non-zero when the connection is unusable afterwards
 * (CONNECTION_BAD, or a fatal error that carried no SQLSTATE).
 */
asbp_eclass asbp_classify_sqlstate(const char *sqlstate, int connection_lost);

const char *asbp_code_name(asbp_code c);
const char *asbp_eclass_name(asbp_eclass c);

#endif
