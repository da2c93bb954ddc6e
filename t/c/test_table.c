/* Unit tests: table names checked and quoted for SQL (asbp_table). */
#include "tap.h"
#include "asbp_table.h"

/* The quoted form of name, or NULL (the message in e) when refused. */
static const char *quote(const char *name, asbp_err *e)
{
    static char out[ASBP_TABLE_SQL_MAX];
    asbp_err_clear(e);
    strcpy(out, "untouched");
    if (asbp_table_quote(name, out, sizeof out, e) != ASBP_OK)
        return strcmp(out, "untouched") == 0 ? NULL : "(output written on error)";
    return out;
}

static void accepts(const char *name, const char *want)
{
    asbp_err e;
    const char *got = quote(name, &e);
    is_str(got, want, "accepted: %s", name);
    if (!got)
        tap_diag("  error: %s", e.msg);
}

static void refuses(const char *name, const char *why)
{
    asbp_err e;
    const char *got = quote(name, &e);
    ok(got == NULL, "refused (%s), output untouched", why);
    if (got)
        tap_diag("  got '%s'", got);
    is_int(e.code, ASBP_E_USAGE, "refused (%s): usage error", why);
    is_int(e.eclass, ASBP_EC_REPORT, "refused (%s): reported at once", why);
}

static char *repeat(char *buf, char c, size_t n)
{
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

static void plain_names(void)
{
    accepts("sessions", "\"sessions\"");
    accepts("public.sessions", "\"public\".\"sessions\"");
    accepts("Sessions", "\"sessions\"");
    accepts("MySchema.LLNG_Sessions", "\"myschema\".\"llng_sessions\"");
    accepts("_t", "\"_t\"");
    accepts("t$1_x", "\"t$1_x\"");
    accepts("s\xc3\xa9ssions", "\"s\xc3\xa9ssions\"");   /* UTF-8 kept as is */
    accepts("\xc3\x89T\xc3\x89", "\"\xc3\x89t\xc3\x89\"");  /* only ASCII folds */
}

static void quoted_names(void)
{
    accepts("\"MyTable\"", "\"MyTable\"");
    accepts("\"My Schema\".\"T\"", "\"My Schema\".\"T\"");
    accepts("public.\"Ses\"", "\"public\".\"Ses\"");
    accepts("\"S\".Tab", "\"S\".\"tab\"");
    accepts("\"a\"\"b\"", "\"a\"\"b\"");
    accepts("\"\"\"\"", "\"\"\"\"");
    accepts("\"a.b\"", "\"a.b\"");
    accepts("\"1st\"", "\"1st\"");
    /* hostile text inside quotes is only a (strange) name */
    accepts("\"x; DROP TABLE y\"", "\"x; DROP TABLE y\"");
    accepts("\"a\"\"; DROP TABLE y; --\"", "\"a\"\"; DROP TABLE y; --\"");
    accepts("\"it's\"", "\"it's\"");
    accepts("\"tab\tle\"", "\"tab\tle\"");
}

static void bad_names(void)
{
    refuses("x; DROP TABLE y", "statement after the name");
    refuses("\"a\".\"b\".\"c\"", "three quoted parts");
    refuses("a.b.c", "three parts");
    refuses("a.", "trailing dot");
    refuses(".a", "leading dot");
    refuses("a..b", "empty part");
    refuses("\"unterminated", "unterminated quote");
    refuses("\"a\"\"", "quote left open after a doubled quote");
    refuses("\"\"", "empty quoted part");
    refuses("\"\".t", "empty quoted schema");
    refuses("\"x\"y", "text after a quoted part");
    refuses("a b", "space");
    refuses("a-b", "dash");
    refuses("a\"b\"", "quote inside a plain part");
    refuses("1abc", "starts with a digit");
    refuses("$x", "starts with $");
    refuses("x\ny", "newline");
    refuses("tab'le", "single quote");
    refuses("sessions;", "semicolon");
    refuses("a.b ", "trailing space");
    refuses(" a", "leading space");
}

static void lengths(void)
{
    char name[200], want[300], part[80];
    asbp_err e;
    char small[16];

    repeat(part, 'a', 63);
    snprintf(name, sizeof name, "%s", part);
    snprintf(want, sizeof want, "\"%s\"", part);
    accepts(name, want);
    snprintf(name, sizeof name, "%s.%s", part, part);
    snprintf(want, sizeof want, "\"%s\".\"%s\"", part, part);
    accepts(name, want);
    repeat(name, 'a', 64);
    refuses(name, "64 characters");
    snprintf(name, sizeof name, "\"%s\"", repeat(part, 'B', 64));
    refuses(name, "64 characters in quotes");
    /* 63 doubled quotes: 63 characters, 126 bytes once quoted */
    name[0] = '"';
    repeat(name + 1, '"', 126);
    strcat(name, "\"");
    want[0] = '"';
    repeat(want + 1, '"', 126);
    strcat(want, "\"");
    accepts(name, want);

    asbp_err_clear(&e);
    is_int(asbp_table_quote("sessions", small, 11, &e), ASBP_OK,
           "fits in 11 bytes (10 and the NUL)");
    is_str(small, "\"sessions\"", "quoted into a buffer of its size");
    is_int(asbp_table_quote("sessions", small, 10, &e), ASBP_E_USAGE,
           "refused when the buffer is one byte short");
}

static void empty_and_message(void)
{
    asbp_err e;
    char out[ASBP_TABLE_SQL_MAX], big[2000];

    refuses("", "empty");
    asbp_err_clear(&e);
    is_int(asbp_table_quote(NULL, out, sizeof out, &e), ASBP_E_USAGE, "NULL refused");
    is_str(e.msg, "TableName is empty", "NULL: message");
    asbp_err_clear(&e);
    asbp_table_quote("", out, sizeof out, &e);
    is_str(e.msg, "TableName is empty", "empty: message");

    asbp_err_clear(&e);
    asbp_table_quote("x; DROP TABLE y", out, sizeof out, &e);
    like_str(e.msg, "Invalid TableName 'x; DROP TABLE y'", "message names the input");
    like_str(e.msg, "at most 63 characters", "message says what is expected");

    repeat(big, 'z', sizeof big - 1);
    big[100] = ' ';
    asbp_err_clear(&e);
    asbp_table_quote(big, out, sizeof out, &e);
    ok(strlen(e.msg) < 600, "a huge name is cut in the message (%u bytes)",
       (unsigned)strlen(e.msg));
}

static void statements(void)
{
    asbp_table t;
    asbp_err e;

    asbp_err_clear(&e);
    is_int(asbp_table_init(&t, "Public.\"Sess\"", &e), ASBP_OK, "table_init");
    is_str(t.name, "Public.\"Sess\"", "name kept as given");
    is_str(t.quoted, "\"public\".\"Sess\"", "quoted form");
    is_str(t.sql[ASBP_SQL_SELECT],
           "SELECT a_session FROM \"public\".\"Sess\" WHERE id = $1 FOR UPDATE", "SELECT");
    is_str(t.sql[ASBP_SQL_INSERT],
           "INSERT INTO \"public\".\"Sess\" (id, a_session) VALUES ($1, $2)", "INSERT");
    is_str(t.sql[ASBP_SQL_UPDATE],
           "UPDATE \"public\".\"Sess\" SET a_session = $2 WHERE id = $1", "UPDATE");
    is_str(t.sql[ASBP_SQL_DELETE], "DELETE FROM \"public\".\"Sess\" WHERE id = $1", "DELETE");
    is_str(t.sql[ASBP_SQL_CHECK],
           "SELECT a_session::jsonb = $2::jsonb FROM \"public\".\"Sess\" WHERE id = $1 FOR UPDATE",
           "CHECK");
    asbp_table_clear(&t);
    ok(t.name == NULL && t.sql[0] == NULL, "clear frees and empties");
    asbp_table_clear(&t);
    ok(1, "clear twice is safe");

    asbp_err_clear(&e);
    is_int(asbp_table_init(&t, "a.b.c", &e), ASBP_E_USAGE, "table_init refuses a bad name");
    ok(t.name == NULL && t.sql[0] == NULL, "nothing made for a bad name");
    like_str(e.msg, "Invalid TableName 'a.b.c'", "table_init: message");
    asbp_table_clear(&t);
}

int main(void)
{
    plain_names();
    quoted_names();
    bad_names();
    lengths();
    empty_and_message();
    statements();
    return tap_done();
}
