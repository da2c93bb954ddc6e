#include "asbp_store.h"
#include "asbp_pid.h"
#include "asbp_buf.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum jop { J_INSERT, J_UPDATE, J_DELETE } jop;

typedef struct jentry {
    jop op;
    char *id;      /* owned */
    char *data;    /* owned, NULL for J_DELETE */
} jentry;

struct asbp_store {
    asbp_source *src;      /* borrowed: owned by the context */
    asbp_conn *conn;       /* checked out while a transaction is open */
    int commit;
    jentry *j;             /* owned: writes of the open transaction */
    size_t nj, capj;
    PGresult *last;        /* owned: result of the last materialize */
    int gave_up;           /* an operation spent the failover budget */
    asbp_err gave_up_err;  /* ... and this is what it reported */
};

static const char *const SQL_BEGIN = "BEGIN";
static const char *const SQL_COMMIT = "COMMIT";
static const char *const SQL_ROLLBACK = "ROLLBACK";

asbp_store *asbp_store_new(asbp_source *src, int commit)
{
    asbp_store *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->src = src;
    st->commit = commit;
    /* The store may outlive its creator's scope (a tied session freed
     * during global destruction): keep the context alive until then. */
    asbp_ctx_retain(asbp_source_ctx(src));
    return st;
}

static void journal_clear(asbp_store *st)
{
    size_t i;
    for (i = 0; i < st->nj; i++) {
        free(st->j[i].id);
        free(st->j[i].data);
    }
    st->nj = 0;
}

static int journal_add(asbp_store *st, jop op, const char *id, const char *data)
{
    jentry e;
    if (st->nj == st->capj) {
        size_t cap = st->capj ? st->capj * 2 : 4;
        jentry *n = realloc(st->j, cap * sizeof *n);
        if (!n)
            return -1;
        st->j = n;
        st->capj = cap;
    }
    e.op = op;
    e.id = asbp_strdup(id);
    e.data = data ? asbp_strdup(data) : NULL;
    if (!e.id || (data && !e.data)) {
        free(e.id);
        free(e.data);
        return -1;
    }
    st->j[st->nj++] = e;
    return 0;
}

static void drop_conn(asbp_store *st)
{
    asbp_conn_free(st->conn);
    st->conn = NULL;
}

/*
 * A store inherited through fork() holds the parent's connection and
 * transaction: the child must not touch them.  The connection is abandoned
 * (nothing is sent on its socket) and the journal forgotten.
 */
static void fork_guard(asbp_store *st)
{
    if (st->conn && asbp_conn_pid(st->conn) != asbp_pid()) {
        drop_conn(st);
        journal_clear(st);
    }
}

/*
 * Ends whatever transaction is open with ROLLBACK, without waiting for its
 * answer (the next user of the connection reads it in the same round trip
 * as its own statements), and gives the connection back.  Nothing was
 * written, so nothing is lost if the ROLLBACK never arrives: the server
 * ends the transaction when the connection goes.
 */
static void rollback_and_release(asbp_store *st)
{
    if (st->conn && asbp_conn_in_transaction(st->conn)) {
        asbp_query q = { SQL_ROLLBACK, 0, 0, NULL, NULL };
        asbp_err e;
        asbp_ctx *ctx = asbp_source_ctx(st->src);
        int64_t dl = asbp_ctx_now(ctx) + asbp_source_failover_timeout(st->src);
        asbp_err_clear(&e);
        if (asbp_conn_send_nowait(st->conn, &q, 1, asbp_ctx_clock(ctx), dl, &e))
            asbp_conn_set_broken(st->conn);  /* the server ends it for us */
    }
    if (st->conn)
        asbp_source_release(st->src, st->conn);
    st->conn = NULL;
}

void asbp_store_free(asbp_store *st)
{
    if (!st)
        return;
    fork_guard(st);
    rollback_and_release(st);
    journal_clear(st);
    free(st->j);
    PQclear(st->last);
    asbp_ctx_release(asbp_source_ctx(st->src));
    free(st);
}

int asbp_store_in_transaction(const asbp_store *st)
{
    return st->conn != NULL;
}

asbp_source *asbp_store_source(asbp_store *st) { return st->src; }

const char *asbp_store_server(const asbp_store *st)
{
    return st->conn ? asbp_conn_server(st->conn) : "";
}

