#include "asbp_conn_impl.h"
#include "asbp_pid.h"
#include "asbp_buf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Folds a multi-line libpq message into one line (tabs and newlines). */
static void one_line(char *m)
{
    char *r = m, *w = m;
    int space = 0;
    for (; *r; r++) {
        if (*r == '\n' || *r == '\t' || *r == '\r') {
            space = 1;
            continue;
        }
        if (space && w > m && w[-1] != ' ')
            *w++ = ' ';
        space = 0;
        *w++ = *r;
    }
    *w = '\0';
}

static void notice_drop(void *arg, const char *message)
{
    asbp_conn *c = arg;
    (void)message;
    if (c && c->lg)
        ASBP_TRACE(c->lg, "pid %ld: notice from %s: %s", (long)getpid(),
                   c->server, message);
}

/* Waits for the socket (POLLIN and/or POLLOUT) until the deadline.
 * Returns 1 ready, 0 timeout, -1 error. */
static int conn_wait(const asbp_conn *c, int for_read, int for_write,
                     const asbp_clock *clk, int64_t deadline_ms)
{
    struct pollfd pfd;
    int fd = PQsocket(c->pg);
    if (fd < 0)
        return -1;
    for (;;) {
        int64_t left = deadline_ms - asbp_clock_now_ms(clk);
        int rc;
        if (left <= 0)
            return 0;
        pfd.fd = fd;
        pfd.events = (short)((for_read ? POLLIN : 0) | (for_write ? POLLOUT : 0));
        pfd.revents = 0;
        rc = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
        if (rc > 0)
            return 1;
        if (rc < 0 && errno != EINTR)
            return -1;
    }
}

/*
 * libpq's verbose connection errors look like
 *   connection to server at "h" (1.2.3.4), port 5432 failed: FATAL:  28P01: password ...
 *   LOCATION:  auth_failed, auth.c:323
 * Extracts the SQLSTATE and writes a cleaned message (no LOCATION lines,
 * no SQLSTATE prefix, no trailing newline) into out.
 */
static void clean_verbose(const char *in, char *sqlstate, char *out, size_t n)
{
    asbp_buf b = ASBP_BUF_INIT;
    const char *p = in ? in : "";
    sqlstate[0] = '\0';
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (!(len >= 9 && strncmp(p, "LOCATION:", 9) == 0)) {
            const char *lvl = NULL;
            const char *q;
            for (q = p; q < p + len; q++) {
                if ((strncmp(q, "FATAL:  ", 8) == 0 || strncmp(q, "ERROR:  ", 8) == 0)
                    && q + 15 <= p + len) {
                    lvl = q + 8;
                    break;
                }
            }
            if (lvl && isalnum((unsigned char)lvl[0]) && lvl[5] == ':' && lvl[6] == ' ') {
                int ok = 1, i;
                for (i = 0; i < 5; i++)
                    if (!isdigit((unsigned char)lvl[i]) && !isupper((unsigned char)lvl[i]))
                        ok = 0;
                if (ok) {
                    if (!sqlstate[0]) {
                        memcpy(sqlstate, lvl, 5);
                        sqlstate[5] = '\0';
                    }
                    if (b.len)
                        asbp_buf_puts(&b, "; ");
                    asbp_buf_append(&b, p, (size_t)(lvl - p));
                    asbp_buf_append(&b, lvl + 7, len - (size_t)(lvl + 7 - p));
                    goto next;
                }
            }
            if (len) {
                if (b.len)
                    asbp_buf_puts(&b, "; ");
                asbp_buf_append(&b, p, len);
            }
        }
    next:
        p = eol ? eol + 1 : p + len;
    }
    snprintf(out, n, "%s", asbp_buf_cstr(&b));
    asbp_buf_free(&b);
    one_line(out);
}

/*
 * libpq's own refusals of a server the DataSource pins (sslmode=verify-*,
 * channel_binding=require, require_auth, sslrootcert): no SQLSTATE, and no
 * use retrying them until FailoverTimeout (the last try would only say
 * "timeout expired").  libpq's English messages; a translated one is
 * retried as before.
 */
static int pin_refusal(const char *msg)
{
    static const char *const marks[] = {
        "channel binding",                      /* channel_binding=require */
        "does not match host name",             /* verify-full */
        "certificate verify failed",            /* verify-ca, verify-full */
        "server's host name from server certificate",
        "SSL certificate's",                    /* name or address entry missing */
        "root certificate file",                /* sslrootcert missing/unreadable */
        "server does not support SSL, but SSL was required",
        "authentication method requirement",    /* require_auth (libpq 16+) */
        "server signature",                     /* SCRAM: not the server we know */
    };
    size_t i;
    for (i = 0; i < sizeof marks / sizeof marks[0]; i++)
        if (strstr(msg, marks[i]))
            return 1;
    return 0;
}

