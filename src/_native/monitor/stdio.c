/* The container's stdio: pipes (stdout, stderr, optional stdin) or one pty
 * (or, when the pty is made in the container, pipes until console.c swaps
 * in the master the runtime or the launch handed over).
 * Our ends are non-blocking and close-on-exec; the child's ends are handed
 * to the spawn and closed here once it has them. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <termios.h>

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif
#include <unistd.h>

#include "cleanup.h"
#include "monitor.h"

static int set_nonblock(int fd, crn_error *err)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return crn_error_set(err, errno, "fcntl O_NONBLOCK", NULL);
    return 0;
}

/* A pipe whose `ours` end (0 read, 1 write) is non-blocking. */
static int make_pipe(int fds[2], int ours, crn_error *err)
{
    if (pipe2(fds, O_CLOEXEC) < 0)
        return crn_error_set(err, errno, "pipe2", NULL);
    if (set_nonblock(fds[ours], err) < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    return 0;
}

static int setup_pipes(struct crn_monitor *m, int child[3], crn_error *err)
{
    int p[2];

    /* with a console socket, stdin comes from the pty master (console.c) */
    if (m->opts.stdin_open && !crn_pty_from_container(&m->opts)) {
        if (make_pipe(p, 1, err) < 0)
            return -1;
        child[0] = p[0];
        m->in.fd = p[1];
    } else {
        child[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (child[0] < 0)
            return crn_error_set(err, errno, "open", "/dev/null");
    }
    for (int i = 0; i < 2; i++) {
        if (make_pipe(p, 0, err) < 0)
            return -1;
        m->out[i].fd = p[0];
        child[i + 1] = p[1];
    }
    return 0;
}

/* The slave side of `master`.  TIOCGPTPEER (Linux 4.13) opens it through
 * the master, so another devpts mounted over /dev/pts cannot hand us some
 * other instance's pty of the same number; ptsname() is the fallback. */
static int open_peer(int master, crn_error *err)
{
    char name[64];
    int fd = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);

    if (fd >= 0)
        return fd;
    if (errno != EINVAL && errno != ENOTTY)
        return crn_error_set(err, errno, "ioctl TIOCGPTPEER", "/dev/ptmx");
    if (ptsname_r(master, name, sizeof(name)) != 0)
        return crn_error_set(err, errno, "ptsname", "/dev/ptmx");
    fd = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return crn_error_set(err, errno, "open", name);
    return fd;
}

static int setup_pty(struct crn_monitor *m, int child[3], crn_error *err)
{
    const char *name = "/dev/ptmx";
    cleanup_fd int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);

    if (master < 0)
        return crn_error_set(err, errno, "posix_openpt", name);
    if (unlockpt(master) < 0)
        return crn_error_set(err, errno, "unlockpt", name);
    /* the caller closes child[] whatever happens */
    child[0] = open_peer(master, err);
    if (child[0] < 0)
        return -1;
    if (set_nonblock(master, err) < 0)
        return -1;
    child[1] = fcntl(child[0], F_DUPFD_CLOEXEC, 3);
    child[2] = fcntl(child[0], F_DUPFD_CLOEXEC, 3);
    if (child[1] < 0 || child[2] < 0)
        return crn_error_set(err, errno, "dup", "pty slave");
    /* stdin writes go through their own fd so their EPOLLOUT is separate. */
    if (m->opts.stdin_open && (m->in.fd = fcntl(master, F_DUPFD_CLOEXEC, 3)) < 0)
        return crn_error_set(err, errno, "dup", name);
    m->out[0].fd = m->pty_master = crn_take_fd(&master);
    return 0;
}

int crn_stdio_setup(struct crn_monitor *m, int child[3], crn_error *err)
{
    int rc = m->opts.terminal && !crn_pty_from_container(&m->opts)
                 ? setup_pty(m, child, err) : setup_pipes(m, child, err);

    if (rc < 0)
        return -1;
    for (int i = 0; i < 2; i++)
        if (m->out[i].fd >= 0 &&
            crn_epoll_add(m, m->out[i].fd, EPOLLIN, CRN_EV(CRN_EV_OUTPUT, i), err) < 0)
            return -1;
    /* stdin is polled for EPOLLOUT only while input is waiting */
    if (m->in.fd >= 0 && crn_epoll_add(m, m->in.fd, 0, CRN_EV(CRN_EV_STDIN, 0), err) < 0)
        return -1;
    return 0;
}

int crn_stdio_resize(struct crn_monitor *m, unsigned rows, unsigned cols, crn_error *err)
{
    struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};

    if (m->pty_master < 0)
        return crn_error_set(err, ENOTTY, "resize: no terminal", NULL);
    if (ioctl(m->pty_master, TIOCSWINSZ, &ws) < 0)
        return crn_error_set(err, errno, "ioctl TIOCSWINSZ", NULL);
    return 0;
}

/* Read what the container wrote, log it and relay it.  Returns -1 once the
 * stream is closed (EOF, or EIO from a pty whose slave side is gone). */
int crn_output_read(struct crn_monitor *m, int idx)
{
    struct crn_output *o = &m->out[idx];
    ssize_t n;

    if (o->fd < 0)
        return -1;
    do
        n = read(o->fd, m->frame + 1, sizeof(m->frame) - 1);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EAGAIN)
        return 0;
    if (n <= 0) {
        epoll_ctl(m->epfd, EPOLL_CTL_DEL, o->fd, NULL);
        if (o->fd == m->pty_master)
            m->pty_master = -1;
        close(o->fd);
        o->fd = -1;
        return -1;
    }
    crn_log_write(&m->log, o->stream, m->frame + 1, (size_t)n);
    m->frame[0] = (char)(o->stream == CRN_STREAM_STDOUT ? CRN_MSG_STDOUT : CRN_MSG_STDERR);
    crn_attach_broadcast(m, o->stream == CRN_STREAM_STDOUT ? CRN_ATTACH_STDOUT
                                                           : CRN_ATTACH_STDERR,
                         (size_t)n + 1);
    return (int)n;
}
