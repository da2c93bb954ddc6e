/*
 * Unit tests: parsing and validating Patroni /cluster answers
 * (asbp_patroni), and URL masking (asbp_url_mask).
 * Runs with cwd = the distribution's top directory (fixtures in
 * t/data/patroni/, recorded from a real Patroni 3.0.2 cluster).
 */
#include "tap.h"
#include "asbp_patroni.h"
#include "asbp_discovery.h"
#include "asbp_buf.h"

#include <curl/curl.h>

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *p = NULL;
    long n;
    *len = 0;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        p = malloc((size_t)n + 1);
        if (p && fread(p, 1, (size_t)n, f) == (size_t)n) {
            p[n] = '\0';
            *len = (size_t)n;
        } else {
            free(p);
            p = NULL;
        }
    }
    fclose(f);
    return p;
}

static asbp_err last_err;

/* Parses a NUL-terminated body; NULL on error (message in last_err). */
static asbp_topology *parse_n(const char *body, size_t len)
{
    asbp_topology *t = (asbp_topology *)0x1;
    asbp_err_clear(&last_err);
    if (asbp_patroni_parse(body, len, &t, &last_err) != ASBP_OK) {
        if (t != NULL)
            tap_diag("output not NULL after an error");
        return NULL;
    }
    return t;
}

static asbp_topology *parse(const char *body)
{
    return parse_n(body, strlen(body));
}

/* Parses a body and returns the leader status (-1 when not parsable). */
static int leader_of(const char *body, const char **host, int *port)
{
    asbp_topology *t = parse(body);
    const asbp_member *m;
    int st;
    static char hbuf[300];
    if (!t) {
        tap_diag("parse failed: %s", last_err.msg);
        return -1;
    }
    st = (int)asbp_topology_leader(t, &m);
    hbuf[0] = '\0';
    if (m && m->host)
        snprintf(hbuf, sizeof hbuf, "%s", m->host);
    if (host)
        *host = m ? (m->host ? hbuf : "(no host)") : "(no leader)";
    if (port)
        *port = m ? m->port : -1;
    asbp_topology_free(t);
    return st;
}

/* A one-member answer whose leader has the given JSON fields. */
static int leader_with(const char *fields, const char **host, int *port)
{
    char body[1024];
    snprintf(body, sizeof body,
             "{\"members\":[{\"name\":\"n1\",\"role\":\"replica\",\"state\":\"running\","
             "\"host\":\"10.0.0.2\",\"port\":5432},{\"name\":\"n0\",\"role\":\"leader\"%s%s}]}",
             fields[0] ? "," : "", fields);
    return leader_of(body, host, port);
}

static int port_of(const char *port_json)
{
    char f[256];
    int port = -1;
    snprintf(f, sizeof f, "\"host\":\"h\",\"state\":\"running\",\"port\":%s", port_json);
    leader_with(f, NULL, &port);
    return port;
}

static void refused(const char *body, size_t len, const char *needle, const char *name)
{
    asbp_topology *t = parse_n(body, len);
    ok(t == NULL, "refused: %s", name);
    is_int(last_err.code, ASBP_E_DISCOVERY, "  error code discovery (%s)", name);
    is_int(last_err.eclass, ASBP_EC_FAILOVER, "  class failover (%s)", name);
    if (needle)
        like_str(last_err.msg, needle, "  message explains (%s)", name);
    asbp_topology_free(t);
}

#define REFUSED(body, needle, name) refused((body), strlen(body), (needle), (name))

static void samples(void)
{
    const char *files[] = {
        "t/data/patroni/patroni-3.0.2-cluster.json",
        "t/data/patroni/patroni-3.0.2-cluster-sync.json",
        "t/data/patroni/patroni-3.0.2-cluster-noleader.json",
    };
    size_t len, i;
    char *body;
    asbp_topology *t;
    const asbp_member *m;

    for (i = 0; i < 3; i++) {
        body = slurp(files[i], &len);
        if (!ok(body != NULL, "fixture %s readable", files[i])) {
            tap_diag("run from the distribution's top directory");
            continue;
        }
        t = parse_n(body, len);
        ok(t != NULL, "sample %s parses", files[i]);
        if (!t) {
            tap_diag("%s", last_err.msg);
            free(body);
            continue;
        }
        if (i < 2) {
            is_int(t->n, 3, "three members");
            is_int(asbp_topology_leader(t, &m), ASBP_LEADER_OK, "leader found");
            is_str(m ? m->name : NULL, "node1", "leader is node1");
            is_str(m ? m->host : NULL, "127.0.0.1", "leader host");
            is_int(m ? m->port : 0, 15432, "leader port");
            is_str(m ? m->state : NULL, "running", "leader state");
            is_str(m ? m->api_url : NULL, "http://127.0.0.1:18008/patroni", "api_url kept");
            is_str(t->members[1].role, i == 0 ? "replica" : "sync_standby",
                   "second member's role");
            is_int(t->members[2].port, 15434, "third member's port");
            is_str(t->members[2].host, "127.0.0.1", "third member's host");
        } else {
            is_int(t->n, 2, "two surviving members");
            is_int(asbp_topology_leader(t, &m), ASBP_LEADER_NONE,
                   "no leader right after the leader died");
            ok(m == NULL, "no leader member returned");
            is_int(t->members[1].port, 15433, "survivor's port kept (fallback list)");
        }
        asbp_topology_free(t);

        /* Every truncation of a real answer is refused cleanly. */
        {
            size_t cut, bad = 0, end = len;
            while (end > 0 && (body[end - 1] == ' ' || body[end - 1] == '\n'))
                end--;
            for (cut = 0; cut < end; cut++) {
                t = parse_n(body, cut);
                if (t || last_err.code != ASBP_E_DISCOVERY)
                    bad++;
                asbp_topology_free(t);
            }
            is_int(bad, 0, "every truncation of %s is refused", files[i]);
        }
        free(body);
    }
}

