/* --console-socket: the terminal of a container an OCI runtime creates.
 *
 * runc and crun make a tty container's pty inside the container and send
 * its master over a unix socket named by their --console-socket, before
 * their `create` returns.  We listen on that socket before running the
 * create (the connection and the fd wait in its queue until we take them),
 * and once the create has exited take the master and use it as the
 * container's stdio from then on, as if we had made the pty ourselves
 * (--terminal): output, stdin, resize.  The runtime itself had /dev/null
 * and our pipes; they are done with once it exits.
 *
 * The built-in runtime's launch (--plan with --terminal) does the same
 * without a socket: its child makes the pty from the container's
 * /dev/ptmx and the launch hands us the master (launchplan.c). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "monitor.h"

int crn_console_listen(struct crn_monitor *m, crn_error *err)
{
    const char *path = m->opts.console_socket;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    cleanup_fd int fd = -1;

    if (strlen(path) >= sizeof(addr.sun_path))
        return crn_error_set(err, ENAMETOOLONG, "--console-socket: path too long for a socket",
                             path);
    strcpy(addr.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return crn_error_set(err, errno, "socket", NULL);
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
        return crn_error_set(err, errno, "bind", path);
    if (listen(fd, 1) < 0) {
        crn_error_set(err, errno, "listen", path);
        unlink(path);
        return -1;
    }
    m->console_fd = crn_take_fd(&fd);
    return 0;
}

void crn_console_shutdown(struct crn_monitor *m)
{
    if (m->console_fd < 0)
        return;
    close(m->console_fd);
    m->console_fd = -1;
    unlink(m->opts.console_socket);
}

/* The one fd an SCM_RIGHTS message on `conn` carries; any others are
 * closed.  The sender has exited, so the message is there or never comes. */
static int receive_fd(int conn, crn_error *err)
{
    char name[256];
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(4 * sizeof(int))];
    } control;
    struct iovec iov = {.iov_base = name, .iov_len = sizeof(name)};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                         .msg_controllen = sizeof(control.buf)};
    int fd = -1;
    ssize_t n;

    do
        n = recvmsg(conn, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return crn_error_set(err, errno == EAGAIN ? 0 : errno,
                             "the runtime connected to the console socket but sent nothing",
                             NULL);
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int *fds = (int *)CMSG_DATA(c);
        for (size_t i = 0; i < count; i++) {
            if (fd < 0)
                fd = fds[i];
            else
                close(fds[i]);
        }
    }
    if (fd < 0)
        return crn_error_set(err, 0, "the runtime sent no file descriptor to the console socket",
                             NULL);
    return fd;
}

/* The pty master (ours to close) becomes the container's output (in place
 * of the pipe the runtime or the launch had for stdout) and, with --stdin,
 * its input: from here on as if we had made the pty ourselves. */
int crn_console_use(struct crn_monitor *m, int fd, crn_error *err)
{
    cleanup_fd int master = fd;
    unsigned ptn;
    int fl;

    if (ioctl(master, TIOCGPTN, &ptn) < 0)
        return crn_error_set(err, 0, "the container's terminal is not a pty master", NULL);
    fl = fcntl(master, F_GETFL);
    if (fl < 0 || fcntl(master, F_SETFL, fl | O_NONBLOCK) < 0)
        return crn_error_set(err, errno, "fcntl O_NONBLOCK", "pty master");
    if (m->opts.stdin_open) {
        /* stdin writes go through their own fd so their EPOLLOUT is separate */
        m->in.fd = fcntl(master, F_DUPFD_CLOEXEC, 3);
        if (m->in.fd < 0)
            return crn_error_set(err, errno, "dup", "pty master");
        if (crn_epoll_add(m, m->in.fd, 0, CRN_EV(CRN_EV_STDIN, 0), err) < 0)
            return -1;
    }
    if (m->out[0].fd >= 0) {
        epoll_ctl(m->epfd, EPOLL_CTL_DEL, m->out[0].fd, NULL);
        close(m->out[0].fd);
    }
    m->out[0].fd = crn_take_fd(&master);
    m->pty_master = m->out[0].fd;
    return crn_epoll_add(m, m->out[0].fd, EPOLLIN, CRN_EV(CRN_EV_OUTPUT, 0), err);
}

/* After the create: the master the runtime sent, put to use. */
int crn_console_receive(struct crn_monitor *m, crn_error *err)
{
    cleanup_fd int conn = accept4(m->console_fd, NULL, NULL, SOCK_CLOEXEC);
    int master;

    if (conn < 0)
        return crn_error_set(err, errno == EAGAIN ? 0 : errno,
                             "the runtime's create ended without connecting to the console "
                             "socket", m->opts.console_socket);
    master = receive_fd(conn, err);
    if (master < 0)
        return -1;
    crn_console_shutdown(m);
    return crn_console_use(m, master, err);
}
