#include "asbp_schema.h"
#include "asbp_buf.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum ixtype { IX_TEXT, IX_PREFIX, IX_BIGINT } ixtype;

typedef struct ixdef {
    const char *field;
    ixtype type;
} ixdef;

/* From LL::NG's documentation of the PgJSON backend, per storage, plus the
 * prefix (text_pattern_ops) variants for what the manager searches with
 * wildcards and the bigint casts the purge compares. */
static const ixdef IX_GLOBAL[] = {
    { "_whatToTrace", IX_TEXT }, { "_whatToTrace", IX_PREFIX },
    { "_session_kind", IX_TEXT }, { "_utime", IX_BIGINT }, { "_lastSeen", IX_BIGINT },
    { "ipAddr", IX_TEXT }, { "_httpSessionType", IX_TEXT }, { "user", IX_TEXT },
    { NULL, IX_TEXT }
};
static const ixdef IX_PERSISTENT[] = {
    { "_session_kind", IX_TEXT }, { "_httpSessionType", IX_TEXT },
    { "_session_uid", IX_TEXT }, { "_session_uid", IX_PREFIX }, { "ipAddr", IX_TEXT },
    { "_whatToTrace", IX_TEXT }, { "_whatToTrace", IX_PREFIX },
    { NULL, IX_TEXT }
};
static const ixdef IX_SAML[] = {
    { "_session_kind", IX_TEXT }, { "_utime", IX_BIGINT }, { "ProxyID", IX_TEXT },
    { "_nameID", IX_TEXT }, { "_assert_id", IX_TEXT }, { "_art_id", IX_TEXT },
    { "_saml_id", IX_TEXT },
    { NULL, IX_TEXT }
};
static const ixdef IX_OIDC[] = {
    { "_session_kind", IX_TEXT }, { "_utime", IX_BIGINT },
    { NULL, IX_TEXT }
};
static const ixdef IX_CAS[] = {
    { "_session_kind", IX_TEXT }, { "_utime", IX_BIGINT }, { "_cas_id", IX_TEXT },
    { "pgtIou", IX_TEXT },
    { NULL, IX_TEXT }
};
static const ixdef *const IX[ASBP_SCHEMA_KIND_COUNT] = {
    IX_GLOBAL, IX_PERSISTENT, IX_SAML, IX_OIDC, IX_CAS
};
static const char *const KIND_NAMES[ASBP_SCHEMA_KIND_COUNT] = {
    "global", "persistent", "saml", "oidc", "cas"
};

int asbp_schema_kind_of(const char *name)
{
    int i;
    for (i = 0; name && i < ASBP_SCHEMA_KIND_COUNT; i++)
        if (strcmp(name, KIND_NAMES[i]) == 0)
            return i;
    return -1;
}

const char *asbp_schema_kind_name(asbp_schema_kind k)
{
    return (int)k >= 0 && k < ASBP_SCHEMA_KIND_COUNT ? KIND_NAMES[k] : "?";
}

void asbp_schema_report_clear(asbp_schema_report *rep)
{
    size_t i;
    for (i = 0; i < rep->n; i++) {
        free(rep->items[i].what);
        free(rep->items[i].sql);
    }
    free(rep->items);
    memset(rep, 0, sizeof *rep);
}

static int add_item(asbp_schema_report *rep, const char *what, char *sql)
{
    asbp_schema_item *n = realloc(rep->items, (rep->n + 1) * sizeof *n);
    if (!n) {
        free(sql);
        return -1;
    }
    rep->items = n;
    memset(&rep->items[rep->n], 0, sizeof rep->items[rep->n]);
    rep->items[rep->n].what = asbp_strdup(what);
    rep->items[rep->n].sql = sql;
    if (!rep->items[rep->n].what) {
        free(sql);
        return -1;
    }
    rep->n++;
    return 0;
}

/*
 * Splits the quoted table ("s"."t" or "t") into the schema prefix ("s".
 * or "") and the bare table name t (unquoted, for building index names).
 */
