/*
 * asbp_clock: the one place the core reads time from.
 *
 * Every deadline, cache age and circuit-breaker delay is computed from an
 * asbp_clock.  The default reads CLOCK_MONOTONIC; tests replace the source
 * function, or shift the clock with an offset, so that no test has to
 * sleep to see a TTL expire.
 */
#ifndef ASBP_CLOCK_H
#define ASBP_CLOCK_H

#include <stdint.h>

typedef int64_t (*asbp_clock_fn)(void *ud);

typedef struct asbp_clock {
    asbp_clock_fn fn;   /* NULL: CLOCK_MONOTONIC */
    void *ud;
    int64_t offset_ms;  /* added to whatever fn returns */
} asbp_clock;

#define ASBP_CLOCK_INIT { NULL, NULL, 0 }

/* Milliseconds from an arbitrary origin; never goes backwards. */
int64_t asbp_clock_now_ms(const asbp_clock *c);

/* The real monotonic clock, whatever the asbp_clock says. */
int64_t asbp_monotonic_ms(void);

#endif