static void leader_selection(void)
{
    const char *h;
    int p;

    is_int(leader_with("\"host\":\"10.0.0.1\",\"port\":5432,\"state\":\"running\"", &h, &p),
           ASBP_LEADER_OK, "leader OK");
    is_str(h, "10.0.0.1", "its host");
    is_int(p, 5432, "its port");
    is_int(leader_with("\"host\":\"10.0.0.1\",\"port\":5432", NULL, NULL),
           ASBP_LEADER_OK, "state absent: OK");

    is_int(leader_of("{\"members\":[{\"role\":\"replica\",\"host\":\"a\",\"port\":1}]}", NULL, NULL),
           ASBP_LEADER_NONE, "no leader");
    is_int(leader_of("{\"members\":[]}", NULL, NULL), ASBP_LEADER_NONE, "empty members: no leader");
    is_int(leader_of("{\"members\":[{\"role\":\"standby_leader\",\"state\":\"running\","
                     "\"host\":\"a\",\"port\":1}]}", NULL, NULL),
           ASBP_LEADER_NONE, "standby_leader only: no leader");
    is_int(leader_of("{\"members\":[{\"role\":\"master\",\"host\":\"a\",\"port\":1}]}", NULL, NULL),
           ASBP_LEADER_NONE, "role master is not a leader");
    is_int(leader_of("{\"members\":[{\"role\":\"Leader\",\"host\":\"a\",\"port\":1}]}", NULL, NULL),
           ASBP_LEADER_NONE, "role comparison is case-sensitive");
    is_int(leader_of("{\"members\":[{\"role\":\"sync_standby\",\"host\":\"a\",\"port\":1},"
                     "{\"role\":\"quorum_standby\",\"host\":\"b\",\"port\":1},"
                     "{\"host\":\"c\",\"port\":1}]}", NULL, NULL),
           ASBP_LEADER_NONE, "sync_standby, quorum_standby, no role: no leader");
    is_int(leader_of("{\"members\":[{\"role\":\"leader\\u0000\",\"host\":\"a\",\"port\":1}]}", NULL, NULL),
           ASBP_LEADER_NONE, "role with an embedded NUL is not leader");

    is_int(leader_with("\"port\":5432,\"state\":\"running\"", &h, NULL),
           ASBP_LEADER_BAD_ADDRESS, "leader without host");
    is_str(h, "(no host)", "the leader member is still returned");
    is_int(leader_with("\"host\":\"a\",\"state\":\"running\"", NULL, &p),
           ASBP_LEADER_BAD_ADDRESS, "leader without port");
    is_int(p, 0, "absent port reads 0");
    is_int(leader_with("\"host\":\"\",\"port\":1", NULL, NULL), ASBP_LEADER_BAD_ADDRESS,
           "empty host");
    is_int(leader_with("\"host\":null,\"port\":1", NULL, NULL), ASBP_LEADER_BAD_ADDRESS,
           "null host");
    is_int(leader_with("\"host\":127001,\"port\":1", NULL, NULL), ASBP_LEADER_BAD_ADDRESS,
           "numeric host");
    is_int(leader_with("\"host\":{\"v\":\"a\"},\"port\":1", NULL, NULL), ASBP_LEADER_BAD_ADDRESS,
           "object host");
    is_int(leader_with("\"host\":\"127.0.0.1\\u0000evil\",\"port\":1", NULL, NULL),
           ASBP_LEADER_BAD_ADDRESS, "host with an embedded NUL is no host");
    is_int(leader_with("\"host\":\"h1,h2\",\"port\":1", NULL, NULL), ASBP_LEADER_BAD_ADDRESS,
           "host with a comma (libpq host list) is no host");
    is_int(leader_with("\"host\":\"h 1\",\"port\":1", NULL, NULL), ASBP_LEADER_BAD_ADDRESS,
           "host with a space");
    is_int(leader_with("\"host\":\"h\\t1\",\"port\":1", NULL, NULL), ASBP_LEADER_BAD_ADDRESS,
           "host with a tab");
    is_int(leader_with("\"host\":\"h\\n1\",\"port\":1", NULL, NULL), ASBP_LEADER_BAD_ADDRESS,
           "host with a newline");
    is_int(leader_with("\"host\":\"h\\u007f\",\"port\":1", NULL, NULL), ASBP_LEADER_BAD_ADDRESS,
           "host with DEL");
    {
        char f[600];
        memset(f, 0, sizeof f);
        strcpy(f, "\"port\":1,\"host\":\"");
        memset(f + strlen(f), 'a', 256);
        strcat(f, "\"");
        is_int(leader_with(f, NULL, NULL), ASBP_LEADER_BAD_ADDRESS, "host of 256 bytes");
        f[strlen(f) - 2] = '\"';
        f[strlen(f) - 1] = '\0';
        is_int(leader_with(f, NULL, NULL), ASBP_LEADER_OK, "host of 255 bytes");
    }
    is_int(leader_with("\"host\":\"\\u0031\\u0032\\u0037.0.0.1\",\"port\":1", &h, NULL),
           ASBP_LEADER_OK, "unicode escapes in host decoded");
    is_str(h, "127.0.0.1", "decoded host");
    is_int(leader_with("\"host\":\"::1\",\"port\":1", &h, NULL), ASBP_LEADER_OK,
           "IPv6 literal host");
    is_int(leader_with("\"host\":\"db-1.example.org\",\"port\":1", &h, NULL), ASBP_LEADER_OK,
           "DNS name host");

    is_int(port_of("5432"), 5432, "port 5432");
    is_int(port_of("1"), 1, "port 1");
    is_int(port_of("65535"), 65535, "port 65535");
    is_int(port_of("0"), 0, "port 0 is not sane");
    is_int(port_of("70000"), 0, "port 70000 is not sane");
    is_int(port_of("65536"), 0, "port 65536 is not sane");
    is_int(port_of("-1"), 0, "port -1 is not sane");
    is_int(port_of("-5432"), 0, "port -5432 is not sane");
    is_int(port_of("1.5"), 0, "port 1.5 is not sane");
    is_int(port_of("5432.0"), 0, "port 5432.0 is not sane (a float)");
    is_int(port_of("5e3"), 0, "port 5e3 is not sane");
    is_int(port_of("true"), 0, "port true is not sane");
    is_int(port_of("false"), 0, "port false is not sane");
    is_int(port_of("null"), 0, "port null is not sane");
    is_int(port_of("[5432]"), 0, "port [5432] is not sane");
    is_int(port_of("{\"p\":5432}"), 0, "port object is not sane");
    is_int(port_of("99999999999999999999999999"), 0, "huge port is not sane (no parse error)");
    is_int(port_of("\"5432\""), 5432, "port \"5432\" (digits-only string) accepted");
    is_int(port_of("\"05432\""), 5432, "port \"05432\" accepted");
    is_int(port_of("\"70000\""), 0, "port \"70000\" is not sane");
    is_int(port_of("\" 5432\""), 0, "port \" 5432\" is not sane");
    is_int(port_of("\"54x\""), 0, "port \"54x\" is not sane");
    is_int(port_of("\"\""), 0, "port \"\" is not sane");
    is_int(port_of("\"-1\""), 0, "port \"-1\" is not sane");
    is_int(leader_with("\"host\":\"h\",\"port\":0", NULL, NULL), ASBP_LEADER_BAD_ADDRESS,
           "leader with port 0: bad address");

    is_int(leader_with("\"host\":\"h\",\"port\":1,\"state\":\"starting\"", NULL, NULL),
           ASBP_LEADER_NOT_RUNNING, "leader starting");
    is_int(leader_with("\"host\":\"h\",\"port\":1,\"state\":\"stopped\"", NULL, NULL),
           ASBP_LEADER_NOT_RUNNING, "leader stopped");
    is_int(leader_with("\"host\":\"h\",\"port\":1,\"state\":\"stopping\"", &h, NULL),
           ASBP_LEADER_NOT_RUNNING, "leader stopping");
    is_str(h, "h", "the not-running leader member is returned");
    is_int(leader_with("\"host\":\"h\",\"port\":1,\"state\":\"Running\"", NULL, NULL),
           ASBP_LEADER_NOT_RUNNING, "state comparison is case-sensitive");
    is_int(leader_with("\"host\":\"h\",\"port\":1,\"state\":\"running\\u0000x\"", NULL, NULL),
           ASBP_LEADER_NOT_RUNNING, "state with an embedded NUL is not running");
    is_int(leader_with("\"port\":1,\"state\":\"stopping\"", NULL, NULL),
           ASBP_LEADER_BAD_ADDRESS, "no host and stopping: the address is checked first");

    is_int(leader_of("{\"members\":[{\"role\":\"leader\",\"host\":\"a\",\"port\":1},"
                     "{\"role\":\"leader\",\"host\":\"b\",\"port\":2}]}", &h, NULL),
           ASBP_LEADER_MULTIPLE, "two leaders in one answer");
    is_str(h, "(no leader)", "no member returned for MULTIPLE");

    /* Patroni 3.0.4+: replicas report "streaming". */
    is_int(leader_of("{\"members\":[{\"name\":\"n1\",\"role\":\"leader\",\"state\":\"running\","
                     "\"api_url\":\"http://127.0.0.1:18008/patroni\",\"host\":\"127.0.0.1\","
                     "\"port\":15432,\"timeline\":3},{\"name\":\"n2\",\"role\":\"replica\","
                     "\"state\":\"streaming\",\"host\":\"127.0.0.1\",\"port\":15433,"
                     "\"timeline\":3,\"lag\":0},{\"name\":\"n3\",\"role\":\"replica\","
                     "\"state\":\"in archive recovery\",\"host\":\"127.0.0.1\",\"port\":15434,"
                     "\"timeline\":3,\"lag\":\"unknown\"}]}", &h, &p),
           ASBP_LEADER_OK, "3.0.4-style answer (streaming replica, lag unknown)");
    is_int(p, 15432, "its leader port");

    /* Patroni 4.x: scope, pause, scheduled_switchover, quorum_standby, *_lsn. */
    {
        const char *body =
            "{\"scope\":\"demo\",\"pause\":true,"
            "\"scheduled_switchover\":{\"at\":\"2024-05-01T10:00:00+00:00\",\"from\":\"n1\","
            "\"to\":\"n2\",\"nested\":[[{\"deep\":[1,2,{\"x\":null}]}]]},"
            "\"members\":["
            "{\"name\":\"n1\",\"role\":\"leader\",\"state\":\"running\","
            "\"api_url\":\"https://10.0.0.1:8008/patroni\",\"host\":\"10.0.0.1\",\"port\":5432,"
            "\"timeline\":7,\"tags\":{\"nofailover\":false,\"list\":[1,\"a\",{\"b\":[]}]}},"
            "{\"name\":\"n2\",\"role\":\"quorum_standby\",\"state\":\"streaming\","
            "\"host\":\"10.0.0.2\",\"port\":5432,\"timeline\":7,\"receive_lsn\":\"0/5000060\","
            "\"receive_lag\":0,\"replay_lsn\":\"unknown\",\"replay_lag\":\"unknown\",\"lag\":0},"
            "{\"name\":\"n3\",\"role\":\"replica\",\"state\":\"streaming\",\"host\":\"10.0.0.3\","
            "\"port\":5432,\"timeline\":7,\"lag\":\"unknown\",\"pending_restart\":true}]}";
        asbp_topology *t = parse(body);
        const asbp_member *m = NULL;
        ok(t != NULL, "4.x answer parses");
        if (t) {
            is_int(t->n, 3, "4.x: three members");
            is_int(asbp_topology_leader(t, &m), ASBP_LEADER_OK, "4.x: leader found");
            is_str(m ? m->host : NULL, "10.0.0.1", "4.x: leader host");
            is_str(t->members[1].role, "quorum_standby", "4.x: quorum_standby kept");
            is_str(t->members[2].state, "streaming", "4.x: streaming kept");
            is_str(t->members[0].api_url, "https://10.0.0.1:8008/patroni",
                   "api_url after a nested unknown field");
        }
        asbp_topology_free(t);
    }

    is_str(asbp_leader_status_name(ASBP_LEADER_NONE), "no leader", "status name");
    is_str(asbp_leader_status_name(ASBP_LEADER_BAD_ADDRESS), "leader missing host or port",
           "status name (bad address)");
    is_int(asbp_topology_leader(NULL, &(const asbp_member *){ NULL }), ASBP_LEADER_NONE,
           "NULL topology: no leader");
}