static asbp_code connect_error(asbp_conn *c, asbp_err *err)
{
    char sqlstate[6];
    char msg[ASBP_ERR_MSG_MAX];
    asbp_eclass ec;
    clean_verbose(PQerrorMessage(c->pg), sqlstate, msg, sizeof msg);
    if (PQconnectionNeedsPassword(c->pg))
        ec = ASBP_EC_REPORT;
    else if (!sqlstate[0] && pin_refusal(msg))
        ec = ASBP_EC_REPORT;
    else if (!sqlstate[0])
        ec = ASBP_EC_FAILOVER;  /* refused, unreachable, not writable ... */
    else if (sqlstate[0] == '2' && sqlstate[1] == '8')
        ec = ASBP_EC_REPORT;    /* invalid authorization */
    else
        ec = asbp_classify_sqlstate(sqlstate, 0);
    asbp_err_set(err, ASBP_E_CONNECT, ec, "cannot connect to %s: %s",
                 c->label, msg[0] ? msg : "unknown error");
    memcpy(err->sqlstate, sqlstate, sizeof sqlstate);
    return ASBP_E_CONNECT;
}

/* Starts a connection (PQconnectStartParams).  On error *out is NULL. */
static asbp_code conn_start(const asbp_connparams *p, const asbp_logger *lg,
                            asbp_conn **out, asbp_err *err)
{
    asbp_conn *c;
    asbp_code rc;

    *out = NULL;
    c = calloc(1, sizeof *c);
    if (!c)
        return asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT, "out of memory");
    c->pid = asbp_pid();
    c->lg = lg;
    c->named = 1;
    c->label = asbp_strdup(p->label ? p->label : "PostgreSQL");
    if (!c->label) {
        free(c);
        return asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT, "out of memory");
    }
    ASBP_TRACE(lg, "pid %ld: PQconnectStartParams %s", (long)c->pid, c->label);
    c->pg = PQconnectStartParams((const char *const *)p->keys,
                                 (const char *const *)p->values, 0);
    if (!c->pg) {
        asbp_conn_free(c);
        return asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT, "out of memory");
    }
    PQsetNoticeProcessor(c->pg, notice_drop, c);
    PQsetErrorVerbosity(c->pg, PQERRORS_VERBOSE);
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        rc = connect_error(c, err);
        ASBP_TRACE(lg, "pid %ld: connect failed: %s", (long)c->pid, err->msg);
        asbp_conn_free(c);
        return rc;
    }
    *out = c;
    return ASBP_OK;
}

/* The connection is established: final settings. */
static asbp_code conn_finish(asbp_conn *c, asbp_err *err)
{
    PQsetErrorVerbosity(c->pg, PQERRORS_DEFAULT);
    if (PQsetnonblocking(c->pg, 1) != 0)
        return asbp_err_set(err, ASBP_E_CONNECT, ASBP_EC_FAILOVER,
                            "cannot connect to %s: cannot make the socket non-blocking",
                            c->label);
    snprintf(c->server, sizeof c->server, "%s:%s",
             PQhost(c->pg) ? PQhost(c->pg) : "?", PQport(c->pg) ? PQport(c->pg) : "?");
    ASBP_TRACE(c->lg, "pid %ld: connected to %s (%s)", (long)c->pid, c->server, c->label);
    return ASBP_OK;
}

asbp_code asbp_conn_open(const asbp_connparams *p, const asbp_clock *clk,
                         int64_t deadline_ms, const asbp_logger *lg,
                         asbp_conn **out, asbp_err *err)
{
    asbp_conn *c;
    asbp_code rc;

    *out = NULL;
    rc = conn_start(p, lg, &c, err);
    if (rc)
        return rc;
    for (;;) {
        PostgresPollingStatusType st = PQconnectPoll(c->pg);
        int w;
        if (st == PGRES_POLLING_OK)
            break;
        if (st == PGRES_POLLING_FAILED) {
            rc = connect_error(c, err);
            ASBP_TRACE(lg, "pid %ld: connect failed: %s", (long)c->pid, err->msg);
            asbp_conn_free(c);
            return rc;
        }
        w = conn_wait(c, st == PGRES_POLLING_READING,
                      st == PGRES_POLLING_WRITING, clk, deadline_ms);
        if (w <= 0) {
            asbp_err_set(err, w == 0 ? ASBP_E_TIMEOUT : ASBP_E_CONNECT,
                         ASBP_EC_FAILOVER, "cannot connect to %s: %s",
                         c->label, w == 0 ? "timeout expired" : strerror(errno));
            ASBP_TRACE(lg, "pid %ld: connect failed: %s", (long)c->pid, err->msg);
            asbp_conn_free(c);
            return err->code;
        }
    }
    rc = conn_finish(c, err);
    if (rc) {
        asbp_conn_free(c);
        return rc;
    }
    *out = c;
    return ASBP_OK;
}

