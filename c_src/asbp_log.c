#include "asbp_log.h"
#include "asbp_clock.h"

#include <stdarg.h>
#include <stdio.h>

static unsigned long hash_text(const char *s)
{
    unsigned long h = 5381;
    while (*s)
        h = h * 33 + (unsigned char)*s++;
    return h ? h : 1;
}

/* Returns 0 to print (msg may get a suffix), 1 to suppress. */
static int suppressed(const asbp_logger *lg, asbp_log_level level,
                      char *msg, size_t size)
{
    size_t i, oldest = 0;
    unsigned long h;
    int64_t now;
    if (!lg->recent || !lg->nrecent || lg->dedupe_ms <= 0 || level == ASBP_LOG_TRACE)
        return 0;
    h = hash_text(msg);
    now = asbp_monotonic_ms();
    for (i = 0; i < lg->nrecent; i++) {
        asbp_log_recent *r = &lg->recent[i];
        if (r->hash == h) {
            if (now - r->since_ms < lg->dedupe_ms) {
                r->repeats++;
                return 1;
            }
            if (r->repeats) {
                size_t len = 0;

                while (len < size && msg[len])
                    len++;
                snprintf(msg + len, size - len, " (and %lu more times in %llds)",
                         r->repeats, (long long)((now - r->since_ms) / 1000));
            }
            r->repeats = 0;
            r->since_ms = now;
            return 0;
        }
        if (r->since_ms < lg->recent[oldest].since_ms)
            oldest = i;
    }
    lg->recent[oldest].hash = h;
    lg->recent[oldest].since_ms = now;
    lg->recent[oldest].repeats = 0;
    return 0;
}

void asbp_log(const asbp_logger *lg, asbp_log_level level, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    if (!lg || !lg->fn)
        return;
    if (level == ASBP_LOG_TRACE && !lg->trace)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (suppressed(lg, level, msg, sizeof msg))
        return;
    lg->fn(lg->ud, level, msg);
}
