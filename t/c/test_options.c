/* Unit tests: the option set (c_src/asbp_options.c): names, aliases,
 * seconds and their range, truth values, refusals, and the messages. */
#include "tap.h"
#include "asbp_options.h"

static asbp_err e;

/* Sets key to value (NULL: undef) in o; returns the code. */
static asbp_code set(asbp_options *o, const char *key, const char *value)
{
    asbp_err_clear(&e);
    return asbp_options_set(o, key, value, value ? strlen(value) : 0, &e);
}

/* The milliseconds ConnectTimeout gets from value, or -2 on an error. */
static long long ms(const char *value)
{
    asbp_options o;
    asbp_options_init(&o);
    if (set(&o, "ConnectTimeout", value) != ASBP_OK)
        return -2;
    return (long long)o.connect_timeout_ms;
}

/* The string field at offset off of o. */
static const char *str_at(const asbp_options *o, size_t off)
{
    const char *v;
    memcpy(&v, (const char *)o + off, sizeof v);
    return v;
}

/* The milliseconds field at offset off of o. */
static int64_t ms_at(const asbp_options *o, size_t off)
{
    int64_t v;
    memcpy(&v, (const char *)o + off, sizeof v);
    return v;
}

static void test_names(void)
{
    size_t i, n = asbp_options_count(), len = 0;
    const char *first = asbp_options_name(0, &len);
    is_int(n, 22, "22 option names");
    is_str(first, "Handle", "Handle is checked first");
    is_int(len, 6, "with its length");
    ok(asbp_options_name(n, NULL) == NULL, "no name past the end");
    for (i = 0; i < n; i++) {
        const char *name = asbp_options_name(i, &len);
        if (!ok(name && strlen(name) == len, "name %lu has its length", (unsigned long)i))
            break;
    }
}

static void test_strings(void)
{
    static const struct { const char *key; size_t off; } cases[] = {
        { "DataSource", offsetof(asbp_options, datasource) },
        { "UserName", offsetof(asbp_options, user) },
        { "Password", offsetof(asbp_options, password) },
        { "TableName", offsetof(asbp_options, table) },
        { "PatroniUrl", offsetof(asbp_options, patroni_urls) },
        { "PatroniSSLCAFile", offsetof(asbp_options, patroni_ca_file) },
        { "PatroniSSLCAPath", offsetof(asbp_options, patroni_ca_path) },
        { "PatroniSSLCertFile", offsetof(asbp_options, patroni_cert_file) },
        { "PatroniSSLKeyFile", offsetof(asbp_options, patroni_key_file) },
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        asbp_options o;
        const char *v = "some value";
        asbp_options_init(&o);
        is_int(set(&o, cases[i].key, NULL), ASBP_OK, "%s undef: accepted", cases[i].key);
        ok(str_at(&o, cases[i].off) == NULL, "%s undef: left unset", cases[i].key);
        is_int(set(&o, cases[i].key, v), ASBP_OK, "%s: accepted", cases[i].key);
        ok(str_at(&o, cases[i].off) == v, "%s: the value is kept (borrowed)", cases[i].key);
    }
}

static void test_alias(void)
{
    asbp_options o;
    const char *main_v = "http://a/cluster", *alias_v = "http://b/cluster";
    asbp_options_init(&o);
    set(&o, "patroniUrl", alias_v);
    ok(o.patroni_urls == alias_v, "patroniUrl alone: used");
    set(&o, "PatroniUrl", main_v);
    ok(o.patroni_urls == main_v, "PatroniUrl given after patroniUrl: PatroniUrl wins");
    asbp_options_init(&o);
    set(&o, "PatroniUrl", main_v);
    set(&o, "patroniUrl", alias_v);
    ok(o.patroni_urls == main_v, "PatroniUrl given before patroniUrl: PatroniUrl wins");
    asbp_options_init(&o);
    set(&o, "PatroniUrl", NULL);
    set(&o, "patroniUrl", alias_v);
    ok(o.patroni_urls == alias_v, "PatroniUrl undef: patroniUrl used");
    asbp_options_init(&o);
    is_int(set(&o, "patroniurl", alias_v), ASBP_OK, "another spelling: ignored");
    ok(o.patroni_urls == NULL, "and not used");
}

