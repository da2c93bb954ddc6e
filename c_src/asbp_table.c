#include "asbp_table.h"
#include "asbp_buf.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IDENT 63   /* PostgreSQL's NAMEDATALEN - 1 */

static int ident_start(unsigned char c) { return isalpha(c) || c == '_' || c >= 0x80; }
static int ident_char(unsigned char c) { return isalnum(c) || c == '_' || c == '$' || c >= 0x80; }

/* A part in double quotes (p after the opening quote): copied with its
 * doubled quotes.  Returns the end (after the closing quote), NULL when
 * unterminated; *len is its length in bytes (a doubled quote counts 1). */
static const char *quoted_part(const char *p, asbp_buf *b, size_t *len)
{
    for (;;) {
        if (!*p)
            return NULL;
        if (*p == '"') {
            if (p[1] != '"')
                return p + 1;
            asbp_buf_puts(b, "\"\"");
            p += 2;
        } else {
            asbp_buf_append(b, p, 1);
            p++;
        }
        (*len)++;
    }
}

/* A plain part: folded to lower case.  NULL when it does not start as an
 * identifier. */
static const char *plain_part(const char *p, asbp_buf *b, size_t *len)
{
    if (!ident_start((unsigned char)*p))
        return NULL;
    while (*p && ident_char((unsigned char)*p)) {
        char c = (char)tolower((unsigned char)*p);
        asbp_buf_append(b, &c, 1);
        p++;
        (*len)++;
    }
    return p;
}

/* Appends every part in quotes, "." between them; 0 when well-formed. */
static int quote_parts(const char *p, asbp_buf *b)
{
    int parts = 0;
    while (*p) {
        size_t len = 0;
        if (parts == 2)
            return -1;
        asbp_buf_puts(b, parts ? ".\"" : "\"");
        p = *p == '"' ? quoted_part(p + 1, b, &len) : plain_part(p, b, &len);
        if (!p || len == 0 || len > MAX_IDENT)
            return -1;
        asbp_buf_puts(b, "\"");
        parts++;
        if (*p == '.') {
            p++;
            if (!*p)
                return -1;
        } else if (*p) {
            return -1;
        }
    }
    return 0;
}

asbp_code asbp_table_quote(const char *table, char *out, size_t n, asbp_err *err)
{
    asbp_buf b = ASBP_BUF_INIT;
    int ok;

    if (!table || !*table)
        return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT, "TableName is empty");
    ok = quote_parts(table, &b) == 0 && b.data && b.len < n;
    if (ok)
        memcpy(out, b.data, b.len + 1);
    asbp_buf_free(&b);
    if (ok)
        return ASBP_OK;
    return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                        "Invalid TableName '%.200s': expected an identifier, "
                        "optionally schema-qualified (schema.table), each part "
                        "plain (letters, digits, _, $) or in double quotes, at "
                        "most 63 characters", table);
}

asbp_code asbp_table_init(asbp_table *t, const char *name, asbp_err *err)
{
    static const char *const fmt[ASBP_SQL_COUNT] = {
        "SELECT a_session FROM %s WHERE id = $1 FOR UPDATE",
        "INSERT INTO %s (id, a_session) VALUES ($1, $2)",
        "UPDATE %s SET a_session = $2 WHERE id = $1",
        "DELETE FROM %s WHERE id = $1",
        "SELECT a_session::jsonb = $2::jsonb FROM %s WHERE id = $1 FOR UPDATE",
    };
    asbp_code rc;
    size_t i;

    memset(t, 0, sizeof *t);
    rc = asbp_table_quote(name, t->quoted, sizeof t->quoted, err);
    if (rc)
        return rc;
    for (i = 0; i < ASBP_SQL_COUNT; i++) {
        asbp_buf b = ASBP_BUF_INIT;
        if (asbp_buf_printf(&b, fmt[i], t->quoted) < 0)
            return asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT, "out of memory");
        t->sql[i] = asbp_buf_steal(&b);   /* freed in asbp_table_clear */
    }
    t->name = asbp_strdup(name);          /* freed in asbp_table_clear */
    if (!t->name)
        return asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT, "out of memory");
    return ASBP_OK;
}

void asbp_table_clear(asbp_table *t)
{
    size_t i;
    free(t->name);
    t->name = NULL;
    for (i = 0; i < ASBP_SQL_COUNT; i++) {
        free(t->sql[i]);
        t->sql[i] = NULL;
    }
}
