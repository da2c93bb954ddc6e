/*
 * fuzz_common.h: what the fuzz targets share (header-only).
 *
 * A target is a function fuzz_<name>_one(data, size) that runs the code
 * under test on arbitrary bytes and checks properties that must hold
 * whatever the input; a broken property calls FUZZ_CHECK's abort(), which
 * libFuzzer (and t/c/fuzz_replay_probe under `make test`) reports as a
 * crash.  The libFuzzer entry point LLVMFuzzerTestOneInput is defined
 * only when FUZZ_NO_ENTRY is not defined, so that the plain replay driver
 * can include several targets in one program.
 */
#ifndef ASBP_FUZZ_COMMON_H
#define ASBP_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond)                                                    \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: property broken: %s\n", __FILE__,       \
                    __LINE__, #cond);                                       \
            abort();                                                        \
        }                                                                   \
    } while (0)

/* A NUL-terminated copy of the input, allocated at its exact size so that
 * AddressSanitizer sees any read past the terminator.  Stops at the first
 * NUL byte of the input (the functions under test take C strings). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t n = nul ? (size_t)(nul - data) : size;
    char *s = malloc(n + 1);
    if (!s)
        abort();
    if (n)
        memcpy(s, data, n);
    s[n] = '\0';
    return s;
}

/* Overlapping occurrences of needle in hay. */
static inline size_t fuzz_count(const char *hay, const char *needle)
{
    size_t n = 0;
    const char *p = hay;
    if (!*needle)
        return 0;
    while ((p = strstr(p, needle)) != NULL) {
        n++;
        p++;
    }
    return n;
}

static inline int fuzz_has_controls(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

#endif
