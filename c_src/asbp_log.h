/*
 * asbp_log: how the core reports what an operator should see.
 *
 * The core never prints.  It hands each message to a logger callback set
 * by its user.  The XS layer's callback puts them in a bounded queue
 * (asbp_log_queue, below) that it empties once the core call has
 * returned, through Perl's warn (or a logger the program set): Perl code
 * never runs inside the core.  Trace messages (one per libpq/libcurl call
 * site that matters) are produced only when the logger's trace flag is on.
 */
#ifndef ASBP_LOG_H
#define ASBP_LOG_H

#include <stddef.h>
#include <stdint.h>

typedef enum asbp_log_level {
    ASBP_LOG_ERROR = 0,
    ASBP_LOG_WARN,
    ASBP_LOG_INFO,
    ASBP_LOG_TRACE
} asbp_log_level;

typedef void (*asbp_log_fn)(void *ud, asbp_log_level level, const char *msg);

/* A message seen recently (one slot of the repeat-suppression table). */
typedef struct asbp_log_recent {
    unsigned long hash;    /* the text's key (asbp_log_key); 0: free slot */
    int64_t since_ms;      /* when it was last printed */
    unsigned long repeats; /* suppressed since then */
} asbp_log_recent;

/*
 * The logger is configuration (its own fields are only read by asbp_log)
 * plus one mutable part: the repeat-suppression table that `recent' points
 * to.  asbp_log takes a `const asbp_logger *' because the code that logs
 * (a connection, a discovery round) holds the logger read-only; the
 * table is the one thing asbp_log writes, always through that non-const
 * pointer member, never to the asbp_logger itself.
 *
 * Ownership: the table belongs to whoever owns the logger and lives as
 * long as it (asbp_ctx embeds both, one per interpreter); it is not
 * shared between loggers or threads.
 */
typedef struct asbp_logger {
    asbp_log_fn fn;   /* NULL: messages are dropped */
    void *ud;
    int trace;        /* non-zero: ASBP_LOG_TRACE messages are produced */
    /*
     * Repeat suppression (every level but ASBP_LOG_TRACE): the same text,
     * whatever its level and whatever its counts and durations (the
     * numbers asbp_log_key masks), is printed at most once per dedupe_ms;
     * the next time it is printed it says how many times it was suppressed.
     * During
     * an outage every worker process would otherwise print the same line
     * several times a second.  The table holds nrecent texts; a new text
     * takes the slot printed longest ago.  recent NULL, nrecent 0 or
     * dedupe_ms <= 0 disables it.
     */
    asbp_log_recent *recent;   /* the mutable part (see above); not owned */
    size_t nrecent;
    int64_t dedupe_ms;
} asbp_logger;

/* Times are read from the real monotonic clock (asbp_monotonic_ms). */
void asbp_log(const asbp_logger *lg, asbp_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/*
 * The same with the time given by the caller (milliseconds on the
 * monotonic clock's scale): for tests, which then need no sleep.
 */
void asbp_log_at(const asbp_logger *lg, int64_t now_ms, asbp_log_level level,
                 const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/*
 * The key under which repeats of msg are counted: a hash of the text in
 * which every number that stands alone ("29 s more", "after 96 ms",
 * "(12s old)", "restart 2 of") counts as one placeholder, so that a line
 * whose count or duration changes is still the same line.  Digits that
 * belong to a name or an address are kept: those after a letter, a digit
 * or one of . : / = @ _ - [ % # + (host1, 10.0.0.1, :5432, port=5432),
 * a number followed by '.' or ':' and more (10.0.0.1, 2001:db8::1),
 * and digits mixed with letters (57P01).  Never 0 (a free slot).
 */
unsigned long asbp_log_key(const char *msg);

/*
 * A bounded queue of messages, oldest first, for a logger whose output
 * must wait (see the top of this file).  asbp_log_queue_sink is an
 * asbp_log_fn whose ud is the queue.  When the queue holds `cap'
 * messages, a new one pushes out the oldest, which is counted as dropped
 * (so is a message that finds no memory).  The queue owns copies of the
 * texts.
 */
typedef struct asbp_log_queue asbp_log_queue;

asbp_log_queue *asbp_log_queue_new(size_t cap);     /* NULL: out of memory */
void asbp_log_queue_free(asbp_log_queue *q);        /* accepts NULL */
void asbp_log_queue_sink(void *q, asbp_log_level level, const char *msg);
size_t asbp_log_queue_count(const asbp_log_queue *q);
/* Takes the oldest message: copies its text into buf (size bytes, cut if
 * longer, always NUL-terminated) and its level into *level; 0 when empty. */
int asbp_log_queue_take(asbp_log_queue *q, asbp_log_level *level, char *buf,
                        size_t size);
/* The number of messages dropped since the last call (and resets it). */
unsigned long asbp_log_queue_take_dropped(asbp_log_queue *q);
/* Forgets every message (and the dropped count): after a fork, the
 * parent's messages are the parent's to emit. */
void asbp_log_queue_clear(asbp_log_queue *q);

#define ASBP_TRACE(lg, ...)                                   \
    do {                                                      \
        if ((lg) && (lg)->trace && (lg)->fn)                  \
            asbp_log((lg), ASBP_LOG_TRACE, __VA_ARGS__);      \
    } while (0)

#endif
