/*
 * asbp_random: session ids from the kernel's cryptographically secure
 * generator (getrandom(2), or /dev/urandom where getrandom is missing).
 */
#ifndef ASBP_RANDOM_H
#define ASBP_RANDOM_H

#include <stddef.h>
#include "asbp_err.h"

asbp_code asbp_random_bytes(unsigned char *buf, size_t n, asbp_err *err);
/* Writes len lower-case hex digits and a NUL into out (len + 1 bytes). */
asbp_code asbp_random_hex(char *out, size_t len, asbp_err *err);

#endif