void asbp_conn_open_many(const asbp_connparams *p, size_t n, const asbp_clock *clk,
                         int64_t deadline_ms, const asbp_logger *lg, asbp_conn **out)
{
    enum { MAXN = 64 };
    struct pollfd pfd[MAXN];
    PostgresPollingStatusType st[MAXN];
    size_t i, k, pending = 0;
    asbp_err e;

    if (n > MAXN)
        n = MAXN;
    for (i = 0; i < n; i++) {
        asbp_err_clear(&e);
        out[i] = NULL;
        st[i] = PGRES_POLLING_FAILED;
        if (p[i].keys && conn_start(&p[i], lg, &out[i], &e) == ASBP_OK) {
            st[i] = PGRES_POLLING_WRITING;   /* what PQconnectStart wants first */
            pending++;
        }
    }
    while (pending) {
        int64_t left = deadline_ms - asbp_clock_now_ms(clk);
        int rc;
        size_t map[MAXN];
        if (left <= 0)
            break;
        for (i = k = 0; i < n; i++) {
            if (!out[i] || st[i] == PGRES_POLLING_OK || st[i] == PGRES_POLLING_FAILED)
                continue;
            pfd[k].fd = PQsocket(out[i]->pg);
            pfd[k].events = (short)(st[i] == PGRES_POLLING_READING ? POLLIN : POLLOUT);
            pfd[k].revents = 0;
            map[k++] = i;
        }
        rc = poll(pfd, (nfds_t)k, left > 1000 ? 1000 : (int)left);
        if (rc < 0 && errno != EINTR)
            break;
        for (i = 0; rc > 0 && i < k; i++) {
            size_t j = map[i];
            if (!pfd[i].revents)
                continue;
            st[j] = PQconnectPoll(out[j]->pg);
            if (st[j] == PGRES_POLLING_OK) {
                asbp_err_clear(&e);
                if (conn_finish(out[j], &e) != ASBP_OK) {
                    asbp_conn_free(out[j]);
                    out[j] = NULL;
                }
                pending--;
            } else if (st[j] == PGRES_POLLING_FAILED) {
                asbp_err_clear(&e);
                connect_error(out[j], &e);
                ASBP_TRACE(lg, "pid %ld: connect failed: %s", (long)asbp_pid(), e.msg);
                asbp_conn_free(out[j]);
                out[j] = NULL;
                pending--;
            }
        }
    }
    /* Whatever is not established by the deadline is given up. */
    for (i = 0; i < n; i++) {
        if (out[i] && st[i] != PGRES_POLLING_OK) {
            ASBP_TRACE(lg, "pid %ld: connect to %s: no answer before the deadline",
                       (long)asbp_pid(), out[i]->label);
            asbp_conn_free(out[i]);
            out[i] = NULL;
        }
    }
}

void asbp_conn_free(asbp_conn *c)
{
    size_t i;
    if (!c)
        return;
    if (c->pg) {
        if (c->pid != asbp_pid()) {
            /* Another process opened it: make sure PQfinish cannot send its
             * Terminate message (or a TLS close_notify) on the socket we share
             * with the parent.  Pointing the descriptor at /dev/null makes
             * every write fail harmlessly; PQfinish then frees the memory and
             * closes our copy of the descriptor only. */
            int fd = PQsocket(c->pg);
            int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
            if (fd >= 0 && nul >= 0 && dup2(nul, fd) >= 0) {
                close(nul);
                PQfinish(c->pg);
            } else {
                /* Could not neutralise the socket: leak the handle rather
                 * than end the parent's session. */
                if (nul >= 0)
                    close(nul);
            }
        } else {
            PQfinish(c->pg);
        }
    }
    for (i = 0; i < c->nstmts; i++)
        free(c->stmts[i].sql);
    free(c->stmts);
    free(c->label);
    free(c->key);
    free(c);
}