static void test_seconds_keys(void)
{
    static const struct { const char *key; size_t off; } cases[] = {
        { "ConnectTimeout", offsetof(asbp_options, connect_timeout_ms) },
        { "FailoverTimeout", offsetof(asbp_options, failover_timeout_ms) },
        { "QueryTimeout", offsetof(asbp_options, query_timeout_ms) },
        { "PatroniTimeout", offsetof(asbp_options, patroni_timeout_ms) },
        { "PatroniCacheTTL", offsetof(asbp_options, patroni_cache_ttl_ms) },
        { "PatroniCircuitBreakerDelay", offsetof(asbp_options, patroni_breaker_ms) },
    };
    size_t i;
    char want[200];
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        asbp_options o;
        size_t off = cases[i].off;
        asbp_options_init(&o);
        is_int(ms_at(&o, off), 0, "%s: default (0) at first", cases[i].key);
        is_int(set(&o, cases[i].key, NULL), ASBP_OK, "%s undef: accepted", cases[i].key);
        is_int(ms_at(&o, off), 0, "%s undef: the default", cases[i].key);
        is_int(set(&o, cases[i].key, "1.5"), ASBP_OK, "%s 1.5: accepted", cases[i].key);
        is_int(ms_at(&o, off), 1500, "%s 1.5: 1500 ms", cases[i].key);
        is_int(set(&o, cases[i].key, "soon"), ASBP_E_USAGE, "%s 'soon': refused", cases[i].key);
        snprintf(want, sizeof want, "invalid %s 'soon': expected a number of seconds", cases[i].key);
        is_str(e.msg, want, "%s 'soon': the message", cases[i].key);
        is_int(ms_at(&o, off), 1500, "%s: unchanged after an error", cases[i].key);
        is_int(set(&o, cases[i].key, "86401"), ASBP_E_USAGE, "%s 86401: refused", cases[i].key);
        snprintf(want, sizeof want, "invalid %s '86401': expected between 0 and 86400 seconds",
                 cases[i].key);
        is_str(e.msg, want, "%s 86401: the message", cases[i].key);
        is_int(e.eclass, ASBP_EC_REPORT, "%s: an error to report", cases[i].key);
    }
}

