/* Unit tests: DataSource parsing and password masking. */
#include "tap.h"
#include "asbp_dsn.h"

static asbp_dsn *parse_ok(const char *ds)
{
    asbp_dsn *d = NULL;
    asbp_err e;
    asbp_err_clear(&e);
    if (asbp_dsn_parse(ds, &d, &e) != ASBP_OK)
        tap_diag("parse of '%s' failed: %s", ds, e.msg);
    return d;
}

/* Every key that may hold a secret is masked, in a valid DataSource and
 * in one that does not parse; the keys known to hold none are shown. */
static void secret_keys(void)
{
    char buf[512];
    asbp_dsn *d;
    struct { const char *in, *out, *name; } c[] = {
        { "dbi:Pg:mypassword=abc", "dbi:Pg:mypassword=***", "a key ending in password" },
        { "dbi:Pg:sslpassword=abc;host=h", "dbi:Pg:sslpassword=***;host=h", "sslpassword" },
        { "dbi:Pg:SSLPassword='a b';port=1", "dbi:Pg:SSLPassword=***;port=1",
          "sslpassword in any case, quoted" },
        { "dbi:Pg:password_x=abc", "dbi:Pg:password_x=***", "a key starting with password" },
        { "dbi:Pg:pasword=abc;dbname=d", "dbi:Pg:pasword=***;dbname=d", "a misspelt password" },
        { "dbi:Pg:frobnicate=abc", "dbi:Pg:frobnicate=***", "an unknown key" },
        { "dbi:Pg:host=h;port=5;dbname=d;user=u;sslmode=verify-full;application_name=a",
          "dbi:Pg:host=h;port=5;dbname=d;user=u;sslmode=verify-full;application_name=a",
          "the usual keys are shown" },
        { "dbi:Pg:Host=h;DB=d", "dbi:Pg:Host=h;DB=d", "shown keys in any case" },
        { "dbi:Pg:pasword=abc;oops", "dbi:Pg:pasword=***;oops", "misspelt, then a syntax error" },
        { "dbi:Pg:oops pasword=abc", "dbi:Pg:oops pasword=***", "a syntax error, then misspelt" },
        { "dbi:Pg:oops sslpassword='a b", "dbi:Pg:oops sslpassword=***",
          "a syntax error, then an unterminated secret" },
        { "dbi:Pg:oops x:pasword = abc y", "dbi:Pg:oops x:pasword=*** ***",
          "loose: after a colon, blanks around =" },
        { "dbi:mysql:db=x;pasword=abc", "dbi:mysql:db=x;pasword=***", "another driver" },
        { "nonsense token=abc", "nonsense token=***", "no prefix at all" },
        { "dbi:Pg:oops dbname='x", "dbi:Pg:oops dbname='x", "a shown key, unterminated" },
        { "dbi:Pg:host=h;password=my secret words;port=1", "dbi:Pg:host=h;password=*** ***;port=1",
          "an unquoted password with spaces: all its words" },
        { "dbi:Pg:password=my secret host=h", "dbi:Pg:password=*** *** host=h",
          "... up to the next pair" },
        { "dbi:Pg:oops password=my secret;port=1", "dbi:Pg:oops password=*** ***;port=1",
          "... after a syntax error too" },
        { "dbi:Pg:password='my' secret", "dbi:Pg:password=*** secret",
          "a quoted value ends at its quote" },
        { "dbi:Pg:host=my secret", "dbi:Pg:host=my secret", "the words after a shown value are shown" },
    };
    size_t i;
    for (i = 0; i < sizeof c / sizeof c[0]; i++)
        is_str(asbp_dsn_mask(c[i].in, buf, sizeof buf), c[i].out, "mask: %s", c[i].name);
    d = parse_ok("dbi:Pg:host=h;pasword=s3cret;sslpassword='k3y p'");
    is_str(asbp_dsn_get(d, "pasword"), "s3cret", "a misspelt key is kept for libpq to refuse");
    is_str(asbp_dsn_get(d, "sslpassword"), "k3y p", "sslpassword kept");
    is_str(asbp_dsn_display(d), "dbi:Pg:host=h;pasword=***;sslpassword=***",
           "display masks both");
    asbp_dsn_free(d);
}

