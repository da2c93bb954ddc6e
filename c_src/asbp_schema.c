#include "asbp_schema.h"
#include "asbp_buf.h"

#include <ctype.h>
#include <stdint.h>
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
 * Index names.  The first names were the table name (lower case, other
 * characters as '_') cut to 30 characters, the field and a suffix:
 * "sessions__whattotrace_idx".  They are kept where the table has them
 * (existing deployments), and for a new index when the table name was not
 * cut and no other relation uses the name.  Otherwise the index gets a
 * name unique per table: 20 characters of it, a hash of the table's quoted name,
 * the field and the suffix ("a_very_long_table_na_1f2e3d4c__whattotrace_idx",
 * at most 63 bytes, PostgreSQL's limit).
 */
typedef struct tname {
    char bare[128];      /* table name as index names use it */
    unsigned long hash;  /* FNV-1a of the quoted table name (without schema) */
} tname;

#define OLD_NAME_MAX 30  /* table characters in an old index name */

/* The table's part of index names, from the quoted table ("s"."t" or "t"). */
static void split_table(const char *table_sql, tname *t)
{
    const char *dot = NULL, *p;
    uint32_t h = 2166136261u;
    int inq = 0;
    size_t j = 0;
    for (p = table_sql; *p; p++) {
        if (*p == '"')
            inq = !inq;
        else if (*p == '.' && !inq)
            dot = p;
    }
    for (p = dot ? dot + 1 : table_sql; *p; p++) {
        h = (h ^ (unsigned char)*p) * 16777619u;
        if (*p != '"' && j + 1 < sizeof t->bare)
            t->bare[j++] = (char)(isalnum((unsigned char)*p) ? tolower((unsigned char)*p) : '_');
    }
    t->bare[j] = '\0';
    t->hash = h;
}

/* The old name (unique == 0) or the name unique per table (unique == 1). */
static void index_name(const tname *t, const ixdef *d, int unique, char *out, size_t n)
{
    char f[64];
    size_t i, j = 0;
    const char *suffix = d->type == IX_PREFIX ? "_prefix" : d->type == IX_BIGINT ? "_int" : "";
    for (i = 0; d->field[i] && j + 1 < sizeof f; i++)
        f[j++] = (char)(isalnum((unsigned char)d->field[i]) ? tolower((unsigned char)d->field[i]) : '_');
    f[j] = '\0';
    /* identifiers are at most 63 bytes: 30 + 1 + 22 + 7 + 4, 20 + 1 + 8 + 1 + 22 + 7 + 4 */
    if (unique)
        snprintf(out, n, "%.20s_%08lx_%.22s%s_idx", t->bare, t->hash, f, suffix);
    else
        snprintf(out, n, "%.30s_%.22s%s_idx", t->bare, f, suffix);
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

/* Whether the index name is on the table (*mine) or used by any relation
 * of the table's schema (*taken). */
static asbp_code index_state(asbp_source *s, asbp_conn **conn, const char *name,
                             int *mine, int *taken, asbp_err *err)
{
    PGresult *r = NULL;
    const char *pv[2];
    asbp_code rc;
    pv[0] = asbp_source_table_sql(s);
    pv[1] = name;
    rc = run(s, conn, "SELECT coalesce(bool_or(i.indrelid = t.oid), false), "
             "count(c.oid) > 0 FROM pg_catalog.pg_class t "
             "LEFT JOIN pg_catalog.pg_class c "
             "ON c.relnamespace = t.relnamespace AND c.relname = $2 "
             "LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid "
             "WHERE t.oid = pg_catalog.to_regclass($1)", 2, pv, &r, err);
    if (rc)
        return rc;
    *mine = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
    *taken = PQntuples(r) == 1 && PQgetvalue(r, 0, 1)[0] == 't';
    PQclear(r);
    return ASBP_OK;
}

/* The name of index d (n bytes at name) and whether the table has it.
 * check: the table exists (else the names are only computed).  The old
 * name is kept when the table has it, or when it is complete and free. */
static asbp_code choose_name(asbp_source *s, asbp_conn **conn, const tname *t,
                             const ixdef *d, int check, char *name, size_t n,
                             int *existed, asbp_err *err)
{
    int cut = strlen(t->bare) > OLD_NAME_MAX, mine = 0, taken = 0;
    asbp_code rc;
    *existed = 0;
    index_name(t, d, cut, name, n);
    if (!check)
        return ASBP_OK;
    index_name(t, d, 0, name, n);
    rc = index_state(s, conn, name, &mine, &taken, err);
    if (rc == ASBP_OK && !mine && (cut || taken)) {
        index_name(t, d, 1, name, n);
        rc = index_state(s, conn, name, &mine, &taken, err);
    }
    if (rc)
        return rc;
    if (!mine && taken)
        return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                            "cannot create index \"%s\" on table %s: the name is "
                            "used by another relation of its schema (DataSource %s)",
                            name, asbp_source_table_sql(s), asbp_source_display(s));
    *existed = mine;
    return ASBP_OK;
}

/* The indexes of kind (their names are ours, built from fixed field names). */
static asbp_code apply_indexes(asbp_source *s, asbp_conn **conn, asbp_schema_kind kind,
                               int dry_run, asbp_schema_report *rep, asbp_err *err)
{
    char name[96];
    const char *table = asbp_source_table_sql(s);
    int have_table = rep->table_existed || rep->items[0].done;
    const ixdef *d;
    asbp_buf b = ASBP_BUF_INIT;
    asbp_code rc;
    tname t;

    split_table(table, &t);
    for (d = IX[kind]; d->field; d++) {
        const char *expr_fmt = d->type == IX_BIGINT ? "(CAST(a_session ->> '%s' AS bigint))"
                             : d->type == IX_PREFIX ? "(a_session ->> '%s') text_pattern_ops"
                             : "(a_session ->> '%s')";
        int existed;
        rc = choose_name(s, conn, &t, d, have_table, name, sizeof name, &existed, err);
        if (rc)
            return rc;
        asbp_buf_printf(&b, "CREATE INDEX IF NOT EXISTS \"%s\" ON %s (", name, table);
        asbp_buf_printf(&b, expr_fmt, d->field);
        asbp_buf_puts(&b, ")");
        if (add_item(rep, name, asbp_buf_steal(&b)) < 0)
            return nomem(err);
        rep->items[rep->n - 1].existed = existed;
        if (!existed && have_table) {
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
