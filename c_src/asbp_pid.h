/*
 * asbp_pid: the pid of this process, without a system call every time.
 *
 * Connections remember the pid that opened them and check it at every use
 * (a child of fork() must not touch its parent's sockets): that check runs
 * several times per operation.  The kernel zeroes a MADV_WIPEONFORK page in
 * a child (Linux 4.14 and later), so while the page still holds its mark no
 * fork has happened since the pid was read.  Where that is not available,
 * getpid() every time.
 *
 * Process-wide state, on purpose: the answer is a property of the process.
 * The page is never unmapped.
 */
#ifndef ASBP_PID_H
#define ASBP_PID_H

#include <sys/types.h>

pid_t asbp_pid(void);

#endif
