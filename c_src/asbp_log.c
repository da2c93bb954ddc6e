#include "asbp_log.h"
#include "asbp_clock.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Characters after which a digit belongs to a name or an address. */
static int joins_digit(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
        || (c && strchr("._:/=@-[%#+", c) != NULL);
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/*
 * The length of the number that stands alone at s (prev: the character
 * before it, 0 at the start), digits and an optional fraction; 0 when
 * there is none (see asbp_log_key).  A unit after it (s, ms) stays in the
 * text.
 */
static size_t lone_number(const char *s, char prev)
{
    size_t n = 0, unit;
    if (!is_digit(s[0]) || joins_digit(prev))
        return 0;
    while (is_digit(s[n]))
        n++;
    if (s[n] == '.' && is_digit(s[n + 1]))
        for (n++; is_digit(s[n]); n++)
            ;
    if ((s[n] == '.' || s[n] == ':') && (is_digit(s[n + 1]) || is_alpha(s[n + 1])
                                        || s[n + 1] == ':'))
        return 0;           /* an address: 10.0.0.1, 1:5432, 2001:db8::1 */
    for (unit = n; is_alpha(s[unit]); unit++)
        ;
    if (is_digit(s[unit]))
        return 0;           /* letters and digits mixed: 57P01 */
    return n;
}

unsigned long asbp_log_key(const char *msg)
{
    unsigned long h = 5381;
    char prev = 0;
    const char *s = msg;
    while (*s) {
        size_t n = lone_number(s, prev);
        if (n) {
            h = h * 33 + (unsigned char)'#';
            s += n;
            prev = '#';     /* joins: what follows at once is a unit */
            continue;
        }
        prev = *s;
        h = h * 33 + (unsigned char)*s++;
    }
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
    unsigned long h = asbp_log_key(msg);
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

/* ---- the queue -------------------------------------------------------- */

typedef struct queued {
    asbp_log_level level;
    char *text;               /* owned */
} queued;

struct asbp_log_queue {
    queued *ring;             /* owned: cap slots */
    size_t cap, head, n;      /* the oldest is ring[head] */
    unsigned long dropped;
};

asbp_log_queue *asbp_log_queue_new(size_t cap)
{
    asbp_log_queue *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->cap = cap ? cap : 1;
    q->ring = calloc(q->cap, sizeof *q->ring);
    if (!q->ring) {
        free(q);
        return NULL;
    }
    return q;
}

void asbp_log_queue_clear(asbp_log_queue *q)
{
    size_t i;
    if (!q)
        return;
    for (i = 0; i < q->n; i++) {
        queued *m = &q->ring[(q->head + i) % q->cap];
        free(m->text);
        m->text = NULL;
    }
    q->head = q->n = 0;
    q->dropped = 0;
}

void asbp_log_queue_free(asbp_log_queue *q)
{
    if (!q)
        return;
    asbp_log_queue_clear(q);
    free(q->ring);
    free(q);
}

void asbp_log_queue_sink(void *ud, asbp_log_level level, const char *msg)
{
    asbp_log_queue *q = ud;
    size_t len = strlen(msg);
    char *copy = malloc(len + 1);
    queued *m;
    if (!copy) {
        q->dropped++;
        return;
    }
    memcpy(copy, msg, len + 1);
    if (q->n == q->cap) {   /* full: the oldest goes */
        free(q->ring[q->head].text);
        q->ring[q->head].text = NULL;
        q->head = (q->head + 1) % q->cap;
        q->n--;
        q->dropped++;
    }
    m = &q->ring[(q->head + q->n) % q->cap];
    m->level = level;
    m->text = copy;
    q->n++;
}

size_t asbp_log_queue_count(const asbp_log_queue *q) { return q ? q->n : 0; }

int asbp_log_queue_take(asbp_log_queue *q, asbp_log_level *level, char *buf,
                        size_t size)
{
    queued *m;
    if (!q || !q->n)
        return 0;
    m = &q->ring[q->head];
    *level = m->level;
    if (size)
        snprintf(buf, size, "%s", m->text);
    free(m->text);
    m->text = NULL;
    q->head = (q->head + 1) % q->cap;
    q->n--;
    return 1;
}

unsigned long asbp_log_queue_take_dropped(asbp_log_queue *q)
{
    unsigned long d;
    if (!q)
        return 0;
    d = q->dropped;
    q->dropped = 0;
    return d;
}
