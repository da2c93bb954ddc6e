#include "asbp_random.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/random.h>
#endif

asbp_code asbp_random_bytes(unsigned char *buf, size_t n, asbp_err *err)
{
    size_t got = 0;
#if defined(__linux__)
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        got += (size_t)r;
    }
#endif
    if (got < n) {
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                                "no secure random source: %s", strerror(errno));
        while (got < n) {
            ssize_t r = read(fd, buf + got, n - got);
            if (r <= 0) {
                if (r < 0 && errno == EINTR)
                    continue;
                close(fd);
                return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                                    "cannot read /dev/urandom");
            }
            got += (size_t)r;
        }
        close(fd);
    }
    return ASBP_OK;
}

asbp_code asbp_random_hex(char *out, size_t len, asbp_err *err)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[256];
    size_t i, done = 0;
    while (done < len) {
        size_t chunk = (len - done + 1) / 2;
        asbp_code rc;
        if (chunk > sizeof raw)
            chunk = sizeof raw;
        rc = asbp_random_bytes(raw, chunk, err);
        if (rc)
            return rc;
        for (i = 0; i < chunk && done < len; i++) {
            out[done++] = hex[raw[i] >> 4];
            if (done < len)
                out[done++] = hex[raw[i] & 15];
        }
    }
    out[len] = '\0';
    memset(raw, 0, sizeof raw);
    return ASBP_OK;
}
