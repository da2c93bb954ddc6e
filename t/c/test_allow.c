/* Unit tests: the allow list (c_src/asbp_allow.c): names and their case,
 * IPv4, IPv6 and their spellings, CIDR ranges, socket paths, the hosts the
 * operator wrote elsewhere, URL hosts, and malformed entries. */
#include "tap.h"
#include "asbp_allow.h"

static asbp_err e;

/* A list from the explicit option text (NULL when it is refused). */
static asbp_allow *list(const char *text)
{
    asbp_allow *a = asbp_allow_new();
    asbp_err_clear(&e);
    if (asbp_allow_parse(a, text, strlen(text), &e) != ASBP_OK) {
        asbp_allow_free(a);
        return NULL;
    }
    return a;
}

/* 1 when text is accepted and allows host. */
static int allows(const char *text, const char *host)
{
    asbp_allow *a = list(text);
    int r = a && asbp_allow_match(a, host);
    asbp_allow_free(a);
    return r;
}

/* The message for a refused list ("" when accepted). */
static const char *refusal(const char *text, size_t len)
{
    asbp_err_clear(&e);
    if (asbp_allow_parse(NULL, text, len, &e) == ASBP_OK)
        return "";
    return e.msg;
}

static void test_names(void)
{
    ok(allows("db1.example.org", "db1.example.org"), "a name matches itself");
    ok(allows("DB1.Example.ORG", "db1.example.org"), "names: case-insensitive (list)");
    ok(allows("db1.example.org", "Db1.EXAMPLE.org"), "names: case-insensitive (host)");
    ok(!allows("db1.example.org", "db2.example.org"), "another name does not match");
    ok(!allows("db1.example.org", "db1.example.org.evil"), "a longer name does not match");
    ok(!allows("db1.example.org", "db1.example"), "a shorter name does not match");
    ok(!allows("localhost", "127.0.0.1"), "a name never matches an address (no DNS)");
    ok(!allows("127.0.0.0/8", "localhost"), "an address range never matches a name");
    ok(allows("pg_node-1", "PG_NODE-1"), "'_' and '-' in a name");
    ok(allows("a, b  c,,d\te", "c") && allows("a, b  c,,d\te", "e"),
       "entries separated by commas, spaces and tabs");
    ok(!allows("", "localhost") && !allows(" , ", "x"), "an empty list allows nothing");
    ok(!allows("db", ""), "an empty host is never allowed");
    ok(!asbp_allow_match(NULL, "db"), "no list: nothing allowed");
}

static void test_ipv4(void)
{
    ok(allows("127.0.0.2", "127.0.0.2"), "IPv4: the same address");
    ok(!allows("127.0.0.2", "127.0.0.3"), "IPv4: another address");
    ok(allows("127.0.0.0/30", "127.0.0.2"), "IPv4 /30: inside");
    ok(!allows("127.0.0.0/30", "127.0.0.4"), "IPv4 /30: outside");
    ok(allows("10.0.0.0/8", "10.255.1.2"), "IPv4 /8: inside");
    ok(!allows("10.0.0.0/8", "11.0.0.1"), "IPv4 /8: outside");
    ok(allows("192.0.2.7/32", "192.0.2.7"), "IPv4 /32: the address");
    ok(!allows("192.0.2.7/32", "192.0.2.6"), "IPv4 /32: its neighbour is not");
    ok(allows("0.0.0.0/0", "203.0.113.9"), "IPv4 /0: every IPv4 address");
    ok(!allows("0.0.0.0/0", "::1"), "IPv4 /0: no IPv6 address");
    ok(!allows("0.0.0.0/0", "db.example.org"), "IPv4 /0: no name");
    ok(allows("172.16.0.0/12", "172.31.255.255") && !allows("172.16.0.0/12", "172.32.0.0"),
       "IPv4 /12: a prefix inside a byte");
    ok(!allows("127.0.0.10", "127.0.0.010"), "a host with a leading zero is not the address "
       "(libpq would read it as octal)");
    ok(!allows("127.0.0.1", "127.1"), "a short form is not the address");
    ok(allows("127.0.0.2", "::ffff:127.0.0.2"), "an IPv4-mapped IPv6 host is the IPv4 address");
    ok(allows("::ffff:127.0.0.2", "127.0.0.2"), "an IPv4-mapped IPv6 entry is the IPv4 address");
    ok(allows("::ffff:10.0.0.0/104", "10.1.2.3"), "an IPv4-mapped range is an IPv4 range");
}

