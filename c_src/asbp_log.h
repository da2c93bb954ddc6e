/*
 * asbp_log: how the core reports what an operator should see.
 *
 * The core never prints.  It hands each message to a logger callback set
 * by its user (the XS layer writes them to STDERR, as the pure-Perl module
 * does).  Trace messages (one per libpq/libcurl call site that matters) are
 * produced only when the logger's trace flag is on.
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
    unsigned long hash;    /* of the text; 0: free slot */
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
     * whatever its level, is printed at most once per dedupe_ms; the next
     * time it is printed it says how many times it was suppressed.  During
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

#define ASBP_TRACE(lg, ...)                                   \
    do {                                                      \
        if ((lg) && (lg)->trace && (lg)->fn)                  \
            asbp_log((lg), ASBP_LOG_TRACE, __VA_ARGS__);      \
    } while (0)

#endif