static void test_numbers(void)
{
    /* What Perl's looks_like_number accepts, and the value it gives. */
    static const struct { const char *text; long long ms; } good[] = {
        { "0", 0 }, { "86400", 86400000 }, { "086400", 86400000 }, { "86400.0", 86400000 },
        { "2", 2000 }, { "+2", 2000 }, { "0.5", 500 }, { ".5", 500 }, { "+.5", 500 },
        { "5.", 5000 }, { "0.0005", 1 }, { "0.0004", 0 }, { "0.0015", 2 }, { "1e3", 1000000 },
        { "1E-3", 1 }, { "2.5e+1", 25000 }, { " 3", 3000 }, { "3 ", 3000 },
        { "\t3\r\n", 3000 }, { "\f3\v", 3000 }, { "-0", 0 }, { "-0.0", 0 }, { "0 but true", 0 },
        { "00012", 12000 }, { "0.1", 100 }, { "0.3", 300 }, { "1.2345", 1235 },
        { "86399.9999", 86400000 }, { "12345678901234567890e-16", 1234568 },
        { "0.000000000000000000000000000000000000000000000000000000000000001", 0 },
        { "1e-400", 0 }, { "0e999", 0 }, { "1000000000000000000000000e-20", 10000000 },
    };
    /* What it does not: "a number of seconds" error. */
    static const char *const bad[] = {
        "", " ", "soon", ".", "+", "-", "e5", "1e", "1e+", "0x10", "1_0", "1.5.2", "--1",
        "12abc", "1,5", " 0 but true", "0 but true ", "infin", "infx", "Infinite", "nanx",
        "nan(", "nan()", "nan(12a)", "1.#INF0x", "1.#QNAN0", "1.#", "1.#IN", "\xc2\xa0" "1",
    };
    /* Numbers out of range: "between 0 and 86400 seconds". */
    static const char *const range[] = {
        "86400.001", "86401", "-1", "-0.001", "1e5", "1e400", "-1e400", "inf", "Inf", "-inf",
        "INFINITY", "infinity ", " +inf", "nan", "NaN", "-nan", "nanq", "NANS(3)", "qnan",
        "snan(3)", "nan(0x1f)", "nan(123)", "1.#INF", "1.#inf000", "1.#IND", "-1.#IND00",
        "1.#QNAN", "1.#SNAN",
    };
    size_t i;
    for (i = 0; i < sizeof good / sizeof good[0]; i++)
        is_int(ms(good[i].text), good[i].ms, "'%s' seconds: %lld ms", good[i].text, good[i].ms);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        is_int(ms(bad[i]), -2, "'%s': not a number", bad[i]);
        like_str(e.msg, "expected a number of seconds", "'%s': the message says so", bad[i]);
    }
    for (i = 0; i < sizeof range / sizeof range[0]; i++) {
        is_int(ms(range[i]), -2, "'%s': out of range", range[i]);
        like_str(e.msg, "expected between 0 and 86400 seconds", "'%s': the message says so",
                 range[i]);
    }
    /* A value is taken by its length: no NUL needed, none read past. */
    {
        asbp_options o;
        asbp_options_init(&o);
        asbp_err_clear(&e);
        is_int(asbp_options_set(&o, "QueryTimeout", "2.5xyz", 3, &e), ASBP_OK, "a length: '2.5'");
        is_int(o.query_timeout_ms, 2500, "2500 ms");
        is_int(asbp_options_set(&o, "QueryTimeout", "12\0" "3", 4, &e), ASBP_E_USAGE,
               "a NUL inside: not a number");
    }
}

static void test_truth(void)
{
    static const struct { const char *text; int want; } cases[] = {
        { "1", 1 }, { "0", 0 }, { "", 0 }, { "00", 1 }, { "0.0", 1 }, { " 0", 1 }, { "yes", 1 },
        { "no", 1 },
    };
    size_t i;
    asbp_options o;
    asbp_options_init(&o);
    is_int(o.patroni_verify_ssl, -1, "PatroniVerifySSL: default (-1) at first");
    is_int(o.commit, -1, "Commit: default (-1) at first");
    set(&o, "PatroniVerifySSL", NULL);
    set(&o, "Commit", NULL);
    is_int(o.patroni_verify_ssl, -1, "PatroniVerifySSL undef: the default");
    is_int(o.commit, -1, "Commit undef: the default");
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        set(&o, "PatroniVerifySSL", cases[i].text);
        is_int(o.patroni_verify_ssl, cases[i].want, "PatroniVerifySSL '%s': %d", cases[i].text,
               cases[i].want);
        set(&o, "Commit", cases[i].text);
        is_int(o.commit, cases[i].want, "Commit '%s': %d", cases[i].text, cases[i].want);
    }
}

static void test_refused(void)
{
    asbp_options o;
    static const char want[] = "the Handle option (an open DBI handle) is not supported: "
        "this backend opens its own libpq connections; give DataSource, UserName and "
        "Password instead";
    asbp_options_init(&o);
    is_int(set(&o, "Handle", "DBI::db=HASH(0x1)"), ASBP_E_USAGE, "Handle: refused");
    is_str(e.msg, want, "Handle: the message");
    is_int(e.eclass, ASBP_EC_REPORT, "Handle: an error to report");
    is_int(set(&o, "Handle", NULL), ASBP_E_USAGE, "Handle undef: refused too");
    is_str(e.msg, want, "Handle undef: the same message");
    asbp_err_clear(&e);
    is_int(asbp_options_set_at(&o, 0, NULL, 0, &e), ASBP_E_USAGE, "by index 0: refused");
}

