/* Bytes from attach clients on their way to the container's stdin.  Writes
 * never block the monitor: what the container has not read yet waits in a
 * fixed buffer, and while that buffer is nearly full the clients are not
 * read (the kernel's socket buffers then push back on them). */
#define _GNU_SOURCE
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "monitor.h"

bool crn_stdin_backed_up(const struct crn_monitor *m)
{
    return m->in.len + CRN_MSG_MAX > sizeof(m->in.buf);
}

static void arm_out(struct crn_monitor *m, bool on)
{
    if (m->in.want_out == on)
        return;
    m->in.want_out = on;
    crn_epoll_mod(m, m->in.fd, on ? EPOLLOUT : 0, CRN_EV(CRN_EV_STDIN, 0));
}

static void drop(struct crn_monitor *m)
{
    epoll_ctl(m->epfd, EPOLL_CTL_DEL, m->in.fd, NULL);
    close(m->in.fd);
    m->in.fd = -1;
    m->in.len = 0;
    m->in.want_out = false;
    m->in.close_pending = false;
    crn_attach_pause(m, false);
}

void crn_stdin_flush(struct crn_monitor *m)
{
    while (m->in.fd >= 0 && m->in.len > 0) {
        ssize_t n = write(m->in.fd, m->in.buf, m->in.len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n < 0) {
            /* EPIPE: the container closed its stdin; what is left is moot. */
            drop(m);
            return;
        }
        memmove(m->in.buf, m->in.buf + n, m->in.len - (size_t)n);
        m->in.len -= (size_t)n;
    }
    if (m->in.fd < 0)
        return;
    if (m->in.len == 0 && m->in.close_pending) {
        drop(m);
        return;
    }
    arm_out(m, m->in.len > 0);
    crn_attach_pause(m, crn_stdin_backed_up(m));
}

void crn_stdin_push(struct crn_monitor *m, const char *data, size_t len)
{
    if (m->in.fd < 0 || m->in.close_pending || len == 0)
        return;
    /* Clients are paused before the buffer can overflow: a packet is at most
     * CRN_MSG_MAX and reading stops once less than that is free. */
    memcpy(m->in.buf + m->in.len, data, len);
    m->in.len += len;
    crn_stdin_flush(m);
}

int crn_stdin_close(struct crn_monitor *m, crn_error *err)
{
    static const char eot = 4; /* ^D: EOF for a canonical-mode terminal */

    if (m->in.fd < 0)
        return crn_error_set(err, EBADF, "close stdin: not open", NULL);
    if (m->opts.terminal) {
        crn_stdin_push(m, &eot, 1);
        return 0;
    }
    /* Buffered input reaches the container before the EOF. */
    m->in.close_pending = true;
    crn_stdin_flush(m);
    return 0;
}
