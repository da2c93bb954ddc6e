#include "asbp_pid.h"

#include <sys/mman.h>
#include <unistd.h>

static volatile unsigned char *fork_mark;   /* never unmapped */
static pid_t fork_mark_pid;
static int fork_mark_tried;

pid_t asbp_pid(void)
{
#ifdef MADV_WIPEONFORK
    if (fork_mark && fork_mark[0])
        return fork_mark_pid;
    if (!fork_mark && !fork_mark_tried) {
        void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        fork_mark_tried = 1;
        if (p != MAP_FAILED) {
            if (madvise(p, 4096, MADV_WIPEONFORK) == 0)
                fork_mark = p;
            else
                munmap(p, 4096);
        }
    }
    fork_mark_pid = getpid();
    if (fork_mark)
        fork_mark[0] = 1;
    return fork_mark_pid;
#else
    return getpid();
#endif
}
