/* Unit tests: browse SQL building, LIKE patterns, integer thresholds
 * (no server: field names are quoted by a stand-in for PQescapeLiteral). */
#include "tap.h"
#include "asbp_browse.h"

/* Quotes like PQescapeLiteral with standard_conforming_strings on. */
static int fake_quote(void *ud, const char *s, asbp_buf *out, asbp_err *err)
{
    const char *p;
    int *calls = ud;
    (*calls)++;
    if (strstr(s, "REFUSE")) {
        asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT, "refused");
        return -1;
    }
    if (strchr(s, '\\'))
        asbp_buf_puts(out, " E");
    asbp_buf_puts(out, "'");
    for (p = s; *p; p++) {
        if (*p == '\'' || *p == '\\')
            asbp_buf_append(out, p, 1);
        asbp_buf_append(out, p, 1);
    }
    asbp_buf_puts(out, "'");
    return 0;
}

static const char *like(const char *pat)
{
    static char out[256];
    asbp_buf b = ASBP_BUF_INIT;
    if (asbp_browse_like_pattern(pat, &b) < 0 || !b.data || b.len >= sizeof out) {
        asbp_buf_free(&b);
        return "(error)";
    }
    memcpy(out, b.data, b.len + 1);   /* a fresh buffer each time: checks the NUL */
    asbp_buf_free(&b);
    return out;
}