/* Runs a short pipeline on conn within the operation's failover budget. */
static asbp_code run(asbp_store *st, asbp_conn *c, const asbp_query *q, int n,
                     PGresult **res, int *failed_at, asbp_err *err)
{
    asbp_ctx *ctx = asbp_source_ctx(st->src);
    int64_t dl = asbp_ctx_now(ctx) + asbp_source_failover_timeout(st->src);
    return asbp_conn_pipeline(c, q, n, res, asbp_ctx_clock(ctx), dl, failed_at, err);
}

static void clear_all(PGresult **r, int n)
{
    int i;
    for (i = 0; i < n; i++) {
        PQclear(r[i]);
        r[i] = NULL;
    }
}

/*
 * The final state of the id of journal entry i, its writes collapsed:
 * inserted by this transaction, deleted at the end, and its final data.
 * Returns 0 when an earlier entry has the same id (already replayed).
 */
static int journal_final(const asbp_store *st, size_t i, int *inserted,
                         int *deleted, const char **final_data)
{
    const char *id = st->j[i].id;
    size_t k;
    for (k = 0; k < i; k++)
        if (strcmp(st->j[k].id, id) == 0)
            return 0;
    *inserted = *deleted = 0;
    *final_data = NULL;
    for (k = i; k < st->nj; k++) {
        if (strcmp(st->j[k].id, id) != 0)
            continue;
        if (st->j[k].op == J_INSERT) {
            *inserted = 1;
            *deleted = 0;
        }
        if (st->j[k].op == J_DELETE) {
            *deleted = 1;
            *final_data = NULL;
        } else {
            *deleted = 0;
            *final_data = st->j[k].data;
        }
    }
    return 1;
}

/*
 * Runs q[0..nq), whose last statement checks the row of an id this
 * transaction inserted: *ours = 1 when the row is there with exactly our
 * value (committed before the connection was lost); someone else's row
 * there is reported as a duplicate key.
 */
static asbp_code check_inserted(asbp_store *st, asbp_conn *c, const asbp_query *q,
                                int nq, const char *id, int *ours, asbp_err *err)
{
    PGresult *r[2] = { NULL, NULL };
    int absent;
    asbp_code rc = run(st, c, q, nq, r, NULL, err);
    if (rc)
        return rc;
    absent = PQntuples(r[nq - 1]) == 0;
    *ours = !absent && strcmp(PQgetvalue(r[nq - 1], 0, 0), "t") == 0;
    clear_all(r, nq);
    if (!absent && !*ours) {
        char shown[ASBP_ID_TEXT];
        asbp_err_set(err, ASBP_E_QUERY, ASBP_EC_REPORT,
                     "duplicate key value violates unique constraint: "
                     "session %s already exists in %s with other data "
                     "(found while redoing an insert after a failover)",
                     asbp_id_text(id, strlen(id), shown), asbp_source_table(st->src));
        memcpy(err->sqlstate, "23505", 6);
        return ASBP_E_QUERY;
    }
    return ASBP_OK;
}

/*
 * Redoes the journal in a new transaction on c (the previous one was lost
 * with its connection).  Writes are collapsed per id to their final state.
 * An id this transaction inserted is checked first: absent -> inserted
 * again; present with exactly our final value -> our own row, committed
 * before the connection was lost; present with another value -> someone
 * else's row: reported as a duplicate key.
 */