static void test_ipv6(void)
{
    ok(allows("::1", "::1"), "IPv6: the same address");
    ok(allows("::1", "0:0:0:0:0:0:0:1"), "IPv6: ::1 is 0:0:0:0:0:0:0:1");
    ok(allows("0:0:0:0:0:0:0:1", "::1"), "IPv6: and the other way round");
    ok(allows("[::1]", "::1"), "IPv6 in brackets in the list");
    ok(allows("2001:DB8::1", "2001:db8:0:0::1"), "IPv6: hex digits in any case, any spelling");
    ok(!allows("::1", "::2"), "IPv6: another address");
    ok(allows("2001:db8::/32", "2001:db8:ffff::7"), "IPv6 /32: inside");
    ok(!allows("2001:db8::/32", "2001:db9::1"), "IPv6 /32: outside");
    ok(allows("2001:db8::5/128", "2001:db8::5"), "IPv6 /128: the address");
    ok(!allows("2001:db8::5/128", "2001:db8::4"), "IPv6 /128: its neighbour is not");
    ok(allows("::/0", "fe80::1"), "IPv6 /0: every IPv6 address");
    ok(!allows("::/0", "127.0.0.1"), "IPv6 /0: no IPv4 address");
    ok(!allows("::/0", "::ffff:127.0.0.1"), "IPv6 /0: no IPv4-mapped address either");
    ok(allows("[2001:db8::]/64", "2001:db8::abcd"), "an IPv6 range with brackets");
    ok(!allows("::1", "[::1]"), "a host in brackets is not an address (libpq would not "
       "connect to it either)");
}

static void test_sockets(void)
{
    asbp_allow *a = asbp_allow_new();
    ok(allows("/tmp/x", "/tmp/x"), "a socket directory listed explicitly");
    ok(allows("/tmp/x/", "/tmp/x") && allows("/tmp/x", "/tmp/x//"),
       "trailing slashes do not matter");
    ok(!allows("/tmp/x", "/tmp/X"), "socket paths are case-sensitive");
    ok(!allows("/tmp/x", "/tmp/xy") && !allows("/tmp/x", "/tmp"), "another path is not");
    ok(allows("@pg", "@pg"), "an abstract socket listed explicitly");
    ok(!allows("@pg", "@PG") && !allows("@pg", "@pg2"), "another abstract socket is not");
    ok(!allows("0.0.0.0/0 ::/0 localhost", "/tmp/x"), "ranges and names never allow a socket path");
    ok(!allows("0.0.0.0/0 ::/0 localhost", "@name"), "nor an abstract socket");
    ok(!allows("/tmp", "@/tmp") && !allows("@/tmp", "/tmp"), "a path and an abstract socket differ");

    is_int(asbp_allow_add_hosts(a, "/var/run/postgresql,@pg,db1,10.0.0.1"), 0,
           "hosts of a DataSource: added");
    is_int(asbp_allow_count(a), 2, "socket paths in a DataSource are skipped");
    ok(!asbp_allow_match(a, "/var/run/postgresql") && !asbp_allow_match(a, "@pg"),
       "a socket named by the DataSource is not allowed for an API answer");
    ok(asbp_allow_match(a, "DB1") && asbp_allow_match(a, "10.0.0.1"),
       "its names and addresses are");
    asbp_allow_free(a);
}