int main(void)
{
    asbp_buf sql = ASBP_BUF_INIT;
    asbp_err e;
    asbp_browse_spec spec;
    int calls = 0;
    const char *fields[] = { "_httpSessionType", "it's", "a\\b", "_session_id" };
    static const char *const good[] = { "0", "5", "-5", "1700000000", "007",
        "9223372036854775807", "-9223372036854775808", NULL };
    static const char *const bad[] = { "", "-", " 5", "5 ", "+5", "5.5", "1e3",
        "0x10", "10; DROP", "9223372036854775808", "-9223372036854775809",
        "99999999999999999999", "--5", "5-", NULL };
    int i;

    /* integers */
    for (i = 0; good[i]; i++)
        ok(asbp_browse_is_integer(good[i]), "integer accepted: '%s'", good[i]);
    for (i = 0; bad[i]; i++)
        ok(!asbp_browse_is_integer(bad[i]), "not an integer: '%s'", bad[i]);
    ok(!asbp_browse_is_integer(NULL), "NULL is not an integer");

    /* LIKE patterns */
    is_str(like("dup*"), "dup%", "* becomes %");
    is_str(like("*a*b*"), "%a%b%", "several *");
    is_str(like("100%"), "100\\%", "% matches itself");
    is_str(like("a_b"), "a\\_b", "_ matches itself");
    is_str(like("a\\b"), "a\\\\b", "\\ matches itself");
    is_str(like("\\*"), "\\\\%", "a backslash before * stays literal, * is still a wildcard");
    is_str(like(""), "", "empty pattern");
    is_str(like("\xc3\xa9t\xc3\xa9*"), "\xc3\xa9t\xc3\xa9%", "UTF-8 bytes kept");

    /* SELECT */
    memset(&spec, 0, sizeof spec);
    spec.filter = ASBP_BROWSE_EQ;
    spec.field = "_whatToTrace";
    spec.value = "dwho'; DROP TABLE sessions; --";
    spec.whole = 1;
    asbp_err_clear(&e);
    is_int(asbp_browse_select_sql(&spec, "\"sessions\"", fake_quote, &calls, &sql, &e), ASBP_OK,
           "searchOn SQL built");
    is_str(asbp_buf_cstr(&sql),
           "SELECT id, a_session FROM \"sessions\" WHERE a_session ->> '_whatToTrace' = $1",
           "searchOn: field as a literal, value as $1");
    unlike_str(asbp_buf_cstr(&sql), "dwho", "the value is not in the SQL text");

    spec.filter = ASBP_BROWSE_LIKE;
    spec.field = "x'; DELETE FROM sessions; --";
    spec.whole = 0;
    spec.fields = fields;
    spec.nfields = 4;
    calls = 0;
    is_int(asbp_browse_select_sql(&spec, "\"s\".\"t\"", fake_quote, &calls, &sql, &e), ASBP_OK,
           "searchOnExpr SQL with fields built");
    is_str(asbp_buf_cstr(&sql),
           "SELECT id, a_session ->> '_httpSessionType', a_session ->> 'it''s', "
           "a_session ->>  E'a\\\\b', a_session ->> '_session_id' FROM \"s\".\"t\" "
           "WHERE a_session ->> 'x''; DELETE FROM sessions; --' LIKE $1",
           "every field name went through the quoting function");
    is_int(calls, 5, "quoted once per name");

    spec.filter = ASBP_BROWSE_ALL;
    spec.nfields = 0;
    is_int(asbp_browse_select_sql(&spec, "\"sessions\"", fake_quote, &calls, &sql, &e), ASBP_OK,
           "ids only");
    is_str(asbp_buf_cstr(&sql), "SELECT id FROM \"sessions\"", "empty field list: ids only");
    spec.whole = 1;
    asbp_browse_select_sql(&spec, "\"sessions\"", fake_quote, &calls, &sql, &e);
    is_str(asbp_buf_cstr(&sql), "SELECT id, a_session FROM \"sessions\"", "whole table");

    spec.filter = ASBP_BROWSE_EQ;
    spec.field = NULL;
    is_int(asbp_browse_select_sql(&spec, "\"sessions\"", fake_quote, &calls, &sql, &e),
           ASBP_E_USAGE, "no field: refused");
    spec.field = "REFUSE";
    is_int(asbp_browse_select_sql(&spec, "\"sessions\"", fake_quote, &calls, &sql, &e),
           ASBP_E_USAGE, "a name the quoting function refuses: refused");

    /* DELETE */
    {
        asbp_purge_item or_items[] = { { "_lastSeen", "1700000000" }, { "_utime", "-5" } };
        asbp_purge_item and_items[] = { { "a'b", "7" } };
        asbp_purge_item not_items[] = { { "_session_kind", "Persistent'; --" }, { "k", NULL } };
        asbp_purge_item bad_item[] = { { "_utime", "10; DROP TABLE sessions" } };
        asbp_purge_item undef_item[] = { { "_utime", NULL } };
        asbp_purge_rule r;
        const char *params[8];
        size_t np = 99;

        memset(&r, 0, sizeof r);
        r.or_items = or_items;
        r.n_or = 2;
        r.not_items = not_items;
        r.n_not = 1;
        is_int(asbp_browse_delete_sql(&r, "\"sessions\"", fake_quote, &calls, &sql, params, 8,
                                      &np, &e), ASBP_OK, "purge rule of LL::NG built");
        is_str(asbp_buf_cstr(&sql),
               "DELETE FROM \"sessions\" WHERE (cast(a_session ->> '_lastSeen' as bigint) < $1 "
               "OR cast(a_session ->> '_utime' as bigint) < $2) "
               "AND a_session ->> '_session_kind' IS DISTINCT FROM $3",
               "or + not: thresholds and strings as parameters");
        is_int(np, 3, "three parameters");
        is_str(params[0], "1700000000", "$1");
        is_str(params[1], "-5", "$2 (a negative integer is allowed)");
        is_str(params[2], "Persistent'; --", "$3");

        r.and_items = and_items;
        r.n_and = 1;
        r.n_not = 2;
        is_int(asbp_browse_delete_sql(&r, "\"sessions\"", fake_quote, &calls, &sql, params, 8,
                                      &np, &e), ASBP_OK, "or + and + not built");
        is_str(asbp_buf_cstr(&sql),
               "DELETE FROM \"sessions\" WHERE (cast(a_session ->> '_lastSeen' as bigint) < $1 "
               "OR cast(a_session ->> '_utime' as bigint) < $2) "
               "AND cast(a_session ->> 'a''b' as bigint) < $3 "
               "AND a_session ->> '_session_kind' IS DISTINCT FROM $4 "
               "AND a_session ->> 'k' IS DISTINCT FROM $5",
               "and: every threshold must hold; both groups apply");
        ok(np == 5 && params[4] == NULL, "not => { k => undef }: NULL parameter");
        is_int(asbp_browse_delete_sql(&r, "\"sessions\"", fake_quote, &calls, &sql, params, 4,
                                      &np, &e), ASBP_E_USAGE, "too many parameters refused");

        memset(&r, 0, sizeof r);
        r.and_items = and_items;
        r.n_and = 1;
        is_int(asbp_browse_delete_sql(&r, "\"sessions\"", fake_quote, &calls, &sql, params, 8,
                                      &np, &e), ASBP_OK, "and alone built");
        is_str(asbp_buf_cstr(&sql),
               "DELETE FROM \"sessions\" WHERE cast(a_session ->> 'a''b' as bigint) < $1",
               "and alone");

        memset(&r, 0, sizeof r);
        r.not_items = not_items;
        r.n_not = 1;
        is_int(asbp_browse_delete_sql(&r, "\"sessions\"", fake_quote, &calls, &sql, params, 8,
                                      &np, &e), ASBP_E_USAGE, "not alone: refused");
        like_str(e.msg, "empty rule", "message names the empty rule");
        memset(&r, 0, sizeof r);
        is_int(asbp_browse_delete_sql(&r, "\"sessions\"", fake_quote, &calls, &sql, params, 8,
                                      &np, &e), ASBP_E_USAGE, "empty rule: refused");

        r.or_items = bad_item;
        r.n_or = 1;
        is_int(asbp_browse_delete_sql(&r, "\"sessions\"", fake_quote, &calls, &sql, params, 8,
                                      &np, &e), ASBP_E_USAGE, "non-integer threshold refused");
        like_str(e.msg, "must be an integer", "clear message");
        like_str(e.msg, "'10; DROP TABLE sessions'", "message shows the value");
        r.or_items = undef_item;
        is_int(asbp_browse_delete_sql(&r, "\"sessions\"", fake_quote, &calls, &sql, params, 8,
                                      &np, &e), ASBP_E_USAGE, "undefined threshold refused");
        like_str(e.msg, "got undef", "message says undef");
    }

    asbp_buf_free(&sql);
    return tap_done();
}
