/*
 * asbp_schema: the recommended table and indexes for each kind of
 * LemonLDAP::NG session storage, created idempotently (CREATE ... IF NOT
 * EXISTS) through a source, with failover like any other operation.
 *
 * The table is LOGGED: an UNLOGGED table is not replicated, so a failover
 * would leave the new leader with no session.  An existing UNLOGGED table is
 * reported (and turned LOGGED on request).  Indexes are the expression
 * indexes LL::NG's documentation lists per kind, plus text_pattern_ops
 * variants for the fields searched by prefix (searchOnExpr), and
 * cast(... AS bigint) for the fields the purge compares.  An index is
 * found present only on its own table; index names are unique per table
 * (the first, short names are kept where they are: see asbp_schema.c).
 */
#ifndef ASBP_SCHEMA_H
#define ASBP_SCHEMA_H

#include <stddef.h>
#include "asbp_err.h"
#include "asbp_source.h"

typedef enum asbp_schema_kind {
    ASBP_SCHEMA_GLOBAL = 0,     /* SSO sessions (globalStorage) */
    ASBP_SCHEMA_PERSISTENT,     /* persistentStorage */
    ASBP_SCHEMA_SAML,
    ASBP_SCHEMA_OIDC,
    ASBP_SCHEMA_CAS,
    ASBP_SCHEMA_KIND_COUNT
} asbp_schema_kind;

/* "global", "persistent", "saml", "oidc", "cas" -> kind, or -1. */
int asbp_schema_kind_of(const char *name);
const char *asbp_schema_kind_name(asbp_schema_kind k);

typedef struct asbp_schema_item {
    char *what;       /* owned: "table" or the index name */
    char *sql;        /* owned: the statement */
    int existed;      /* it was there already */
    int done;         /* the statement ran (0 in a dry run or when it existed) */
} asbp_schema_item;

typedef struct asbp_schema_report {
    asbp_schema_item *items;   /* owned */
    size_t n;
    int table_existed;
    char persistence;          /* 'p' logged, 'u' unlogged, 't' temp, 0 unknown */
    int made_logged;           /* ALTER TABLE ... SET LOGGED ran */
} asbp_schema_report;

/*
 * Checks, and unless dry_run creates, the table and the indexes of kind
 * for the source's TableName.  With fix_unlogged an UNLOGGED table is made
 * LOGGED (it rewrites the table).  The report says what existed and what
 * was done; free it with asbp_schema_report_clear.
 */
asbp_code asbp_schema_apply(asbp_source *s, asbp_schema_kind kind, int dry_run,
                            int fix_unlogged, asbp_schema_report *rep, asbp_err *err);
void asbp_schema_report_clear(asbp_schema_report *rep);

#endif
