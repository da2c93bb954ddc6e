/* Unit tests: error record and the classification of DESIGN.md section 5. */
#include "tap.h"
#include "asbp_err.h"

int main(void)
{
    asbp_err e;
    struct { const char *state; int lost; asbp_eclass want; } cases[] = {
        { "08006", 0, ASBP_EC_FAILOVER },   /* connection_failure */
        { "08001", 0, ASBP_EC_FAILOVER },   /* sqlclient_unable_to_establish */
        { "08000", 0, ASBP_EC_FAILOVER },
        { "57P01", 0, ASBP_EC_FAILOVER },   /* admin_shutdown */
        { "57P02", 0, ASBP_EC_FAILOVER },   /* crash_shutdown */
        { "57P03", 0, ASBP_EC_FAILOVER },   /* cannot_connect_now */
        { "25006", 0, ASBP_EC_FAILOVER },   /* read_only_sql_transaction */
        { "53300", 0, ASBP_EC_RETRY },      /* too_many_connections */
        { "40001", 0, ASBP_EC_RETRY },      /* serialization_failure */
        { "40P01", 0, ASBP_EC_RETRY },      /* deadlock_detected */
        { "23505", 0, ASBP_EC_REPORT },     /* unique_violation */
        { "42P01", 0, ASBP_EC_REPORT },     /* undefined_table */
        { "42601", 0, ASBP_EC_REPORT },     /* syntax_error */
        { "57014", 0, ASBP_EC_REPORT },     /* query_canceled */
        { "57P04", 0, ASBP_EC_REPORT },     /* database_dropped */
        { "53100", 0, ASBP_EC_REPORT },     /* disk_full */
        { "22P02", 0, ASBP_EC_REPORT },     /* invalid_text_representation */
        { "XX000", 0, ASBP_EC_REPORT },
        { "",      1, ASBP_EC_FAILOVER },   /* connection lost, no SQLSTATE */
        { NULL,    1, ASBP_EC_FAILOVER },
        { "42P01", 1, ASBP_EC_FAILOVER },   /* whatever it said, it is gone */
        { NULL,    0, ASBP_EC_REPORT },     /* nothing known: report */
        { "0800",  0, ASBP_EC_REPORT },     /* malformed SQLSTATE */
        { "080000", 0, ASBP_EC_REPORT },
    };
    size_t i;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
        is_int(asbp_classify_sqlstate(cases[i].state, cases[i].lost),
               cases[i].want, "classify %s%s -> %s",
               cases[i].state ? cases[i].state : "(null)",
               cases[i].lost ? " (connection lost)" : "",
               asbp_eclass_name(cases[i].want));

    asbp_err_clear(&e);
    is_int(e.code, ASBP_OK, "cleared error has code OK");
    is_str(e.msg, "", "cleared error has no message");
    is_int(asbp_err_set(&e, ASBP_E_QUERY, ASBP_EC_REPORT, "bad %s %d", "thing", 42),
           ASBP_E_QUERY, "set returns the code");
    is_str(e.msg, "bad thing 42", "message formatted");
    asbp_err_prefix(&e, "DataSource %s", "dbi:Pg:dbname=x");
    is_str(e.msg, "DataSource dbi:Pg:dbname=x: bad thing 42", "prefix added");
    {
        char big[3000];
        memset(big, 'a', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        asbp_err_set(&e, ASBP_E_USAGE, ASBP_EC_REPORT, "%s", big);
        is_int(strlen(e.msg), ASBP_ERR_MSG_MAX - 1, "long message truncated safely");
        asbp_err_prefix(&e, "%s", big);
        is_int(strlen(e.msg), ASBP_ERR_MSG_MAX - 1, "long prefix truncated safely");
    }
    is_str(asbp_eclass_name(ASBP_EC_FAILOVER), "failover", "class names");
    is_str(asbp_code_name(ASBP_E_NOTFOUND), "not found", "code names");
    return tap_done();
}
