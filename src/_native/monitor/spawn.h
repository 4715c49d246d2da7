/* Starting the container process.  This is the one seam a plan-based
 * launcher (the built-in runtime's clone -> execve path) replaces: it gets
 * the stdio the monitor prepared and returns the pid of a child of ours. */
#ifndef CRN_MONITOR_SPAWN_H
#define CRN_MONITOR_SPAWN_H

#include <stdbool.h>
#include <sys/types.h>

#include "../error.h"

struct crn_spawn_req {
    char *const *argv;           /* execvp'ed in the child */
    int stdio[3];                /* become fds 0, 1, 2 of the child */
    bool controlling_tty;        /* stdio[0] is a pty slave to make the ctty */
};

/* Fork and exec req->argv.  Returns 0 with *pid set once the exec has
 * happened, or -1 with the child's exec errno in err (the child is reaped). */
int crn_monitor_spawn(const struct crn_spawn_req *req, pid_t *pid, crn_error *err);

#endif