int asbp_conn_usable(const asbp_conn *c)
{
    return c && c->pg && !c->broken && c->pid == asbp_pid()
        && PQstatus(c->pg) == CONNECTION_OK;
}

int asbp_conn_check_idle(asbp_conn *c)
{
    struct pollfd pfd;
    if (!asbp_conn_usable(c))
        return 0;
    if (c->pending_sync) {
        /* The answer of a ROLLBACK sent without waiting is still to be
         * read: the next pipeline reads it in its own round trip (a lost
         * connection shows there, and is handled like any other). */
        return 1;
    }
    /* An idle connection has nothing to read.  Something readable is the
     * server saying goodbye (a FATAL such as "terminating connection due
     * to administrator command", then EOF): don't use it. */
    pfd.fd = PQsocket(c->pg);
    pfd.events = POLLIN;
    pfd.revents = 0;
    if (pfd.fd < 0 || poll(&pfd, 1, 0) != 0) {
        ASBP_TRACE(c->lg, "pid %ld: idle connection to %s has input or is closed: dropped",
                   (long)getpid(), c->server);
        c->broken = 1;
        return 0;
    }
    if (PQstatus(c->pg) != CONNECTION_OK) {
        c->broken = 1;
        return 0;
    }
    if (PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        c->broken = 1;
        return 0;
    }
    return 1;
}

const char *asbp_conn_label(const asbp_conn *c) { return c ? c->label : ""; }
const char *asbp_conn_server(const asbp_conn *c) { return c ? c->server : ""; }
pid_t asbp_conn_pid(const asbp_conn *c) { return c ? c->pid : 0; }
void asbp_conn_set_broken(asbp_conn *c) { if (c) c->broken = 1; }

void asbp_conn_set_prepared(asbp_conn *c, int on) { if (c) c->named = !!on; }
const char *asbp_conn_key(const asbp_conn *c) { return c && c->key ? c->key : ""; }

int asbp_conn_set_key(asbp_conn *c, const char *key)
{
    char *k = asbp_strdup(key);
    if (!k)
        return -1;
    free(c->key);
    c->key = k;
    return 0;
}
unsigned long asbp_conn_prepare_count(const asbp_conn *c) { return c ? c->prepares : 0; }

int asbp_conn_pending(const asbp_conn *c)
{
    return c && c->pending_sync;
}

int asbp_conn_in_transaction(const asbp_conn *c)
{
    PGTransactionStatusType t;
    if (!c || !c->pg || c->pending_sync)
        return 0;   /* only a ROLLBACK can be pending: no transaction after it */
    t = PQtransactionStatus(c->pg);
    return t == PQTRANS_INTRANS || t == PQTRANS_INERROR;
}

int asbp_conn_in_failed_transaction(const asbp_conn *c)
{
    return c && c->pg && !c->pending_sync
        && PQtransactionStatus(c->pg) == PQTRANS_INERROR;
}

int asbp_conn_reusable(asbp_conn *c)
{
    if (!asbp_conn_usable(c))
        return 0;
    if (c->pending_sync)
        return 1;   /* the next user reads the ROLLBACK's answer */
    /* Not in a transaction, no statement running (a stream's), nothing
     * left to read, out of pipeline mode. */
    return PQtransactionStatus(c->pg) == PQTRANS_IDLE && !PQisBusy(c->pg)
        && PQpipelineStatus(c->pg) == PQ_PIPELINE_OFF;
}

/* Fills err from a failed result (asbp_conn_impl.h). */
asbp_code asbp_conn__result_error(asbp_conn *c, const PGresult *res, asbp_err *err)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *text = primary ? primary
                     : (res && *PQresultErrorMessage(res)) ? PQresultErrorMessage(res)
                     : PQerrorMessage(c->pg);
    int lost = PQstatus(c->pg) != CONNECTION_OK || !state || !*state;
    char msg[ASBP_ERR_MSG_MAX];
    size_t len;
    asbp_eclass ec;

    snprintf(msg, sizeof msg, "%s", text && *text ? text : "unknown error");
    one_line(msg);
    len = strlen(msg);
    while (len && msg[len - 1] == ' ')
        msg[--len] = '\0';
    ec = asbp_classify_sqlstate(state, lost);
    if (lost)
        c->broken = 1;
    asbp_err_set(err, lost ? ASBP_E_IO : ASBP_E_QUERY, ec, "%s (server %s)",
                 msg, c->server);
    if (state && strlen(state) == 5)
        memcpy(err->sqlstate, state, 6);
    return err->code;
}

