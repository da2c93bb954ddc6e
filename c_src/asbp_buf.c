#include "asbp_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int asbp_buf_reserve(asbp_buf *b, size_t extra)
{
    size_t need, cap;
    char *p;
    if (extra > (size_t)-1 - b->len - 1)
        return -1;
    need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > ((size_t)-1) / 2 ? need : cap * 2;
    p = realloc(b->data, cap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int asbp_buf_append(asbp_buf *b, const char *s, size_t n)
{
    if (asbp_buf_reserve(b, n) < 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int asbp_buf_puts(asbp_buf *b, const char *s)
{
    return asbp_buf_append(b, s, strlen(s));
}

int asbp_buf_printf(asbp_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || asbp_buf_reserve(b, (size_t)n) < 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void asbp_buf_reset(asbp_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void asbp_buf_free(asbp_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *asbp_buf_steal(asbp_buf *b)
{
    char *p = b->data;
    if (!p)
        p = calloc(1, 1);
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

const char *asbp_buf_cstr(const asbp_buf *b)
{
    return b->data ? b->data : "";
}

char *asbp_strdup(const char *s)
{
    size_t n;
    char *p;
    if (!s)
        return NULL;
    n = strlen(s);
    p = malloc(n + 1);
    if (p)
        memcpy(p, s, n + 1);
    return p;
}

void asbp_wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

void asbp_free_secret(char *p)
{
    if (!p)
        return;
    asbp_wipe(p, strlen(p));
    free(p);
}