static void split_table(const char *table_sql, char *schema, size_t ns,
                        char *bare, size_t nb)
{
    const char *dot = NULL, *p;
    int inq = 0;
    size_t j = 0;
    for (p = table_sql; *p; p++) {
        if (*p == '"')
            inq = !inq;
        else if (*p == '.' && !inq)
            dot = p;
    }
    if (dot)
        snprintf(schema, ns, "%.*s.", (int)(dot - table_sql), table_sql);
    else
        schema[0] = '\0';
    p = dot ? dot + 1 : table_sql;
    for (; *p && j + 1 < nb; p++) {
        if (*p == '"')
            continue;
        bare[j++] = (char)(isalnum((unsigned char)*p) ? tolower((unsigned char)*p) : '_');
    }
    bare[j] = '\0';
}

static void index_name(const char *bare, const ixdef *d, char *out, size_t n)
{
    char f[64];
    size_t i, j = 0;
    const char *suffix = d->type == IX_PREFIX ? "_prefix" : d->type == IX_BIGINT ? "_int" : "";
    for (i = 0; d->field[i] && j + 1 < sizeof f; i++)
        f[j++] = (char)(isalnum((unsigned char)d->field[i]) ? tolower((unsigned char)d->field[i]) : '_');
    f[j] = '\0';
    /* identifiers are at most 63 bytes */
    snprintf(out, n, "%.30s_%.22s%s_idx", bare, f, suffix);
}

/* ---- running statements through the source ---------------------------- */

typedef struct run_args {
    asbp_source *src;
    const char *sql;
    int nparams;
    const char *const *values;
    PGresult *res;     /* out, owned by the caller once set */
} run_args;

static asbp_code attempt(void *ud, asbp_conn *c, asbp_err *err)
{
    run_args *a = ud;
    asbp_query q = { a->sql, 0, a->nparams, a->values, NULL };
    asbp_ctx *ctx = asbp_source_ctx(a->src);
    asbp_code rc;
    rc = asbp_conn_settle(c, asbp_ctx_clock(ctx), asbp_ctx_now(ctx) + 5000, err);
    if (rc)
        return rc;
    return asbp_conn_pipeline(c, &q, 1, &a->res, asbp_ctx_clock(ctx),
                              asbp_ctx_now(ctx) + asbp_source_query_timeout(a->src), NULL, err);
}

static asbp_code run(asbp_source *s, asbp_conn **conn, const char *sql, int np,
                     const char *const *values, PGresult **res, asbp_err *err)
{
    run_args a = { s, sql, np, values, NULL };
    asbp_code rc = asbp_source_run(s, conn, asbp_ctx_now(asbp_source_ctx(s)), attempt, &a, err);
    if (res)
        *res = a.res;
    else
        PQclear(a.res);
    return rc;
}

static asbp_code nomem(asbp_err *err)
{
    return asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT, "out of memory");
}

/* Runs the SQL of the report's last item (unless dry_run) and says so. */
static asbp_code apply_last(asbp_source *s, asbp_conn **conn, int dry_run,
                            asbp_schema_report *rep, asbp_err *err)
{
    asbp_code rc;
    if (dry_run)
        return ASBP_OK;
    rc = run(s, conn, rep->items[rep->n - 1].sql, 0, NULL, NULL, err);
    if (rc == ASBP_OK)
        rep->items[rep->n - 1].done = 1;
    return rc;
}