/*
 * A statement's name is derived from its text (FNV-1a, 64 bits), so that a
 * name means the same statement on every connection of every process: a
 * connection that reaches another server session than the one it prepared
 * on (PgBouncer in transaction pooling with PreparedStatements left on)
 * gets "does not exist" or "already exists", never another statement run
 * with its parameters (a per-connection counter named a DELETE on one
 * session "asbp_3" and a SELECT on another the same).  A statement prepared
 * again on the same connection, after a Prepare whose outcome was not seen,
 * gets a suffix (the server may hold the first name).
 */
static void stmt_name_for(asbp_conn *c, const char *sql, char *name, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    const unsigned char *p;
    for (p = (const unsigned char *)sql; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    if (c->name_seq)
        snprintf(name, n, "asbp_%016llx_%lu", (unsigned long long)h, c->name_seq);
    else
        snprintf(name, n, "asbp_%016llx", (unsigned long long)h);
}

static const char *stmt_name(asbp_conn *c, const char *sql, int *known)
{
    size_t i;
    for (i = 0; i < c->nstmts; i++) {
        if (strcmp(c->stmts[i].sql, sql) == 0) {
            *known = 1;
            return c->stmts[i].name;
        }
    }
    *known = 0;
    if (c->nstmts == c->capstmts) {
        size_t cap = c->capstmts ? c->capstmts * 2 : 8;
        prepared_stmt *s = realloc(c->stmts, cap * sizeof *s);
        if (!s)
            return NULL;
        c->stmts = s;
        c->capstmts = cap;
    }
    c->stmts[c->nstmts].sql = asbp_strdup(sql);
    if (!c->stmts[c->nstmts].sql)
        return NULL;
    stmt_name_for(c, sql, c->stmts[c->nstmts].name, sizeof c->stmts[c->nstmts].name);
    c->stmts[c->nstmts].confirmed = 0;
    return c->stmts[c->nstmts++].name;
}

/* Forgets statements whose Prepare the server did not acknowledge. */
static void drop_unconfirmed(asbp_conn *c)
{
    size_t i, j = 0;
    for (i = 0; i < c->nstmts; i++) {
        if (c->stmts[i].confirmed)
            c->stmts[j++] = c->stmts[i];
        else
            free(c->stmts[i].sql);
    }
    if (j < c->nstmts)
        c->name_seq++;   /* names prepared again from now on are new ones */
    c->nstmts = j;
}

/* The prepared statement of a stream (asbp_conn_impl.h). */
const char *asbp_conn__statement_lookup(asbp_conn *c, const char *sql, size_t max,
                                        int *known)
{
    size_t i;
    drop_unconfirmed(c);    /* left by an attempt that did not finish */
    for (i = 0; i < c->nstmts; i++) {
        if (strcmp(c->stmts[i].sql, sql) == 0) {
            *known = 1;
            return c->stmts[i].name;
        }
    }
    *known = 0;
    if (c->nstmts >= max)
        return NULL;
    return stmt_name(c, sql, known);
}

void asbp_conn__statement_done(asbp_conn *c, const char *name, int ok)
{
    size_t i;
    for (i = 0; i < c->nstmts; i++) {
        if (strcmp(c->stmts[i].name, name) == 0 && !c->stmts[i].confirmed) {
            if (ok) {
                c->stmts[i].confirmed = 1;
                c->prepares++;
            } else {
                drop_unconfirmed(c);
            }
            return;
        }
    }
}

/* ---- waiting for the server ------------------------------------------- */

/*
 * Waits until PQgetResult will not block.  idle_ms == 0: until deadline_ms,
 * then a failover-class timeout.  idle_ms > 0 (a stream): at most idle_ms
 * without data, counted again whenever data arrives (a long stream that
 * keeps moving is never cut), then a timeout that is reported, not failed
 * over: a server that stops answering for that long is not waited for again
 * elsewhere.  Returns ASBP_OK or the code in err (the connection is then
 * broken).
 */
asbp_code asbp_conn__wait_input(asbp_conn *c, const asbp_clock *clk,
                                int64_t deadline_ms, int64_t idle_ms, asbp_err *err)
{
    if (idle_ms > 0 && PQisBusy(c->pg))
        deadline_ms = asbp_clock_now_ms(clk) + idle_ms;
    while (PQisBusy(c->pg)) {
        int w = conn_wait(c, 1, 0, clk, deadline_ms);
        if (w == 0) {
            c->broken = 1;
            if (idle_ms > 0)
                return asbp_err_set(err, ASBP_E_TIMEOUT, ASBP_EC_REPORT,
                                    "no data from %s for %lld ms (QueryTimeout)",
                                    c->server, (long long)idle_ms);
            return asbp_err_set(err, ASBP_E_TIMEOUT, ASBP_EC_FAILOVER,
                                "no answer from %s before the deadline",
                                c->server);
        }
        if (w < 0 || !PQconsumeInput(c->pg)) {
            c->broken = 1;
            return asbp_conn__result_error(c, NULL, err);
        }
        if (idle_ms > 0)
            deadline_ms = asbp_clock_now_ms(clk) + idle_ms;
    }
    return ASBP_OK;
}

static asbp_code wait_result(asbp_conn *c, const asbp_clock *clk,
                             int64_t deadline_ms, asbp_err *err)
{
    return asbp_conn__wait_input(c, clk, deadline_ms, 0, err);
}

/*
 * Sends what libpq has queued (the socket is non-blocking).  idle_ms as
 * for wait_input, except that the time to send is counted once, from now.
 */
asbp_code asbp_conn__flush_out(asbp_conn *c, const asbp_clock *clk,
                               int64_t deadline_ms, int64_t idle_ms, asbp_err *err)
{
    if (idle_ms > 0)
        deadline_ms = asbp_clock_now_ms(clk) + idle_ms;
    for (;;) {
        int f = PQflush(c->pg);
        int w;
        if (f == 0)
            return ASBP_OK;
        if (f < 0) {
            c->broken = 1;
            return asbp_conn__result_error(c, NULL, err);
        }
        w = conn_wait(c, 1, 1, clk, deadline_ms);
        if (w == 0) {
            c->broken = 1;
            if (idle_ms > 0)
                return asbp_err_set(err, ASBP_E_TIMEOUT, ASBP_EC_REPORT,
                                    "cannot send the query to %s within QueryTimeout "
                                    "(%lld ms)", c->server, (long long)idle_ms);
            return asbp_err_set(err, ASBP_E_TIMEOUT, ASBP_EC_FAILOVER,
                                "cannot send to %s before the deadline", c->server);
        }
        if (w < 0 || !PQconsumeInput(c->pg)) {
            c->broken = 1;
            return asbp_conn__result_error(c, NULL, err);
        }
    }
}

static asbp_code flush_all(asbp_conn *c, const asbp_clock *clk,
                           int64_t deadline_ms, asbp_err *err)
{
    return asbp_conn__flush_out(c, clk, deadline_ms, 0, err);
}

/*
 * Reads the results left by asbp_conn_send_nowait.  Errors of the pending
 * statements themselves are ignored (a failed ROLLBACK leaves nothing
 * behind); a lost connection is reported.
 */
static asbp_code drain_pending(asbp_conn *c, const asbp_clock *clk,
                               int64_t deadline_ms, asbp_err *err)
{
    while (c->pending_sync) {
        PGresult *r;
        asbp_code rc = wait_result(c, clk, deadline_ms, err);
        if (rc)
            return rc;
        r = PQgetResult(c->pg);
        if (!r) {
            if (c->pending_cmds > 0)
                c->pending_cmds--;
            continue;
        }
        if (PQresultStatus(r) == PGRES_PIPELINE_SYNC && c->pending_cmds == 0) {
            c->pending_sync = 0;
        } else if (PQstatus(c->pg) != CONNECTION_OK) {
            asbp_conn__result_error(c, r, err);
            PQclear(r);
            c->broken = 1;
            return err->code;
        }
        PQclear(r);
    }
    return ASBP_OK;
}

asbp_code asbp_conn_settle(asbp_conn *c, const asbp_clock *clk,
                           int64_t deadline_ms, asbp_err *err)
{
    asbp_code rc;
    if (!c->pending_sync)
        return ASBP_OK;
    rc = drain_pending(c, clk, deadline_ms, err);
    if (rc)
        return rc;
    if (!PQexitPipelineMode(c->pg)) {
        c->broken = 1;
        return asbp_conn__result_error(c, NULL, err);
    }
    return ASBP_OK;
}

asbp_code asbp_conn_send_nowait(asbp_conn *c, const asbp_query *q, int n,
                                const asbp_clock *clk, int64_t deadline_ms,
                                asbp_err *err)
{
    int i;
    asbp_code rc;
    if (!asbp_conn_usable(c))
        return asbp_err_set(err, ASBP_E_IO, ASBP_EC_FAILOVER,
                            "connection to %s is not usable", c->server);
    rc = asbp_conn_settle(c, clk, deadline_ms, err);
    if (rc)
        return rc;
    if (!PQenterPipelineMode(c->pg)) {
        c->broken = 1;
        return asbp_conn__result_error(c, NULL, err);
    }
    ASBP_TRACE(c->lg, "pid %ld: %d sent to %s without waiting: %s",
               (long)getpid(), n, c->server, q[0].sql);
    for (i = 0; i < n; i++) {
        if (!PQsendQueryParams(c->pg, q[i].sql, q[i].nparams, NULL, q[i].values,
                               q[i].lengths, NULL, 0)) {
            c->broken = 1;
            return asbp_conn__result_error(c, NULL, err);
        }
    }
    if (!PQpipelineSync(c->pg)) {
        c->broken = 1;
        return asbp_conn__result_error(c, NULL, err);
    }
    c->pending_cmds = n;
    c->pending_sync = 1;
    return flush_all(c, clk, deadline_ms, err);
}

/* ---- pipelines ---------------------------------------------------------- */

enum { PIPELINE_MAX = 16 };
#define NO_FAILURE (-2)   /* first_fail while no statement has failed */

/*
 * Queues q[0..n) and the sync point (pipeline mode is on).  newprep[i] is
 * the index in c->stmts of the Prepare sent for q[i], or -1.  On failure
 * the connection is broken and err set.
 */
static asbp_code pipeline_send(asbp_conn *c, const asbp_query *q, int n,
                               int *newprep, asbp_err *err)
{
    int i;
    for (i = 0; i < n; i++) {
        int ok;
        newprep[i] = -1;
        if (q[i].prepared && c->named) {
            int known;
            const char *name = stmt_name(c, q[i].sql, &known);
            if (!name) {
                c->broken = 1;
                return asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT, "out of memory");
            }
            if (!known) {
                newprep[i] = (int)c->nstmts - 1;
                if (!PQsendPrepare(c->pg, name, q[i].sql, q[i].nparams, NULL))
                    break;
            }
            ok = PQsendQueryPrepared(c->pg, name, q[i].nparams, q[i].values,
                                     q[i].lengths, NULL, 0);
        } else {
            ok = PQsendQueryParams(c->pg, q[i].sql, q[i].nparams, NULL,
                                   q[i].values, q[i].lengths, NULL, 0);
        }
        if (!ok)
            break;
    }
    if (i < n || !PQpipelineSync(c->pg)) {
        c->broken = 1;
        return asbp_conn__result_error(c, NULL, err);
    }
    return ASBP_OK;
}

