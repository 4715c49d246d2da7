/* The container's terminal: the controlling tty from a pty slave on stdin,
 * or a pty made from its own /dev/ptmx whose master goes to the console
 * socket. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <termios.h>
#include <unistd.h>

#include "child.h"
#include "cleanup.h"
#include "fdpass.h"

/* Runs first, right after setsid(): a session leader without a terminal
 * takes the pty on fd 0 as its controlling tty, so job control, ^C and
 * SIGHUP reach the container as they would in a login shell. */
int crn_proc_controlling_tty(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    if (!crn_plan_find(c->plan, c->len, CRN_PLAN_CONTROLLING_TTY, &rec))
        return 0;
    if (ioctl(0, TIOCSCTTY, 0) < 0)
        return crn_error_set(err, errno, "ioctl TIOCSCTTY", "stdin");
    return 0;
}

static int send_fd(int sock, int fd, crn_error *err)
{
    crn_sync_msg msg;
    crn_fd_control ctl;
    struct iovec iov = {.iov_base = &msg, .iov_len = sizeof(msg)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    memset(&msg, 0, sizeof(msg));
    msg.kind = CRN_SYNC_CONSOLE;
    crn_fd_attach(&mh, &ctl, fd);
    if (sendmsg(sock, &mh, MSG_NOSIGNAL) != (ssize_t)sizeof(msg))
        return crn_error_set(err, errno, "sendmsg", "console");
    return 0;
}

/* The console socket's pty, made as runc makes it: from the container's
 * own /dev/ptmx (its devpts instance), so `tty` names /dev/pts/0 inside.
 * The slave becomes stdio and the controlling tty (we are a session leader
 * without one), owned by the container user like runc's stdio; the master
 * goes to the parent, which hands it to the console socket. */
int crn_proc_console(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    int unlock = 0;
    if (!crn_plan_find(c->plan, c->len, CRN_PLAN_CONSOLE, &rec))
        return 0;
    crn_auto_fd master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0)
        return crn_error_set(err, errno, "open", "/dev/ptmx");
    if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
        return crn_error_set(err, errno, "ioctl TIOCSPTLCK", "/dev/ptmx");
    crn_auto_fd slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0)
        return crn_error_set(err, errno, "ioctl TIOCGPTPEER", "/dev/ptmx");
    if (crn_plan_find(c->plan, c->len, CRN_PLAN_USER, &rec)) {
        uint32_t uid;
        memcpy(&uid, rec.data, 4);
        if (fchown(slave, uid, (gid_t)-1) < 0)
            return crn_error_set(err, errno, "fchown", "console");
    }
    for (int i = 0; i < 3; i++)
        if (dup2(slave, i) < 0)
            return crn_error_set(err, errno, "dup2", "console");
    if (ioctl(0, TIOCSCTTY, 0) < 0)
        return crn_error_set(err, errno, "ioctl TIOCSCTTY", "console");
    return send_fd(c->sync_fd, master, err);
}