static void shapes(void)
{
    asbp_topology *t;
    const asbp_member *m;
    const char *h;

    /* Duplicate keys: the last wins. */
    is_int(leader_of("{\"members\":[{\"role\":\"replica\",\"role\":\"leader\",\"host\":\"a\","
                     "\"port\":1}]}", NULL, NULL), ASBP_LEADER_OK, "duplicate role: last wins");
    is_int(leader_of("{\"members\":[{\"role\":\"leader\",\"host\":\"a\",\"host\":null,"
                     "\"port\":1}]}", NULL, NULL), ASBP_LEADER_BAD_ADDRESS,
           "duplicate host, last is null: no host");
    is_int(leader_of("{\"members\":[{\"role\":\"leader\",\"host\":\"a\",\"port\":1,"
                     "\"port\":\"x\"}]}", NULL, NULL), ASBP_LEADER_BAD_ADDRESS,
           "duplicate port, last is bad: port 0");
    is_int(leader_of("{\"members\":[{\"role\":\"leader\",\"host\":\"a\",\"port\":1}],"
                     "\"members\":[{\"role\":\"replica\",\"host\":\"b\",\"port\":2}]}", NULL, NULL),
           ASBP_LEADER_NONE, "duplicate members: the last array wins");
    t = parse("{\"members\":[{\"role\":\"leader\",\"host\":\"a\",\"port\":1},{},{}],"
              "\"members\":[{\"role\":\"leader\",\"host\":\"b\",\"port\":2}]}");
    ok(t && t->n == 1, "duplicate members: only the last array's members");
    if (t) {
        asbp_topology_leader(t, &m);
        is_str(m ? m->host : NULL, "b", "  from the last array");
    }
    asbp_topology_free(t);

    /* Unicode. */
    t = parse("{\"members\":[{\"name\":\"n\\u00f6de\\ud83d\\ude00\",\"role\":\"leader\","
              "\"host\":\"h\",\"port\":1}]}");
    ok(t != NULL, "unicode escapes parse");
    is_str(t ? t->members[0].name : NULL, "n\xc3\xb6" "de\xf0\x9f\x98\x80",
           "\\u escapes and a surrogate pair decoded to UTF-8");
    asbp_topology_free(t);
    t = parse("{\"members\":[{\"name\":\"bad\\u0001\\u0000x\",\"role\":\"leader\"}]}");
    is_str(t ? t->members[0].name : NULL, "bad??x", "controls and NUL in a name become ?");
    asbp_topology_free(t);
    t = parse("{\"members\":[{\"name\":\"caf\xc3\xa9\",\"host\":\"h\xc3\xa9\",\"port\":1,"
              "\"role\":\"leader\"}]}");
    is_str(t ? t->members[0].name : NULL, "caf\xc3\xa9", "raw UTF-8 kept");
    asbp_topology_free(t);
    REFUSED("{\"members\":[{\"name\":\"\xff\xfe\"}]}", "bad JSON", "invalid UTF-8");
    refused("{\"members\":[{\"host\":\"a\0b\"}]}", 27, "bad JSON", "raw NUL byte in a string");

    /* Fields of other types, unknown fields of every type. */
    t = parse("{\"x\":1,\"y\":\"s\",\"z\":null,\"w\":true,\"v\":1.5e10,\"u\":[],\"t\":{},"
              "\"members\":[{\"name\":5,\"role\":\"leader\",\"state\":[\"running\"],"
              "\"host\":\"h\",\"port\":1,\"api_url\":false,\"lag\":\"unknown\","
              "\"timeline\":1e400,\"o\":{\"a\":{\"b\":{\"c\":[[[]]]}}}}],\"after\":[1,{}]}");
    ok(t != NULL, "values of every type in known and unknown fields");
    if (t) {
        ok(t->members[0].name == NULL, "numeric name: absent");
        ok(t->members[0].state == NULL, "array state: absent");
        ok(t->members[0].api_url == NULL, "bool api_url: absent");
        is_int(asbp_topology_leader(t, &m), ASBP_LEADER_OK, "state absent: leader OK");
    }
    asbp_topology_free(t);
    is_int(leader_of(" \n\t{\"members\":[{\"role\":\"leader\",\"host\":\"h\",\"port\":1}]} \n",
                     &h, NULL), ASBP_LEADER_OK, "surrounding whitespace accepted");

    /* Refused shapes. */
    REFUSED("{\"members\": [}", "bad JSON", "malformed: ] expected");
    REFUSED("{members: []}", "bad JSON", "malformed: unquoted key");
    REFUSED("{'members': []}", "bad JSON", "malformed: single quotes");
    REFUSED("{\"members\": [], }", "bad JSON", "malformed: trailing comma");
    REFUSED("{\"members\": []} /* c */", "bad JSON", "comments not allowed");
    REFUSED("{\"members\":[{\"role\":\"leader\",\"host\":\"h\",\"port\":1}", "bad JSON",
            "truncated");
    REFUSED("{\"members\":[{\"role\":\"leader\",\"host\":\"h", "bad JSON",
            "truncated in a string");
    REFUSED("{\"members\":[]} x", "bad JSON", "trailing garbage");
    REFUSED("{\"members\":[]}{\"members\":[]}", "bad JSON", "two objects");
    REFUSED("<html><body>503 Service Unavailable</body></html>", "bad JSON", "HTML");
    REFUSED("Hello", "bad JSON", "plain text");
    refused("", 0, "empty answer", "empty body");
    REFUSED("   \n", "bad JSON", "whitespace only");
    REFUSED("[{\"members\":[]}]", "not a JSON object", "top-level array");
    REFUSED("\"members\"", "not a JSON object", "top-level string");
    REFUSED("42", "not a JSON object", "top-level number");
    REFUSED("null", "not a JSON object", "top-level null");
    REFUSED("true", "not a JSON object", "top-level true");
    REFUSED("{}", "no \"members\" array", "no members");
    REFUSED("{\"member\":[]}", "no \"members\" array", "members misspelt");
    REFUSED("{\"x\":{\"members\":[]}}", "no \"members\" array", "members nested deeper");
    REFUSED("{\"members\":{}}", "\"members\" is not an array", "members is an object");
    REFUSED("{\"members\":\"x\"}", "\"members\" is not an array", "members is a string");
    REFUSED("{\"members\":null}", "\"members\" is not an array", "members is null");
    REFUSED("{\"members\":3}", "\"members\" is not an array", "members is a number");
    REFUSED("{\"members\":[],\"members\":5}", "\"members\" is not an array",
            "duplicate members, last not an array");
    REFUSED("{\"members\":[1]}", "member 1 is not an object", "member is a number");
    REFUSED("{\"members\":[[]]}", "member 1 is not an object", "member is an array");
    REFUSED("{\"members\":[{\"role\":\"leader\"},\"x\"]}", "member 2 is not an object",
            "second member is a string");
    REFUSED("{\"members\":[null]}", "member 1 is not an object", "member is null");

    /* The messages never quote the body. */
    REFUSED("{\"members\": [SECRETTOKEN]}", "bad JSON", "garbage token");
    unlike_str(last_err.msg, "SECRET", "  the body is not quoted in the message");
    REFUSED("{\"members\": 1, \"SECRETKEY\": 1}", NULL, "members not array");
    unlike_str(last_err.msg, "SECRET", "  not quoted there either");
    like_str(last_err.msg, "at byte", "  the message gives the offset");
}