static asbp_code replay(asbp_store *st, asbp_conn *c, asbp_err *err)
{
    size_t i;
    asbp_code rc;
    PGresult *r[2] = { NULL, NULL };
    int began = 0;

    for (i = 0; i < st->nj; i++) {
        const char *final_data, *pv[2];
        int inserted, deleted, nq = 0;
        asbp_query q[2];

        if (!journal_final(st, i, &inserted, &deleted, &final_data))
            continue;   /* id already replayed */
        if (inserted && deleted)
            continue;   /* created and deleted in one transaction: nothing */
        pv[0] = st->j[i].id;
        pv[1] = final_data;
        if (!began)
            q[nq++] = (asbp_query){ SQL_BEGIN, 1, 0, NULL, NULL };
        if (inserted) {
            int ours = 0;
            q[nq++] = (asbp_query){ asbp_source_sql(st->src, ASBP_SQL_CHECK), 1, 2, pv, NULL };
            rc = check_inserted(st, c, q, nq, pv[0], &ours, err);
            if (rc)
                return rc;
            began = 1;
            if (ours)
                continue;
            nq = 0;
            q[nq++] = (asbp_query){ asbp_source_sql(st->src, ASBP_SQL_INSERT), 1, 2, pv, NULL };
        } else if (deleted) {
            q[nq++] = (asbp_query){ asbp_source_sql(st->src, ASBP_SQL_DELETE), 1, 1, pv, NULL };
        } else {
            q[nq++] = (asbp_query){ asbp_source_sql(st->src, ASBP_SQL_UPDATE), 1, 2, pv, NULL };
        }
        rc = run(st, c, q, nq, r, NULL, err);
        clear_all(r, nq);
        if (rc)
            return rc;
        began = 1;
    }
    if (!began) {
        asbp_query q = { SQL_BEGIN, 1, 0, NULL, NULL };
        rc = run(st, c, &q, 1, r, NULL, err);
        clear_all(r, 1);
        if (rc)
            return rc;
    }
    return ASBP_OK;
}

typedef enum opkind { OP_MATERIALIZE, OP_INSERT, OP_UPDATE, OP_REMOVE, OP_COMMIT } opkind;

typedef struct op_args {
    asbp_store *st;
    opkind kind;
    const char *id;
    const char *data;
} op_args;

static asbp_code attempt(void *ud, asbp_conn *c, asbp_err *err)
{
    op_args *a = ud;
    asbp_store *st = a->st;
    asbp_query q[2];
    PGresult *r[2] = { NULL, NULL };
    const char *pv[2];
    int nq = 0, failed_at = -1;
    asbp_code rc;

    st->conn = c;
    if (!asbp_conn_in_transaction(c)) {
        if (st->nj) {
            rc = replay(st, c, err);
            if (rc)
                return rc;
        } else if (a->kind != OP_COMMIT) {
            q[nq++] = (asbp_query){ SQL_BEGIN, 1, 0, NULL, NULL };
        }
    } else if (asbp_conn_in_failed_transaction(c)) {
        return asbp_err_set(err, ASBP_E_QUERY, ASBP_EC_REPORT,
                            "the transaction on %s was aborted by an earlier "
                            "error; its changes are not committed (table %s)",
                            asbp_conn_server(c), asbp_source_table(st->src));
    }
    pv[0] = a->id;
    pv[1] = a->data;
    switch (a->kind) {
    case OP_MATERIALIZE:
        q[nq++] = (asbp_query){ asbp_source_sql(st->src, ASBP_SQL_SELECT), 1, 1, pv, NULL };
        break;
    case OP_INSERT:
        q[nq++] = (asbp_query){ asbp_source_sql(st->src, ASBP_SQL_INSERT), 1, 2, pv, NULL };
        break;
    case OP_UPDATE:
        q[nq++] = (asbp_query){ asbp_source_sql(st->src, ASBP_SQL_UPDATE), 1, 2, pv, NULL };
        break;
    case OP_REMOVE:
        q[nq++] = (asbp_query){ asbp_source_sql(st->src, ASBP_SQL_DELETE), 1, 1, pv, NULL };
        break;
    case OP_COMMIT:
        q[nq++] = (asbp_query){ SQL_COMMIT, 1, 0, NULL, NULL };
        break;
    }
    rc = run(st, c, q, nq, r, &failed_at, err);
    if (rc) {
        clear_all(r, nq);
        return rc;
    }
#ifdef ASBP_TEST_HOOKS
    if (a->kind == OP_COMMIT && asbp_ctx_take_commit_lost(asbp_source_ctx(st->src))) {
        clear_all(r, nq);
        asbp_conn_set_broken(c);
        return asbp_err_set(err, ASBP_E_IO, ASBP_EC_FAILOVER,
                            "connection lost after COMMIT (injected fault)");
    }
#endif
    if (a->kind == OP_MATERIALIZE) {
        PGresult *res = r[nq - 1];
        r[nq - 1] = NULL;
        clear_all(r, nq);
        PQclear(st->last);
        st->last = res;
        if (PQntuples(res) == 0)
            return asbp_err_set(err, ASBP_E_NOTFOUND, ASBP_EC_REPORT,
                                "Object does not exist in the data store");
        return ASBP_OK;
    }
    clear_all(r, nq);
    return ASBP_OK;
}

