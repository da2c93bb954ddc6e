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

/* A message seen recently (for repeat suppression). */
typedef struct asbp_log_recent {
    unsigned long hash;
    int64_t since_ms;      /* when it was last printed */
    unsigned long repeats; /* suppressed since then */
} asbp_log_recent;

typedef struct asbp_logger {
    asbp_log_fn fn;   /* NULL: messages are dropped */
    void *ud;
    int trace;        /* non-zero: ASBP_LOG_TRACE messages are produced */
    /*
     * Repeat suppression (warnings and info): the same text is printed at
     * most once per dedupe_ms; the next time it is printed it says how many
     * times it was suppressed.  During an outage every worker process would
     * otherwise print the same line several times a second.  recent points
     * to storage owned by whoever owns the logger; NULL disables it.
     */
    asbp_log_recent *recent;
    size_t nrecent;
    int64_t dedupe_ms;
} asbp_logger;

void asbp_log(const asbp_logger *lg, asbp_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#define ASBP_TRACE(lg, ...)                                   \
    do {                                                      \
        if ((lg) && (lg)->trace && (lg)->fn)                  \
            asbp_log((lg), ASBP_LOG_TRACE, __VA_ARGS__);      \
    } while (0)

#endif