static char *repeat(const char *head, char ch, size_t n, const char *mid, char close,
                    const char *tail)
{
    size_t hl = strlen(head), ml = strlen(mid), tl = strlen(tail);
    char *b = malloc(hl + n + ml + (close ? n : 0) + tl + 1), *p = b;
    memcpy(p, head, hl);
    p += hl;
    memset(p, ch, n);
    p += n;
    memcpy(p, mid, ml);
    p += ml;
    if (close) {
        memset(p, close, n);
        p += n;
    }
    memcpy(p, tail, tl);
    p[tl] = '\0';
    return b;
}

static void limits(void)
{
    char *b;
    asbp_topology *t;
    size_t i;

    /* Depth: the top-level object is level 1. */
    b = repeat("{\"x\":", '[', ASBP_PATRONI_MAX_DEPTH - 1, "", ']', ",\"members\":[]}");
    t = parse(b);
    ok(t != NULL, "nesting of exactly %d levels accepted", ASBP_PATRONI_MAX_DEPTH);
    asbp_topology_free(t);
    free(b);
    b = repeat("{\"x\":", '[', ASBP_PATRONI_MAX_DEPTH, "", ']', ",\"members\":[]}");
    REFUSED(b, "nested deeper than 64", "nesting of 65 levels");
    free(b);
    b = repeat("{\"members\":[],\"x\":", '[', 100000, "", 0, "");
    REFUSED(b, "nested deeper than 64", "100000 '[' in an unknown field: clean error");
    free(b);
    b = repeat("{\"members\":[{\"role\":\"leader\",\"x\":", '[', 100000, "1", ']', "}]}");
    REFUSED(b, "nested deeper than 64", "100000 nested arrays in a member: clean error");
    free(b);
    {
        /* {"a":{"a":{"a":... 100000 deep */
        size_t n = 100000, k;
        char *q = b = malloc(n * 5 + 2);
        for (k = 0; k < n; k++) {
            memcpy(q, "{\"a\":", 5);
            q += 5;
        }
        *q = '\0';
        REFUSED(b, "nested deeper than 64", "100000 nested objects at top level");
        free(b);
    }

    /* Size: exactly 1 MiB passes, one byte more does not. */
    {
        const char *core = "{\"members\":[{\"role\":\"leader\",\"host\":\"h\",\"port\":1}]}";
        size_t cl = strlen(core);
        b = malloc(ASBP_PATRONI_MAX_BODY + 2);
        memcpy(b, core, cl);
        memset(b + cl, ' ', ASBP_PATRONI_MAX_BODY + 1 - cl);
        t = parse_n(b, ASBP_PATRONI_MAX_BODY);
        ok(t != NULL, "an answer of exactly 1 MiB is accepted");
        asbp_topology_free(t);
        refused(b, ASBP_PATRONI_MAX_BODY + 1, "larger than 1 MiB", "1 MiB + 1 byte");
        free(b);
    }

    /* Members: at most ASBP_PATRONI_MAX_MEMBERS. */
    {
        asbp_buf mb = ASBP_BUF_INIT;
        asbp_buf_puts(&mb, "{\"members\":[");
        for (i = 0; i < ASBP_PATRONI_MAX_MEMBERS; i++)
            asbp_buf_printf(&mb, "%s{\"name\":\"n%lu\",\"host\":\"h\",\"port\":%lu}",
                            i ? "," : "", (unsigned long)i, (unsigned long)(i % 60000 + 1));
        asbp_buf_puts(&mb, "]}");
        t = parse_n(mb.data, mb.len);
        ok(t && t->n == ASBP_PATRONI_MAX_MEMBERS, "%d members accepted",
           ASBP_PATRONI_MAX_MEMBERS);
        if (t)
            is_str(t->members[ASBP_PATRONI_MAX_MEMBERS - 1].name, "n1023", "last member kept");
        asbp_topology_free(t);
        mb.len -= 2;
        asbp_buf_puts(&mb, ",{}]}");
        refused(mb.data, mb.len, "more than 1024 members", "one member too many");
        asbp_buf_free(&mb);
    }

    /* A 1 MiB member name is fine (bounded by the body size). */
    b = repeat("{\"members\":[{\"name\":\"", 'n', ASBP_PATRONI_MAX_BODY - 40, "", 0,
               "\"}]}");
    t = parse(b);
    ok(t && t->members[0].name && strlen(t->members[0].name) == ASBP_PATRONI_MAX_BODY - 40,
       "a near-1 MiB string value");
    asbp_topology_free(t);
    free(b);
}

