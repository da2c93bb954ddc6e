/*
 * asbp_store: the session store of one tied session (DESIGN.md section 4).
 *
 * The first operation checks a connection out of the pool and opens a
 * transaction; materialize reads with SELECT ... FOR UPDATE inside it;
 * insert, update and remove write inside it; close ends it (COMMIT when
 * the store commits and something was written, ROLLBACK otherwise: a
 * transaction that changed nothing has nothing to make durable) and gives
 * the connection back.  Round trips are pipelined (BEGIN goes with the
 * first statement).
 *
 * Every write is also kept in a journal until the transaction ends, so
 * that when the leader changes mid-transaction (or the outcome of COMMIT
 * is unknown) the transaction can be redone on the new leader: an insert
 * whose row is found with exactly the value we wrote is recognised as our
 * own committed row, not reported as a duplicate.
 */
#ifndef ASBP_STORE_H
#define ASBP_STORE_H

#include <stddef.h>
#include "asbp_err.h"
#include "asbp_source.h"

typedef struct asbp_store asbp_store;

/* commit: non-zero to COMMIT written changes on close (Commit option). */
asbp_store *asbp_store_new(asbp_source *src, int commit);
/* Ends an open transaction with ROLLBACK (never commits) and frees. */
void asbp_store_free(asbp_store *st);

asbp_code asbp_store_insert(asbp_store *st, const char *id, const char *data,
                            asbp_err *err);
asbp_code asbp_store_update(asbp_store *st, const char *id, const char *data,
                            asbp_err *err);
/* *data points into the store, valid until its next call; *len its length. */
asbp_code asbp_store_materialize(asbp_store *st, const char *id,
                                 const char **data, size_t *len, asbp_err *err);
asbp_code asbp_store_remove(asbp_store *st, const char *id, asbp_err *err);
/* Ends the transaction; the store can be used again afterwards. */
asbp_code asbp_store_close(asbp_store *st, asbp_err *err);

int asbp_store_in_transaction(const asbp_store *st);
asbp_source *asbp_store_source(asbp_store *st);
/* Server (host:port) of the connection held, "" when none. */
const char *asbp_store_server(const asbp_store *st);

/* The longest session id taken (the longest IDLength). */
#define ASBP_ID_MAX 4096

/*
 * A session id as messages show it: an id is a bearer token, so only a
 * prefix, enough to correlate, is shown: at most 8 characters and never
 * more than half of the id, then "...".  A byte that is not printable
 * ASCII (a control character, from a cookie say) is shown as '?'.  Writes
 * into buf (ASBP_ID_TEXT bytes, NUL-terminated); returns buf.
 */
#define ASBP_ID_TEXT 16
char *asbp_id_text(const char *id, size_t len, char *buf);

#endif
