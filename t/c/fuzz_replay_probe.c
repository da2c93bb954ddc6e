/*
 * fuzz_replay_probe: runs the fuzz targets of fuzz/ on files, without
 * libFuzzer, in the normal build (t/90-fuzz-regressions.t feeds it every
 * corpus and regression file).
 *
 *   fuzz_replay_probe patroni|dsn FILE...
 *
 * Prints "ok FILE" for each file; a broken property aborts (the target's
 * FUZZ_CHECK), a memory error may crash: either way the exit status is not
 * 0.  Exit 0: every file ran.  Exit 2: usage or unreadable file.
 */
#define FUZZ_NO_ENTRY
#include "../../fuzz/fuzz_patroni.c"
#include "../../fuzz/fuzz_dsn.c"

#include <errno.h>

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *p = NULL;
    size_t cap = 0, n = 0, got;
    if (!f)
        return NULL;
    for (;;) {
        if (n == cap) {
            uint8_t *q;
            cap = cap ? cap * 2 : 4096;
            q = realloc(p, cap);
            if (!q) {
                free(p);
                fclose(f);
                return NULL;
            }
            p = q;
        }
        got = fread(p + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        free(p);
        fclose(f);
        return NULL;
    }
    fclose(f);
    /* An exact-size copy: reads past the end are caught by the
     * sanitizers and valgrind. */
    {
        uint8_t *exact = malloc(n ? n : 1);
        if (exact && n)
            memcpy(exact, p, n);
        free(p);
        *len = n;
        return exact;
    }
}

int main(int argc, char **argv)
{
    int (*one)(const uint8_t *, size_t);
    int i;

    if (argc < 2) {
        fputs("usage: fuzz_replay_probe patroni|dsn FILE...\n", stderr);
        return 2;
    }
    if (!strcmp(argv[1], "patroni"))
        one = fuzz_patroni_one;
    else if (!strcmp(argv[1], "dsn"))
        one = fuzz_dsn_one;
    else {
        fprintf(stderr, "fuzz_replay_probe: unknown target '%s'\n", argv[1]);
        return 2;
    }
    for (i = 2; i < argc; i++) {
        size_t len = 0;
        uint8_t *data = slurp(argv[i], &len);
        if (!data) {
            fprintf(stderr, "fuzz_replay_probe: %s: %s\n", argv[i], strerror(errno));
            return 2;
        }
        one(data, len);
        free(data);
        printf("ok %s\n", argv[i]);
        fflush(stdout);
    }
    return 0;
}