static void url_masking(void)
{
    char buf[512];
    struct { const char *in, *out, *name; } c[] = {
        { "http://user:pw@host:8008/cluster", "http://user:***@host:8008/cluster", "user:password" },
        { "https://u:s3cr%40t@10.0.0.1:8008/cluster", "https://u:***@10.0.0.1:8008/cluster",
          "https, percent-encoded password" },
        { "http://host:8008/cluster", "http://host:8008/cluster", "no credentials" },
        { "http://user@host/cluster", "http://***@host/cluster", "a user name alone (a token)" },
        { "https://t0k3n@host:8008/cluster", "https://***@host:8008/cluster", "a token as user name" },
        { "http://@host/", "http://***@host/", "an empty userinfo" },
        { "http://u:p@ss@host/", "http://u:***@host/", "raw @ in the password" },
        { "http://u:p/ss@host/cluster", "http://u:***@host/cluster", "raw / in the password" },
        { "http://u:p?ss@host/cluster", "http://u:***@host/cluster", "raw ? in the password" },
        { "http://u:pw@host/x?mail=a@b", "http://u:***@host/x?mail=a@b", "@ in the query" },
        { "u:pw@host:8008/cluster", "u:***@host:8008/cluster", "no scheme" },
        { "http://:pw@host/", "http://:***@host/", "empty user" },
        { "http://u:@host/", "http://u:***@host/", "empty password" },
        { "http://[::1]:8008/cluster", "http://[::1]:8008/cluster", "IPv6 literal, no credentials" },
        { "http://u:pw@[::1]:8008/cluster", "http://u:***@[::1]:8008/cluster", "IPv6 literal" },
        { "http://h/\x01x\n", "http://h/?x?", "control characters replaced" },
        { "", "", "empty URL" },
    };
    size_t i;
    for (i = 0; i < sizeof c / sizeof c[0]; i++)
        is_str(asbp_url_mask(c[i].in, buf, sizeof buf), c[i].out, "mask: %s", c[i].name);
    is_str(asbp_url_mask(NULL, buf, sizeof buf), "", "mask: NULL URL");
    asbp_url_mask("http://user:verysecret@host/", buf, 12);
    is_int(strlen(buf), 11, "mask truncates to the buffer");
    unlike_str(buf, "verysecret", "truncated mask hides the password");
    asbp_url_mask("http://user:verysecret@host/", buf, 16);
    unlike_str(buf, "very", "truncated mask hides even a prefix of the password");
    ok(asbp_url_mask("x", buf, 0) == buf, "zero-size buffer is left alone");
}

