#include "asbp_log.h"

#include <stdarg.h>
#include <stdio.h>

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
    lg->fn(lg->ud, level, msg);
}
