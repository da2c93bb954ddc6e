/*
 * asbp_buf: a growable byte buffer, always NUL-terminated.
 * Owned by whoever declared it; asbp_buf_free() releases the storage.
 */
#ifndef ASBP_BUF_H
#define ASBP_BUF_H

#include <stddef.h>

typedef struct asbp_buf {
    char *data;   /* NULL until the first append */
    size_t len;
    size_t cap;
} asbp_buf;

#define ASBP_BUF_INIT { NULL, 0, 0 }

int asbp_buf_reserve(asbp_buf *b, size_t extra); /* 0 ok, -1 no memory */
int asbp_buf_append(asbp_buf *b, const char *s, size_t n);
int asbp_buf_puts(asbp_buf *b, const char *s);
int asbp_buf_printf(asbp_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void asbp_buf_reset(asbp_buf *b);              /* len = 0, keeps storage */
void asbp_buf_free(asbp_buf *b);
/* Hands the storage to the caller (free() it); the buffer becomes empty. */
char *asbp_buf_steal(asbp_buf *b);
const char *asbp_buf_cstr(const asbp_buf *b);  /* "" when empty */

/* strdup that accepts NULL. */
char *asbp_strdup(const char *s);

/* Overwrites n bytes at p with zeros; the compiler cannot drop it as a
 * dead store (for secrets about to be freed). */
void asbp_wipe(void *p, size_t n);
/* Wipes the string p (strlen bytes) and frees it; NULL is fine. */
void asbp_free_secret(char *p);

#endif