static void test_operator_hosts(void)
{
    asbp_allow *a = asbp_allow_new();
    char h[256];
    is_int(asbp_allow_add_hosts(a, "pg1.Example.org,,0:0::1,::ffff:192.0.2.1,127.0.0.010"), 0,
           "a libpq host list");
    ok(asbp_allow_match(a, "PG1.example.ORG"), "its name (case-insensitive)");
    ok(asbp_allow_match(a, "::1"), "its IPv6 address (normalised)");
    ok(asbp_allow_match(a, "192.0.2.1"), "its IPv4-mapped address as IPv4");
    ok(asbp_allow_match(a, "127.0.0.010") && !asbp_allow_match(a, "127.0.0.10"),
       "a host that is not an address is a name, compared as written");
    ok(!asbp_allow_match(a, "192.0.2.2"), "nothing else");
    asbp_allow_free(a);

    is_int(asbp_allow_url_host("http://u:p@h@db1.example:8008/cluster", h, sizeof h), 11,
           "URL host after the last '@'");
    is_str(h, "db1.example", "  is the host");
    asbp_allow_url_host("https://[2001:db8::1]:8008/cluster", h, sizeof h);
    is_str(h, "2001:db8::1", "URL host: IPv6 without its brackets");
    asbp_allow_url_host("http://10.0.0.1/cluster?x=@y", h, sizeof h);
    is_str(h, "10.0.0.1", "URL host: no port, an '@' in the query");
    asbp_allow_url_host("10.0.0.2:8008/cluster", h, sizeof h);
    is_str(h, "10.0.0.2", "URL host: no scheme");
    is_int(asbp_allow_url_host("http:///cluster", h, sizeof h), 0, "URL without a host: 0");
    is_int(asbp_allow_url_host("http://[::1/cluster", h, sizeof h), 0, "unclosed bracket: 0");
}

static void test_malformed(void)
{
    static const struct { const char *text; const char *why; } bad[] = {
        { "10.0.0.0/33", "0 to 32" },
        { "::/129", "0 to 128" },
        { "10.0.0.0/", "a prefix length is expected" },
        { "10.0.0.0/8x", "not a number" },
        { "10.0.0.0/-1", "not a number" },
        { "10.0.0.1/8", "bits are set past the prefix" },
        { "2001:db8::1/32", "bits are set past the prefix" },
        { "db.example/24", "not an IPv4 or IPv6 address" },
        { "/24x", "" },                     /* a socket path: accepted */
        { "256.0.0.1", "not an IPv4 address" },
        { "127.0.0.010", "not an IPv4 address" },
        { "10.1", "not an IPv4 address" },
        { "db:5432", "not an IPv6 address" },
        { "1::2::3", "not an IPv6 address" },
        { "[10.0.0.1]", "not an IPv6 address in the brackets" },
        { "[::1", "brackets go around" },
        { "::1]", "not an IPv6 address" },
        { "*.example.org", "wildcards are not supported" },
        { "db;drop", "only letters, digits" },
        { "@", "needs a name" },
        { "/tmp/\x01x", "without control characters" },
    };
    size_t i;
    char msg[ASBP_ERR_MSG_MAX];
    asbp_allow *a = asbp_allow_new();
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *m = refusal(bad[i].text, strlen(bad[i].text));
        if (!bad[i].why[0]) {
            is_str(m, "", "'%s': accepted", bad[i].text);
            continue;
        }
        like_str(m, bad[i].why, "'%s': refused, saying why", bad[i].text);
        like_str(m, "PatroniAllowedHosts", "  the message names the option");
    }
    snprintf(msg, sizeof msg, "%s", refusal("good 10.0.0.0/33", 16));
    like_str(msg, "entry '10.0.0.0/33'", "the message names the entry, not the list");
    like_str(refusal("a\0b", 3), "entry 'a?b'", "a NUL is refused and never printed raw");
    unlike_str(refusal("/tmp/\x1b[31m", 10), "\x1b", "no control character in a message");
    {
        char longname[301];
        memset(longname, 'x', 300);
        longname[0] = '!';
        longname[300] = '\0';
        snprintf(msg, sizeof msg, "%s", refusal(longname, 300));
        like_str(msg, "xxx...': a host name", "a long entry is shortened in the message");
        ok(strlen(msg) < 250, "  to a bounded length");
    }
    is_int(asbp_allow_parse(a, "db1 10.0.0.0/8", 14, &e), ASBP_OK, "a good list added");
    is_int(asbp_allow_parse(a, "db2 10.0.0.1/8", 14, &e), ASBP_E_USAGE, "a bad list refused");
    is_int(asbp_allow_count(a), 2, "  nothing of it added");
    ok(!asbp_allow_match(a, "db2"), "  not even the good entries before the bad one");
    asbp_allow_free(a);
    asbp_allow_free(NULL);
    ok(1, "asbp_allow_free(NULL) is harmless");
}

int main(void)
{
    test_names();
    test_ipv4();
    test_ipv6();
    test_sockets();
    test_operator_hosts();
    test_malformed();
    return tap_done();
}