static void test_allowed_hosts(void)
{
    asbp_options o;
    const char *good = "db1.example.org, 10.0.0.0/8 ::1 /run/pg @pg";
    asbp_options_init(&o);
    ok(o.patroni_allowed_hosts == NULL, "PatroniAllowedHosts: none at first");
    is_int(set(&o, "PatroniAllowedHosts", NULL), ASBP_OK, "PatroniAllowedHosts undef: accepted");
    ok(o.patroni_allowed_hosts == NULL, "PatroniAllowedHosts undef: left unset");
    is_int(set(&o, "PatroniAllowedHosts", good), ASBP_OK, "PatroniAllowedHosts: a good list");
    ok(o.patroni_allowed_hosts == good, "PatroniAllowedHosts: the value is kept (borrowed)");
    is_int(set(&o, "PatroniAllowedHosts", ""), ASBP_OK, "PatroniAllowedHosts '': accepted");
    is_int(set(&o, "PatroniAllowedHosts", "db1 10.0.0.1/33"), ASBP_E_USAGE,
           "PatroniAllowedHosts with a malformed entry: refused");
    is_str(e.msg, "invalid PatroniAllowedHosts entry '10.0.0.1/33': the prefix length of an "
           "IPv4 range is 0 to 32", "  the message names the option and the entry");
    is_int(e.eclass, ASBP_EC_REPORT, "  an error to report");
    ok(o.patroni_allowed_hosts != NULL && *o.patroni_allowed_hosts == '\0',
       "  the option is unchanged");
    is_int(set(&o, "PatroniAllowedHosts", "*.example.org"), ASBP_E_USAGE, "a wildcard: refused");
    is_int(set(&o, "PatroniAllowedHosts", "db:5432"), ASBP_E_USAGE, "host:port: refused");
    asbp_err_clear(&e);
    is_int(asbp_options_set(&o, "PatroniAllowedHosts", "db\0x", 4, &e), ASBP_E_USAGE,
           "a NUL inside: refused (the value is read by its length)");
    is_int(set(&o, "patroniAllowedHosts", "*"), ASBP_OK, "another spelling: ignored");
}

static void test_other(void)
{
    asbp_options o;
    asbp_options_init(&o);
    is_int(set(&o, "backend", "x"), ASBP_OK, "an unknown option: ignored");
    is_int(set(&o, "connecttimeout", "soon"), ASBP_OK, "names are case-sensitive");
    is_int(set(&o, "Handl", "x"), ASBP_OK, "a prefix of a name is another name");
    asbp_err_clear(&e);
    is_int(asbp_options_set_at(&o, asbp_options_count(), "x", 1, &e), ASBP_E_USAGE,
           "an index past the end: an error");
}

/* A value holding a NUL is refused, whatever the option's kind, and the
 * message does not show the value (a Password, a DataSource's password). */
static void test_nul(void)
{
    static const char *const keys[] = {
        "DataSource", "UserName", "Password", "TableName", "PatroniUrl", "patroniUrl",
        "PatroniSSLCAFile", "ConnectTimeout", "PatroniVerifySSL", "Commit",
    };
    size_t i;
    for (i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        asbp_options o;
        asbp_options_init(&o);
        asbp_err_clear(&e);
        is_int(asbp_options_set(&o, keys[i], "1s3cr\0et", 8, &e), ASBP_E_USAGE,
               "%s with a NUL: refused", keys[i]);
        like_str(e.msg, keys[i], "%s: the message names the option", keys[i]);
        like_str(e.msg, "NUL character (byte 6 of 8)", "%s: and where the NUL is", keys[i]);
        unlike_str(e.msg, "s3cr", "%s: but not the value", keys[i]);
        ok(o.table == NULL && o.password == NULL && o.commit == -1
           && o.connect_timeout_ms == 0 && o.patroni_verify_ssl == -1,
           "%s: the option is left unchanged", keys[i]);
    }
    {
        asbp_options o;
        asbp_options_init(&o);
        asbp_err_clear(&e);
        is_int(asbp_options_set(&o, "TableName", "sessions\0x", 10, &e), ASBP_E_USAGE,
               "TableName \"sessions\\0x\" is refused, not cut to \"sessions\"");
        asbp_err_clear(&e);
        is_int(asbp_options_set(&o, "TableName", "\0", 1, &e), ASBP_E_USAGE,
               "a value that is only a NUL: refused");
        asbp_err_clear(&e);
        is_int(asbp_options_set(&o, "TableName", "sessions", 8, &e), ASBP_OK,
               "the same name without the NUL: accepted");
    }
}

