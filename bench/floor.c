/*
 * bench/floor.c: the floor for the tie benchmark.  The same statements the
 * module sends for each operation, through raw libpq on one persistent
 * connection, prepared once, pipelined the same way:
 *
 *   create: [BEGIN; INSERT] [UPDATE] [COMMIT]
 *   read:   [BEGIN; SELECT ... FOR UPDATE] [ROLLBACK, not waited for: its
 *           answer is read with the next pipeline, as the module does]
 *   update: [BEGIN; SELECT ... FOR UPDATE] [UPDATE] [COMMIT]
 *   delete: [BEGIN; SELECT ... FOR UPDATE] [DELETE] [COMMIT]
 *
 * usage: floor CONNINFO TABLE JSONFILE SECONDS OP FIRST LIMIT
 *   OP is create, read, update or delete; read, update and delete use the
 *   pre-filled rows whose ids are sprintf("%064x", n) for n = FIRST, FIRST+1...
 *   (delete consumes at most LIMIT of them); create makes new random ids.
 * prints "OP ops_per_second".
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static PGconn *conn;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "floor: %s: %s\n", what, PQerrorMessage(conn));
    exit(1);
}

/* Sends n statements (name NULL: plain text) in one pipeline, waits for all. */
typedef struct { const char *name; const char *sql; int np; const char *v[2]; } stmt;

static int pending;   /* a ROLLBACK sent without waiting: 1 command + sync */

static void drain(void)
{
    PGresult *r;
    if (!pending)
        return;
    while ((r = PQgetResult(conn)) != NULL)
        PQclear(r);
    r = PQgetResult(conn);
    if (!r || PQresultStatus(r) != PGRES_PIPELINE_SYNC)
        die("no sync (pending)");
    PQclear(r);
    pending = 0;
}

static void send_nowait(const char *sql)
{
    drain();
    if (!PQsendQueryParams(conn, sql, 0, NULL, NULL, NULL, NULL, 0) || !PQpipelineSync(conn))
        die("send");
    pending = 1;
}

static int pipeline(stmt *s, int n)
{
    int i, ok = 1;
    PGresult *r;
    for (i = 0; i < n; i++) {
        int sent = s[i].name
            ? PQsendQueryPrepared(conn, s[i].name, s[i].np, s[i].v, NULL, NULL, 0)
            : PQsendQueryParams(conn, s[i].sql, 0, NULL, NULL, NULL, NULL, 0);
        if (!sent)
            die("send");
    }
    if (!PQpipelineSync(conn))
        die("sync");
    drain();
    for (i = 0; i < n; i++) {
        while ((r = PQgetResult(conn)) != NULL) {
            ExecStatusType st = PQresultStatus(r);
            if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
                fprintf(stderr, "floor: %s", PQresultErrorMessage(r));
                ok = 0;
            }
            PQclear(r);
        }
    }
    r = PQgetResult(conn);
    if (!r || PQresultStatus(r) != PGRES_PIPELINE_SYNC)
        die("no sync");
    PQclear(r);
    return ok;
}

static void prepare(const char *name, const char *sql, int np)
{
    PGresult *r = PQprepare(conn, name, sql, np, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        die(sql);
    PQclear(r);
}

/* A random 64-hex id, as the module generates (random B-tree positions). */
static void random_id(char *id)
{
    static FILE *ur;
    unsigned char raw[32];
    int i;
    if (!ur)
        ur = fopen("/dev/urandom", "rb");
    if (!ur || fread(raw, 1, sizeof raw, ur) != sizeof raw)
        exit(3);
    for (i = 0; i < 32; i++)
        snprintf(id + 2 * i, 3, "%02x", raw[i]);
}

static void rowid(char *id, unsigned long n)
{
    snprintf(id, 65, "%064lx", n);
}

int main(int argc, char **argv)
{
    char sql[512], id[65];
    char *json;
    long len;
    FILE *f;
    double secs, t0;
    unsigned long n = 0, first, limit;
    const char *op;

    if (argc != 8) {
        fprintf(stderr, "usage: floor CONNINFO TABLE JSONFILE SECONDS OP FIRST LIMIT\n");
        return 2;
    }
    secs = atof(argv[4]);
    op = argv[5];
    first = strtoul(argv[6], NULL, 10);
    limit = strtoul(argv[7], NULL, 10);
    f = fopen(argv[3], "rb");
    if (!f)
        return 2;
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    json = malloc((size_t)len + 1);
    if (!json || fread(json, 1, (size_t)len, f) != (size_t)len)
        return 2;
    json[len] = 0;
    fclose(f);

    conn = PQconnectdb(argv[1]);
    if (PQstatus(conn) != CONNECTION_OK)
        die("connect");
    snprintf(sql, sizeof sql, "SELECT a_session FROM %s WHERE id = $1 FOR UPDATE", argv[2]);
    prepare("sel", sql, 1);
    snprintf(sql, sizeof sql, "INSERT INTO %s (id, a_session) VALUES ($1, $2)", argv[2]);
    prepare("ins", sql, 2);
    snprintf(sql, sizeof sql, "UPDATE %s SET a_session = $2 WHERE id = $1", argv[2]);
    prepare("upd", sql, 2);
    snprintf(sql, sizeof sql, "DELETE FROM %s WHERE id = $1", argv[2]);
    prepare("del", sql, 1);
    prepare("begin", "BEGIN", 0);
    prepare("commit", "COMMIT", 0);
    prepare("rollback", "ROLLBACK", 0);
    if (!PQenterPipelineMode(conn))
        die("pipeline mode");

    t0 = now();
    for (n = 0; now() - t0 < secs && n < limit; n++) {
        stmt sel[2] = { { "begin", NULL, 0, { 0 } }, { "sel", NULL, 1, { id } } };
        stmt commit[1] = { { "commit", NULL, 0, { 0 } } };
        if (!strcmp(op, "create")) {
            stmt a[2] = { { "begin", NULL, 0, { 0 } }, { "ins", NULL, 2, { id, "{}" } } };
            stmt b[1] = { { "upd", NULL, 2, { id, json } } };
            random_id(id);
            pipeline(a, 2);
            pipeline(b, 1);
            pipeline(commit, 1);
        } else if (!strcmp(op, "read")) {
            rowid(id, first + n % 1000);
            pipeline(sel, 2);
            send_nowait("ROLLBACK");
        } else if (!strcmp(op, "update")) {
            stmt b[1] = { { "upd", NULL, 2, { id, json } } };
            rowid(id, first + n % 1000);
            pipeline(sel, 2);
            pipeline(b, 1);
            pipeline(commit, 1);
        } else {
            stmt b[1] = { { "del", NULL, 1, { id } } };
            rowid(id, first + n);
            pipeline(sel, 2);
            pipeline(b, 1);
            pipeline(commit, 1);
        }
    }
    printf("%s %.1f\n", op, n / (now() - t0));
    PQfinish(conn);
    free(json);
    return 0;
}
