/*
 * asbp_table: the session table's name, checked and quoted for SQL, and the
 * store's statements on it, built once per source.
 */
#ifndef ASBP_TABLE_H
#define ASBP_TABLE_H

#include <stddef.h>

#include "asbp_err.h"

/* Room for the quoted form: two parts of at most 63 bytes, every byte a
 * doubled quote at worst, their quotes and the dot. */
#define ASBP_TABLE_SQL_MAX 300

/* The store's statements for a table. */
typedef enum asbp_sql_id {
    ASBP_SQL_SELECT = 0,   /* $1 id -> a_session, FOR UPDATE */
    ASBP_SQL_INSERT,       /* $1 id, $2 a_session */
    ASBP_SQL_UPDATE,       /* $1 id, $2 a_session */
    ASBP_SQL_DELETE,       /* $1 id */
    ASBP_SQL_CHECK,        /* $1 id, $2 a_session -> a_session = $2, FOR UPDATE */
    ASBP_SQL_COUNT
} asbp_sql_id;

typedef struct asbp_table {
    char *name;                       /* owned: as the user gave it */
    char quoted[ASBP_TABLE_SQL_MAX];  /* SQL form: "public"."sessions" */
    char *sql[ASBP_SQL_COUNT];        /* owned: the statements */
} asbp_table;

/*
 * Checks a table name: an identifier, optionally schema-qualified; plain
 * parts are folded to lower case (their meaning in unquoted SQL), parts in
 * double quotes are kept as they are.  Writes the quoted SQL form into out
 * (n bytes).  ASBP_E_USAGE (class REPORT) for a name that is not one.
 */
asbp_code asbp_table_quote(const char *table, char *out, size_t n, asbp_err *err);

/*
 * Fills t for the table name (quoted form and statements).  On error
 * (ASBP_E_USAGE: bad name, ASBP_E_NOMEM) t holds what was made so far:
 * asbp_table_clear it either way.
 */
asbp_code asbp_table_init(asbp_table *t, const char *name, asbp_err *err);
void asbp_table_clear(asbp_table *t);   /* frees what t owns */

#endif
