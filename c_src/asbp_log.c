#include "asbp_log.h"
#include "asbp_clock.h"

#include <stdarg.h>
#include <stdio.h>

static unsigned long hash_text(const char *s)
{
    unsigned long h = 5381;
    while (*s)
        h = h * 33 + (unsigned char)*s++;
    return h ? h : 1;   /* 0 marks a free slot */
}

/* Appends " (and N more times in Ss)" to msg (a buffer of size bytes). */
static void note_repeats(char *msg, size_t size, const asbp_log_recent *r,
                         int64_t now)
{
    size_t len = 0;
    while (len < size && msg[len])
        len++;
    snprintf(msg + len, size - len, " (and %lu more times in %llds)",
             r->repeats, (long long)((now - r->since_ms) / 1000));
}

/*
 * The repeat-suppression decision for msg at time now, on the table
 * (n slots) that it updates.  Returns 1 to suppress; 0 to print (msg may
 * have got a suffix).
 */
static int suppressed(asbp_log_recent *table, size_t n, int64_t window_ms,
                      int64_t now, char *msg, size_t size)
{
    size_t i, oldest = 0;
    unsigned long h = hash_text(msg);
    for (i = 0; i < n; i++) {
        asbp_log_recent *r = &table[i];
        if (r->hash == h) {
            if (now - r->since_ms < window_ms) {
                r->repeats++;
                return 1;
            }
            if (r->repeats)
                note_repeats(msg, size, r, now);
            r->repeats = 0;
            r->since_ms = now;
            return 0;
        }
        if (r->since_ms < table[oldest].since_ms)
            oldest = i;
    }
    table[oldest].hash = h;
    table[oldest].since_ms = now;
    table[oldest].repeats = 0;
    return 0;
}

/* now: the time given by the caller, or NULL to read the monotonic clock
 * (only when the suppression needs it). */
static void vlog(const asbp_logger *lg, const int64_t *now,
                 asbp_log_level level, const char *fmt, va_list ap)
{
    char msg[2048];
    if (!lg || !lg->fn)
        return;
    if (level == ASBP_LOG_TRACE && !lg->trace)
        return;
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (lg->recent && lg->nrecent && lg->dedupe_ms > 0 && level != ASBP_LOG_TRACE
        && suppressed(lg->recent, lg->nrecent, lg->dedupe_ms,
                      now ? *now : asbp_monotonic_ms(), msg, sizeof msg))
        return;
    lg->fn(lg->ud, level, msg);
}

void asbp_log(const asbp_logger *lg, asbp_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(lg, NULL, level, fmt, ap);
    va_end(ap);
}

void asbp_log_at(const asbp_logger *lg, int64_t now_ms, asbp_log_level level,
                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(lg, &now_ms, level, fmt, ap);
    va_end(ap);
}