/* "lag" (bytes behind the leader), kept for the operator tool's metrics. */
static void lag_values(void)
{
    static const struct { const char *json; long long lag; const char *name; } c[] = {
        { "0", 0, "zero" },
        { "16777216", 16777216LL, "an integer" },
        { "1000000000000000000", 1000000000000000000LL, "10^18, the largest kept" },
        { "1000000000000000001", -1, "above 10^18" },
        { "99999999999999999999", -1, "far too large" },
        { "\"unknown\"", -1, "\"unknown\"" },
        { "\"5\"", -1, "a string of digits" },
        { "-1", -1, "negative" },
        { "1.5", -1, "a float" },
        { "1e3", -1, "an exponent" },
        { "null", -1, "null" },
        { "true", -1, "a bool" },
        { "{\"x\":1}", -1, "an object" },
    };
    char body[256];
    size_t i;
    for (i = 0; i < sizeof c / sizeof c[0]; i++) {
        asbp_topology *t;
        snprintf(body, sizeof body, "{\"members\":[{\"name\":\"n\",\"lag\":%s,\"host\":\"h\"}]}",
                 c[i].json);
        t = parse(body);
        ok(t && t->n == 1, "lag %s: parses", c[i].name);
        if (t && t->n == 1) {
            ok(t->members[0].lag == c[i].lag, "lag %s: %lld", c[i].name, c[i].lag);
            is_str(t->members[0].host, "h", "lag %s: the next field is read", c[i].name);
        }
        asbp_topology_free(t);
    }
    {
        asbp_topology *t = parse("{\"members\":[{\"name\":\"a\"},{\"lag\":7,\"lag\":\"unknown\"},"
                                 "{\"lag\":\"unknown\",\"lag\":9}]}");
        ok(t && t->n == 3, "three members");
        if (t && t->n == 3) {
            ok(t->members[0].lag == -1, "no lag: -1");
            ok(t->members[1].lag == -1, "a duplicate \"lag\": the last one wins (unknown)");
            ok(t->members[2].lag == 9, "a duplicate \"lag\": the last one wins (9)");
        }
        asbp_topology_free(t);
    }
}