/* NaN and the infinities, in every spelling, are no number of seconds;
 * the largest finite doubles neither. */
static void test_nonfinite(void)
{
    static const char *const bad[] = {
        "NaN", "nan", "-nan", "+NaN", "NaN(123)", "Inf", "-Inf", "+inf", "Infinity",
        "-INFINITY", "1.#INF", "-1.#IND", "1e308", "1e309", "-1e309", "1.7976931348623157e308",
    };
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        asbp_options o;
        asbp_options_init(&o);
        asbp_err_clear(&e);
        is_int(asbp_options_set(&o, "QueryTimeout", bad[i], strlen(bad[i]), &e), ASBP_E_USAGE,
               "QueryTimeout '%s': refused", bad[i]);
        is_int(o.query_timeout_ms, 0, "QueryTimeout '%s': left at the default", bad[i]);
    }
}

/* PreparedStatements: a truth, -1 (default: 1) until given. */
static void test_prepared_statements(void)
{
    asbp_options o;
    asbp_options_init(&o);
    is_int(o.prepared_statements, -1, "PreparedStatements: default (-1) at first");
    set(&o, "PreparedStatements", NULL);
    is_int(o.prepared_statements, -1, "PreparedStatements undef: the default");
    set(&o, "PreparedStatements", "0");
    is_int(o.prepared_statements, 0, "PreparedStatements '0': 0");
    set(&o, "PreparedStatements", "1");
    is_int(o.prepared_statements, 1, "PreparedStatements '1': 1");
}

/* PatroniLeaderPort: 1 to 65535, 0 or "" for the API's port; anything
 * else refused with a message naming the option and the range. */
static void test_leader_port(void)
{
    static const struct { const char *text; int want; } good[] = {
        { "6432", 6432 }, { " 6432 ", 6432 }, { "1", 1 }, { "65535", 65535 }, { "0", 0 },
        { "", 0 },
    };
    static const char *const bad[] = { "-1", "65536", "64.5", "abc", "6432x", "NaN", "1e9" };
    size_t i;
    asbp_options o;
    asbp_options_init(&o);
    is_int(o.patroni_leader_port, 0, "PatroniLeaderPort: 0 (the API's port) at first");
    for (i = 0; i < sizeof good / sizeof good[0]; i++) {
        asbp_options_init(&o);
        is_int(set(&o, "PatroniLeaderPort", good[i].text), ASBP_OK,
               "PatroniLeaderPort '%s': accepted", good[i].text);
        is_int(o.patroni_leader_port, good[i].want, "PatroniLeaderPort '%s': %d",
               good[i].text, good[i].want);
    }
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        asbp_options_init(&o);
        o.patroni_leader_port = 5432;
        is_int(set(&o, "PatroniLeaderPort", bad[i]), ASBP_E_USAGE,
               "PatroniLeaderPort '%s': refused", bad[i]);
        like_str(e.msg, "invalid PatroniLeaderPort", "'%s': the message names the option",
                 bad[i]);
        like_str(e.msg, "1 to 65535", "'%s': and the range", bad[i]);
        is_int(o.patroni_leader_port, 5432, "'%s': the option is left unchanged", bad[i]);
    }
}

int main(void)
{
    test_names();
    test_strings();
    test_alias();
    test_seconds_keys();
    test_numbers();
    test_truth();
    test_refused();
    test_allowed_hosts();
    test_other();
    test_nul();
    test_nonfinite();
    test_prepared_statements();
    test_leader_port();
    return tap_done();
}
