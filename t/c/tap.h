/*
 * tap.h: the few TAP helpers our C unit tests need (header-only).
 * Each test program prints "ok N - name" lines and a trailing plan, and
 * exits non-zero when a test failed, so prove reports it.
 */
#ifndef ASBP_TAP_H
#define ASBP_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n = 0, tap_failed = 0;

static void tap_diag(const char *fmt, ...)
{
    va_list ap;
    fputs("# ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

static int tap_ok(int cond, const char *fmt, ...)
{
    va_list ap;
    tap_n++;
    printf("%sok %d - ", cond ? "" : "not ", tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
    if (!cond)
        tap_failed++;
    return cond;
}

#define ok(cond, ...) tap_ok(!!(cond), __VA_ARGS__)

#define is_int(got, want, ...)                                              \
    do {                                                                    \
        long long g_ = (long long)(got), w_ = (long long)(want);            \
        if (!tap_ok(g_ == w_, __VA_ARGS__))                                 \
            tap_diag("  got %lld, expected %lld", g_, w_);                  \
    } while (0)

#define is_str(got, want, ...)                                              \
    do {                                                                    \
        const char *g_ = (got), *w_ = (want);                               \
        int same_ = (g_ && w_) ? strcmp(g_, w_) == 0 : g_ == w_;            \
        if (!tap_ok(same_, __VA_ARGS__))                                    \
            tap_diag("  got '%s', expected '%s'", g_ ? g_ : "(null)",       \
                     w_ ? w_ : "(null)");                                   \
    } while (0)

#define like_str(got, needle, ...)                                          \
    do {                                                                    \
        const char *g_ = (got), *n_ = (needle);                             \
        if (!tap_ok(g_ && strstr(g_, n_) != NULL, __VA_ARGS__))             \
            tap_diag("  '%s' does not contain '%s'", g_ ? g_ : "(null)", n_); \
    } while (0)

#define unlike_str(got, needle, ...)                                        \
    do {                                                                    \
        const char *g_ = (got), *n_ = (needle);                             \
        if (!tap_ok(g_ && strstr(g_, n_) == NULL, __VA_ARGS__))             \
            tap_diag("  '%s' contains '%s'", g_ ? g_ : "(null)", n_);       \
    } while (0)

static int tap_done(void)
{
    printf("1..%d\n", tap_n);
    fflush(stdout);
    return tap_failed ? 1 : 0;
}

#endif
