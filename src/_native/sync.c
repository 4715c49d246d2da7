/* The child's end of the sync socket: waiting for the parent's go-ahead
 * (after clone, and again after the hooks' pause). */
#include <unistd.h>

#include "child.h"

int crn_child_wait_go(crn_child *c, crn_error *err)
{
    crn_sync_msg msg;
    ssize_t n = read(c->sync_fd, &msg, sizeof(msg));
    if (n != (ssize_t)sizeof(msg) || msg.kind != CRN_SYNC_GO)
        return crn_error_set(err, n < 0 ? errno : EPIPE, "read sync", NULL);
    if (msg.pid > 0)
        c->host_pid = msg.pid;
    return 0;
}