/*
 * Reads the results of one statement, up to the NULL that ends them: *out
 * is the first (owned by the caller), further ones are dropped.  No result
 * at all is a lost connection.
 */
static asbp_code read_one(asbp_conn *c, const asbp_clock *clk, int64_t deadline_ms,
                          PGresult **out, asbp_err *err)
{
    PGresult *keep = NULL;
    for (;;) {
        PGresult *r;
        asbp_code rc = wait_result(c, clk, deadline_ms, err);
        if (rc) {
            PQclear(keep);
            return rc;
        }
        r = PQgetResult(c->pg);
        if (!r)
            break;
        if (keep)
            PQclear(r);
        else
            keep = r;
    }
    if (!keep) {
        c->broken = 1;
        return asbp_err_set(err, ASBP_E_IO, ASBP_EC_FAILOVER, "no result from %s",
                            c->server);
    }
    *out = keep;
    return ASBP_OK;
}

/* Reads the results up to and including the synchronisation point. */
static asbp_code read_sync(asbp_conn *c, const asbp_clock *clk, int64_t deadline_ms,
                           asbp_err *err)
{
    for (;;) {
        PGresult *r;
        asbp_code rc = wait_result(c, clk, deadline_ms, err);
        if (rc)
            return rc;
        r = PQgetResult(c->pg);
        if (!r)
            continue;
        if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            return ASBP_OK;
        }
        PQclear(r);
    }
}