/* The synchronous standby (BrowseFromStandby): role sync_standby only,
 * running or streaming, with an address; the first such member. */
static void sync_standby(void)
{
    static const struct { const char *body; int port; const char *name; } cases[] = {
        { "{\"members\":[{\"role\":\"leader\",\"state\":\"running\",\"host\":\"a\",\"port\":1},"
          "{\"role\":\"sync_standby\",\"state\":\"running\",\"host\":\"b\",\"port\":2}]}",
          2, "sync_standby running (Patroni 3.0.2)" },
        { "{\"members\":[{\"role\":\"sync_standby\",\"state\":\"streaming\",\"host\":\"b\",\"port\":3}]}",
          3, "sync_standby streaming (Patroni 3.0.4 and later)" },
        { "{\"members\":[{\"role\":\"replica\",\"state\":\"streaming\",\"host\":\"b\",\"port\":2}]}",
          0, "a replica is not one" },
        { "{\"members\":[{\"role\":\"quorum_standby\",\"state\":\"streaming\",\"host\":\"b\",\"port\":2}]}",
          0, "a quorum standby is not one" },
        { "{\"members\":[{\"role\":\"Sync_Standby\",\"state\":\"running\",\"host\":\"b\",\"port\":2}]}",
          0, "the role is case-sensitive" },
        { "{\"members\":[{\"role\":\"sync_standby\",\"state\":\"starting\",\"host\":\"b\",\"port\":2}]}",
          0, "a starting one is not used" },
        { "{\"members\":[{\"role\":\"sync_standby\",\"host\":\"b\",\"port\":2}]}",
          0, "nor one without a state" },
        { "{\"members\":[{\"role\":\"sync_standby\",\"state\":\"running\",\"port\":2}]}",
          0, "nor one without a host" },
        { "{\"members\":[{\"role\":\"sync_standby\",\"state\":\"running\",\"host\":\"b\"},"
          "{\"role\":\"sync_standby\",\"state\":\"running\",\"host\":\"c\",\"port\":4},"
          "{\"role\":\"sync_standby\",\"state\":\"running\",\"host\":\"d\",\"port\":5}]}",
          4, "the first usable one of several" },
    };
    size_t i, len;
    char *body;
    asbp_topology *t;
    const asbp_member *m;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        t = parse_n(cases[i].body, strlen(cases[i].body));
        m = asbp_topology_sync_standby(t);
        is_int(m ? m->port : 0, cases[i].port, "sync standby: %s", cases[i].name);
        asbp_topology_free(t);
    }
    ok(asbp_topology_sync_standby(NULL) == NULL, "sync standby of no answer: none");
    body = slurp("t/data/patroni/patroni-3.0.2-cluster-sync.json", &len);
    t = body ? parse_n(body, len) : NULL;
    m = asbp_topology_sync_standby(t);
    is_str(m ? m->name : NULL, "node2", "recorded answer: node2 is the sync standby");
    is_int(m ? m->port : 0, 15433, "... on port 15433");
    asbp_topology_free(t);
    free(body);
    body = slurp("t/data/patroni/patroni-3.0.2-cluster.json", &len);
    t = body ? parse_n(body, len) : NULL;
    ok(t && !asbp_topology_sync_standby(t), "recorded asynchronous answer: none");
    asbp_topology_free(t);
    free(body);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    samples();
    leader_selection();
    shapes();
    limits();
    url_masking();
    lag_values();
    sync_standby();
    curl_global_cleanup();
    return tap_done();
}
