/* __attribute__((cleanup)) helpers, so early returns close what they opened. */
#ifndef CRN_CLEANUP_H
#define CRN_CLEANUP_H

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

/* Also sets *fd to -1, so an explicit early close followed by the
 * variable's own cleanup never closes the number twice (in the threaded
 * daemon the second close could hit another thread's new fd). */
static inline void crn_close_fdp(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
        *fd = -1;
    }
}

static inline void crn_freep(void *p)
{
    free(*(void **)p);
}

/* An fd closed when it goes out of scope; steal it with crn_steal_fd(). */
#define crn_auto_fd __attribute__((cleanup(crn_close_fdp))) int
#define crn_auto_free __attribute__((cleanup(crn_freep)))

static inline int crn_steal_fd(int *fd)
{
    int v = *fd;
    *fd = -1;
    return v;
}

#endif