/*
 * Reads the results of the n statements (and of the Prepares sent with
 * them) into res[].  The first failing statement fills err and sets
 * *first_fail; the pipeline then goes on (the server skips the rest: their
 * results say so) unless the connection is lost, which returns its code.
 */
static asbp_code pipeline_read(asbp_conn *c, int n, const int *newprep,
                               PGresult **res, const asbp_clock *clk,
                               int64_t deadline_ms, int *first_fail, asbp_err *err)
{
    int i, step;
    for (i = 0; i < n; i++) {
        for (step = (newprep[i] >= 0 ? 0 : 1); step < 2; step++) {
            PGresult *r = NULL;
            asbp_code rc = read_one(c, clk, deadline_ms, &r, err);
            if (rc)
                return rc;
            switch (PQresultStatus(r)) {
            case PGRES_COMMAND_OK:
            case PGRES_TUPLES_OK:
                if (step == 0) {
                    /* The prepare succeeded: keep the statement known. */
                    c->stmts[newprep[i]].confirmed = 1;
                    c->prepares++;
                    PQclear(r);
                } else {
                    res[i] = r;
                }
                break;
            case PGRES_PIPELINE_ABORTED:
                PQclear(r);
                break;
            default:
                if (*first_fail == NO_FAILURE) {
                    asbp_conn__result_error(c, r, err);
                    *first_fail = i;
                }
                PQclear(r);
                if (PQstatus(c->pg) != CONNECTION_OK)
                    return err->code;
                break;
            }
        }
    }
    return ASBP_OK;
}