/* The table: created when missing, made logged when asked to. */
static asbp_code apply_table(asbp_source *s, asbp_conn **conn, int dry_run,
                             int fix_unlogged, asbp_schema_report *rep, asbp_err *err)
{
    const char *table = asbp_source_table_sql(s);
    asbp_buf b = ASBP_BUF_INIT;
    PGresult *r = NULL;
    const char *pv[1];
    asbp_code rc;

    pv[0] = table;
    rc = run(s, conn, "SELECT c.relpersistence FROM pg_catalog.pg_class c "
             "WHERE c.oid = pg_catalog.to_regclass($1)", 1, pv, &r, err);
    if (rc)
        return rc;
    rep->table_existed = PQntuples(r) == 1;
    rep->persistence = rep->table_existed ? PQgetvalue(r, 0, 0)[0] : 0;
    PQclear(r);
    asbp_buf_printf(&b, "CREATE TABLE IF NOT EXISTS %s (id varchar(64) NOT NULL PRIMARY KEY, "
                    "a_session jsonb)", table);
    if (add_item(rep, "table", asbp_buf_steal(&b)) < 0)
        return nomem(err);
    rep->items[rep->n - 1].existed = rep->table_existed;
    if (!rep->table_existed && !dry_run) {
        rc = apply_last(s, conn, dry_run, rep, err);
        if (rc)
            return rc;
        rep->persistence = 'p';
    }
    if (rep->persistence == 'u' && fix_unlogged) {
        asbp_buf_printf(&b, "ALTER TABLE %s SET LOGGED", table);
        if (add_item(rep, "logged", asbp_buf_steal(&b)) < 0)
            return nomem(err);
        if (!dry_run) {
            rc = apply_last(s, conn, dry_run, rep, err);
            if (rc)
                return rc;
            rep->made_logged = 1;
            rep->persistence = 'p';
        }
    }
    return ASBP_OK;
}

/* The indexes of kind (their names are ours, built from fixed field names). */
static asbp_code apply_indexes(asbp_source *s, asbp_conn **conn, asbp_schema_kind kind,
                               int dry_run, asbp_schema_report *rep, asbp_err *err)
{
    char schema[300], bare[128], name[96], reg[400];
    const char *table = asbp_source_table_sql(s);
    const ixdef *d;
    asbp_buf b = ASBP_BUF_INIT;
    const char *pv[1];
    asbp_code rc;

    split_table(table, schema, sizeof schema, bare, sizeof bare);
    for (d = IX[kind]; d->field; d++) {
        const char *expr_fmt = d->type == IX_BIGINT ? "(CAST(a_session ->> '%s' AS bigint))"
                             : d->type == IX_PREFIX ? "(a_session ->> '%s') text_pattern_ops"
                             : "(a_session ->> '%s')";
        index_name(bare, d, name, sizeof name);
        snprintf(reg, sizeof reg, "%s\"%s\"", schema, name);
        asbp_buf_printf(&b, "CREATE INDEX IF NOT EXISTS \"%s\" ON %s (", name, table);
        asbp_buf_printf(&b, expr_fmt, d->field);
        asbp_buf_puts(&b, ")");
        if (add_item(rep, name, asbp_buf_steal(&b)) < 0)
            return nomem(err);
        if (rep->table_existed) {
            PGresult *r = NULL;
            pv[0] = reg;
            rc = run(s, conn, "SELECT pg_catalog.to_regclass($1) IS NOT NULL", 1, pv, &r, err);
            if (rc)
                return rc;
            rep->items[rep->n - 1].existed = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
            PQclear(r);
        }
        if (!rep->items[rep->n - 1].existed && (rep->table_existed || rep->items[0].done)) {
            rc = apply_last(s, conn, dry_run, rep, err);
            if (rc)
                return rc;
        }
    }
    return ASBP_OK;
}

asbp_code asbp_schema_apply(asbp_source *s, asbp_schema_kind kind, int dry_run,
                            int fix_unlogged, asbp_schema_report *rep, asbp_err *err)
{
    asbp_conn *conn = NULL;
    asbp_code rc;

    memset(rep, 0, sizeof *rep);
    if ((int)kind < 0 || kind >= ASBP_SCHEMA_KIND_COUNT)
        return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT, "unknown session kind");
    rc = apply_table(s, &conn, dry_run, fix_unlogged, rep, err);
    if (rc == ASBP_OK)
        rc = apply_indexes(s, &conn, kind, dry_run, rep, err);
    if (conn)
        asbp_source_release(s, conn);
    return rc;
}
