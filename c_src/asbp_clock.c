#include "asbp_clock.h"

#include <time.h>

int64_t asbp_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t asbp_clock_now_ms(const asbp_clock *c)
{
    int64_t t;
    if (!c)
        return asbp_monotonic_ms();
    t = c->fn ? c->fn(c->ud) : asbp_monotonic_ms();
    return t + c->offset_ms;
}