static void clear_results(PGresult **res, int n)
{
    int i;
    for (i = 0; i < n; i++) {
        PQclear(res[i]);
        res[i] = NULL;
    }
}

asbp_code asbp_conn_pipeline(asbp_conn *c, const asbp_query *q, int n,
                             PGresult **res, const asbp_clock *clk,
                             int64_t deadline_ms, int *failed_at, asbp_err *err)
{
    int newprep[PIPELINE_MAX];    /* index into c->stmts of a new prepare, or -1 */
    int i, first_fail = NO_FAILURE;
    asbp_code rc;

    if (failed_at)
        *failed_at = -1;
    for (i = 0; i < n; i++)
        res[i] = NULL;
    if (n > PIPELINE_MAX)
        return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                            "internal error: pipeline too long");
    if (!asbp_conn_usable(c))
        return asbp_err_set(err, ASBP_E_IO, ASBP_EC_FAILOVER,
                            "connection to %s is not usable", c->server);
    if (!c->pending_sync && !PQenterPipelineMode(c->pg)) {
        c->broken = 1;
        return asbp_conn__result_error(c, NULL, err);
    }
    ASBP_TRACE(c->lg, "pid %ld: pipeline of %d to %s: %s%s", (long)getpid(), n,
               c->server, q[0].sql, n > 1 ? " ..." : "");
    /* Results still unread from a statement sent without waiting come
     * first (drain_pending): read in the same round trip as ours. */
    if ((rc = pipeline_send(c, q, n, newprep, err)) == ASBP_OK
        && (rc = flush_all(c, clk, deadline_ms, err)) == ASBP_OK
        && (rc = drain_pending(c, clk, deadline_ms, err)) == ASBP_OK
        && (rc = pipeline_read(c, n, newprep, res, clk, deadline_ms, &first_fail,
                               err)) == ASBP_OK)
        rc = read_sync(c, clk, deadline_ms, err);
    if (rc) {
        /* The connection is in an unknown protocol state: never reuse it. */
        c->broken = 1;
        drop_unconfirmed(c);
        clear_results(res, n);
        if (failed_at)
            *failed_at = first_fail >= 0 ? first_fail : -1;
        return rc;
    }
    if (!PQexitPipelineMode(c->pg))
        c->broken = 1;
    drop_unconfirmed(c);
    if (first_fail != NO_FAILURE) {
        clear_results(res, n);
        if (failed_at)
            *failed_at = first_fail;
        return err->code;
    }
    return ASBP_OK;
}

asbp_code asbp_conn_run_count(asbp_conn *c, const asbp_query *q, int n, int which,
                              long long *count, const asbp_clock *clk,
                              int64_t deadline_ms, asbp_err *err)
{
    PGresult *res[PIPELINE_MAX];
    asbp_code rc;
    *count = 0;
    if (n > PIPELINE_MAX || which < 0 || which >= n)
        return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                            "internal error: pipeline too long");
    rc = asbp_conn_pipeline(c, q, n, res, clk, deadline_ms, NULL, err);
    if (rc == ASBP_OK)
        *count = atoll(PQcmdTuples(res[which]));
    clear_results(res, n);
    return rc;
}

int asbp_conn_quote(const asbp_conn *c, const char *s, asbp_buf *out, char *why,
                    size_t nwhy)
{
    char *q = PQescapeLiteral(c->pg, s, strlen(s));
    int rc;
    if (!q) {
        size_t len;
        snprintf(why, nwhy, "%s", PQerrorMessage(c->pg));
        len = strlen(why);
        while (len && (why[len - 1] == '\n' || why[len - 1] == ' '))
            why[--len] = '\0';
        return -1;
    }
    rc = asbp_buf_puts(out, q);
    PQfreemem(q);
    return rc < 0 ? -2 : 0;
}
