/*
 * asbp_dsn: parses a DBI DataSource for DBD::Pg ("dbi:Pg:k=v;k=v").
 *
 * The part after "dbi:Pg:" is a list of key=value pairs separated by ';'
 * (or white space, as libpq's conninfo allows once DBD::Pg has turned the
 * ';' into spaces).  A value may be single-quoted, with \' and \\ escapes.
 * Keys are folded to lower case; DBD::Pg's aliases "db" and "database"
 * become "dbname".  A key given twice keeps its last value, as in libpq.
 * Every key is kept: the connection layer hands them all to libpq.
 */
#ifndef ASBP_DSN_H
#define ASBP_DSN_H

#include <stddef.h>
#include "asbp_err.h"

typedef struct asbp_dsn asbp_dsn;

/* On error, *out is NULL and err names the DataSource (password masked). */
asbp_code asbp_dsn_parse(const char *datasource, asbp_dsn **out, asbp_err *err);
void asbp_dsn_free(asbp_dsn *d);

size_t asbp_dsn_count(const asbp_dsn *d);
const char *asbp_dsn_key(const asbp_dsn *d, size_t i);
const char *asbp_dsn_value(const asbp_dsn *d, size_t i);
/* NULL when absent. */
const char *asbp_dsn_get(const asbp_dsn *d, const char *key);

/*
 * True when the values of key (any case) are masked in messages: any key
 * containing "password" (password, sslpassword, ...), and any key that
 * is not one of libpq's parameters known to hold no secret (a misspelt
 * or unknown key, a parameter of a newer libpq).
 */
int asbp_dsn_key_is_secret(const char *key);

/* The DataSource as given, with the value of every key that may hold a
 * secret (asbp_dsn_key_is_secret) replaced by "***". */
const char *asbp_dsn_display(const asbp_dsn *d);

/*
 * Writes into buf (size n) the DataSource text with the values of secret
 * keys masked; works on any text, parsable or not (there, after a syntax
 * error, any "key=" where a key may start is masked unless the key is a
 * shown one, and an unterminated quoted value to the end).  Returns buf.
 */
char *asbp_dsn_mask(const char *datasource, char *buf, size_t n);

#endif