int main(void)
{
    asbp_dsn *d;
    asbp_err e;
    char buf[256];

    d = parse_ok("dbi:Pg:dbname=sessions;host=10.0.0.1;port=5432");
    ok(d != NULL, "plain DataSource parses");
    is_int(asbp_dsn_count(d), 3, "three keys");
    is_str(asbp_dsn_get(d, "dbname"), "sessions", "dbname");
    is_str(asbp_dsn_get(d, "host"), "10.0.0.1", "host");
    is_str(asbp_dsn_get(d, "port"), "5432", "port");
    is_str(asbp_dsn_key(d, 0), "dbname", "order kept (first key)");
    ok(asbp_dsn_get(d, "user") == NULL, "absent key is NULL");
    asbp_dsn_free(d);

    d = parse_ok("dbi:Pg:db=a");
    is_str(asbp_dsn_get(d, "dbname"), "a", "db is an alias of dbname");
    asbp_dsn_free(d);
    d = parse_ok("DBI:Pg:database=b;sslmode=require;application_name=llng");
    is_str(asbp_dsn_get(d, "dbname"), "b", "database is an alias of dbname; DBI: in capitals");
    is_str(asbp_dsn_get(d, "sslmode"), "require", "other keys kept for libpq");
    is_str(asbp_dsn_get(d, "application_name"), "llng", "application_name kept");
    asbp_dsn_free(d);

    d = parse_ok("dbi:Pg:");
    ok(d && asbp_dsn_count(d) == 0, "empty parameter list is valid (libpq defaults)");
    asbp_dsn_free(d);

    d = parse_ok("dbi:Pg:  Host = h1 ; PORT=1 ;;dbname='my db'");
    is_str(asbp_dsn_get(d, "host"), "h1", "spaces around = and keys folded to lower case");
    is_str(asbp_dsn_get(d, "port"), "1", "upper-case key folded");
    is_str(asbp_dsn_get(d, "dbname"), "my db", "quoted value with a space");
    asbp_dsn_free(d);

    d = parse_ok("dbi:Pg:dbname='it\\'s';password='a;b c'");
    is_str(asbp_dsn_get(d, "dbname"), "it's", "escaped quote in quoted value");
    is_str(asbp_dsn_get(d, "password"), "a;b c", "separator inside quoted value");
    unlike_str(asbp_dsn_display(d), "a;b", "display masks the quoted password");
    like_str(asbp_dsn_display(d), "password=***", "display shows the mask");
    asbp_dsn_free(d);

    d = parse_ok("dbi:Pg:host=a;host=b");
    is_str(asbp_dsn_get(d, "host"), "b", "a repeated key keeps its last value");
    is_int(asbp_dsn_count(d), 1, "a repeated key is stored once");
    asbp_dsn_free(d);

    d = parse_ok("dbi:Pg(AutoCommit=>1):dbname=x host=y");
    is_str(asbp_dsn_get(d, "dbname"), "x", "DBI attributes skipped, spaces separate");
    is_str(asbp_dsn_get(d, "host"), "y", "space-separated pair");
    asbp_dsn_free(d);

    d = parse_ok("dbi:Pg:host=h1,h2;port=1,2;target_session_attrs=read-write");
    is_str(asbp_dsn_get(d, "host"), "h1,h2", "multi-host value kept as is");
    asbp_dsn_free(d);

    /* Errors name the DataSource, never the password. */
    asbp_err_clear(&e);
    d = NULL;
    is_int(asbp_dsn_parse("dbi:mysql:db=x;password=s3cret", &d, &e), ASBP_E_DSN,
           "another driver is refused");
    ok(d == NULL, "no object on error");
    like_str(e.msg, "dbi:Pg:", "message says what is expected");
    like_str(e.msg, "dbi:mysql:db=x", "message names the DataSource");
    unlike_str(e.msg, "s3cret", "message hides the password");

    is_int(asbp_dsn_parse("dbi:Pg:dbname=x;password=s3cret;garbage", &d, &e), ASBP_E_DSN,
           "a word without = is refused");
    unlike_str(e.msg, "s3cret", "no password in that message");
    like_str(e.msg, "key=value", "message explains the syntax");

    is_int(asbp_dsn_parse("dbi:Pg:password='s3cret", &d, &e), ASBP_E_DSN,
           "unterminated quote refused");
    unlike_str(e.msg, "s3cret", "no password in that message either");

    is_int(asbp_dsn_parse("dbi:Pg:=x", &d, &e), ASBP_E_DSN, "empty key refused");
    is_int(asbp_dsn_parse("", &d, &e), ASBP_E_DSN, "empty DataSource refused");
    is_int(asbp_dsn_parse(NULL, &d, &e), ASBP_E_DSN, "missing DataSource refused");
    is_int(asbp_dsn_parse("dbi:Pg", &d, &e), ASBP_E_DSN, "no colon after Pg refused");
    is_int(asbp_dsn_parse("dbi:Pg(x:dbname=a", &d, &e), ASBP_E_DSN,
           "unterminated attributes refused");
    is_int(asbp_dsn_parse("dbi:Pg:host=a b=", &d, &e), ASBP_OK,
           "empty value accepted (libpq decides)");
    asbp_dsn_free(d);

    asbp_dsn_mask("dbi:Pg:dbname=x;PASSWORD = 'p w';user=u", buf, sizeof buf);
    is_str(buf, "dbi:Pg:dbname=x;password=***;user=u", "mask: quoted, spaced, any case");
    asbp_dsn_mask("dbi:Pg:password=abc", buf, sizeof buf);
    is_str(buf, "dbi:Pg:password=***", "mask right after the prefix");
    /* The mask reads pairs as the parser does (found by fuzz/fuzz_dsn.c). */
    d = parse_ok("dbi:Pg:dbname='a'password=s3cret");
    is_str(asbp_dsn_get(d, "password"), "s3cret", "a key right after a quoted value");
    is_str(asbp_dsn_display(d), "dbi:Pg:dbname='a'password=***",
           "display masks a password right after a quoted value");
    asbp_dsn_free(d);
    d = parse_ok("dbi:Pg:application_name='x password=y'password='s3;cret'");
    is_str(asbp_dsn_get(d, "password"), "s3;cret", "quoted password after a look-alike");
    unlike_str(asbp_dsn_display(d), "cret", "no part of it in the display");
    like_str(asbp_dsn_display(d), "application_name='x password=y'",
             "a quoted value that looks like a password is shown as is");
    asbp_dsn_free(d);
    d = parse_ok("dbi:Pg:password='p w'host=h");
    is_str(asbp_dsn_display(d), "dbi:Pg:password=*** host=h",
           "display keeps the next key apart from the mask");
    asbp_dsn_free(d);
    asbp_dsn_mask("dbi:Pg:password=abcdefgh", buf, 10);
    is_int(strlen(buf), 9, "mask truncates to the buffer");
    secret_keys();
    return tap_done();
}