static asbp_code do_op(asbp_store *st, opkind kind, const char *id,
                       const char *data, asbp_err *err)
{
    op_args a;
    asbp_ctx *ctx = asbp_source_ctx(st->src);
    asbp_code rc;

    fork_guard(st);
    if (st->gave_up) {
        /* One tie gets one failover budget: Apache::Session retries a
         * failed insert from DESTROY, and LL::NG's callers expect a tie to
         * end within its 5 s alarm.  The transaction is gone anyway. */
        *err = st->gave_up_err;
        return err->code;
    }
    a.st = st;
    a.kind = kind;
    a.id = id;
    a.data = data;
    rc = asbp_source_run(st->src, &st->conn, asbp_ctx_now(ctx), attempt, &a, err);
    if (rc && err->eclass == ASBP_EC_FAILOVER) {
        st->gave_up = 1;
        st->gave_up_err = *err;
        drop_conn(st);
        journal_clear(st);
    }
    if (rc == ASBP_OK) {
        jop op = kind == OP_INSERT ? J_INSERT : kind == OP_UPDATE ? J_UPDATE : J_DELETE;
        if ((kind == OP_INSERT || kind == OP_UPDATE || kind == OP_REMOVE)
            && journal_add(st, op, id, data) < 0)
            return asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT, "out of memory");
    }
    return rc;
}

char *asbp_id_text(const char *id, size_t len, char *buf)
{
    size_t i, shown = len / 2;
    if (shown > 8)
        shown = 8;
    for (i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)id[i];
        buf[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    if (shown < len) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = '\0';
    return buf;
}

/* An id: not empty, and not longer than any id this module makes (a
 * forged cookie of a megabyte goes no further). */
static asbp_code check_id(const char *id, asbp_err *err)
{
    size_t len;
    if (!id || !*id)
        return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT, "no session id given");
    len = strnlen(id, ASBP_ID_MAX + 1);
    if (len > ASBP_ID_MAX)
        return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                            "invalid session id: longer than %d characters",
                            ASBP_ID_MAX);
    return ASBP_OK;
}

asbp_code asbp_store_insert(asbp_store *st, const char *id, const char *data,
                            asbp_err *err)
{
    if (check_id(id, err))
        return err->code;
    return do_op(st, OP_INSERT, id, data ? data : "{}", err);
}

asbp_code asbp_store_update(asbp_store *st, const char *id, const char *data,
                            asbp_err *err)
{
    if (check_id(id, err))
        return err->code;
    return do_op(st, OP_UPDATE, id, data ? data : "{}", err);
}

asbp_code asbp_store_materialize(asbp_store *st, const char *id,
                                 const char **data, size_t *len, asbp_err *err)
{
    asbp_code rc;
    *data = NULL;
    *len = 0;
    if (check_id(id, err))
        return err->code;
    rc = do_op(st, OP_MATERIALIZE, id, NULL, err);
    if (rc)
        return rc;
    *data = PQgetvalue(st->last, 0, 0);
    *len = (size_t)PQgetlength(st->last, 0, 0);
    return ASBP_OK;
}

asbp_code asbp_store_remove(asbp_store *st, const char *id, asbp_err *err)
{
    if (check_id(id, err))
        return err->code;
    return do_op(st, OP_REMOVE, id, NULL, err);
}

asbp_code asbp_store_close(asbp_store *st, asbp_err *err)
{
    asbp_code rc;
    fork_guard(st);
    PQclear(st->last);
    st->last = NULL;
    if (st->gave_up) {
        /* Already reported by the operation that gave up. */
        st->gave_up = 0;
        drop_conn(st);
        journal_clear(st);
        return ASBP_OK;
    }
    if (st->commit && st->nj) {
        rc = do_op(st, OP_COMMIT, NULL, NULL, err);
        journal_clear(st);
        if (rc) {
            drop_conn(st);
            return rc;
        }
        asbp_source_release(st->src, st->conn);
        st->conn = NULL;
        return ASBP_OK;
    }
    journal_clear(st);
    rollback_and_release(st);
    return ASBP_OK;
}
