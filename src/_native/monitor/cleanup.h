/* Scope-bound cleanup for the monitor, in place of goto chains. */
#ifndef CRN_MONITOR_CLEANUP_H
#define CRN_MONITOR_CLEANUP_H

#include <unistd.h>

static inline void crn_close_fdp(int *fd)
{
    if (*fd >= 0)
        close(*fd);
}

/* An fd closed when it leaves scope unless handed on with crn_take_fd(). */
#define cleanup_fd __attribute__((cleanup(crn_close_fdp)))

static inline int crn_take_fd(int *fd)
{
    int out = *fd;
    *fd = -1;
    return out;
}

#endif
