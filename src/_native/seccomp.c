/* The container's seccomp filter and its SCMP_ACT_NOTIFY listener. */
#define _GNU_SOURCE
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "child.h"
#include "cleanup.h"
#include "fdpass.h"

#ifndef SECCOMP_FILTER_FLAG_NEW_LISTENER
#define SECCOMP_FILTER_FLAG_NEW_LISTENER (1UL << 3)
#endif

/* ---- seccomp ------------------------------------------------------------
 * SCMP_ACT_NOTIFY: the agent's socket (linux.seccomp.listenerPath, a host
 * path) is connected first thing, before the container's namespaces are
 * joined or its mounts made, when host paths still resolve as the runtime
 * sees them (the create's parent ends up in the same place for the daemon
 * and for the monitor this way, and an agent that is not there fails the
 * create before anything is built).  Once the filter is loaded the process
 * itself sends the container process state and the notify fd, and closes
 * both: it is the only one holding them, and it still reports to the
 * parent afterwards, so a failed send fails the create. */

#define CRN_LISTENER_FIELD "connect to linux.seccomp.listenerPath"

int crn_proc_seccomp_connect(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    struct sockaddr_un addr;
    const char *path;
    size_t n;
    int rc;
    if (!crn_plan_find(c->plan, c->len, CRN_PLAN_SECCOMP_LISTENER, &rec))
        return 0;
    path = (const char *)rec.data;
    n = strlen(path);
    if (n >= sizeof(addr.sun_path))
        return crn_error_set(err, ENAMETOOLONG, CRN_LISTENER_FIELD, path);
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, path, n);
    c->listener_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->listener_fd < 0)
        return crn_error_set(err, errno, "socket", path);
    do
        rc = connect(c->listener_fd, (struct sockaddr *)&addr, sizeof(addr));
    while (rc < 0 && errno == EINTR);
    if (rc < 0)
        return crn_error_set(err, errno, CRN_LISTENER_FIELD, path);
    return 0;
}

/* Drop the first `n` bytes of the iovec array. */
static void iov_advance(struct iovec **iov, int *cnt, size_t n)
{
    while (*cnt > 0 && n >= (*iov)->iov_len) {
        n -= (*iov)->iov_len;
        (*iov)++;
        (*cnt)--;
    }
    if (*cnt > 0) {
        (*iov)->iov_base = (char *)(*iov)->iov_base + n;
        (*iov)->iov_len -= n;
    }
}

/* The JSON parts with our pid between them, the notify fd with the first
 * sendmsg (the spec allows several; the fds go with the first). */
static int send_listener_state(crn_child *c, int notify_fd, crn_error *err)
{
    struct iovec vec[2 * CRN_LISTENER_MAX_PARTS], *iov = vec;
    crn_fd_control ctl;
    struct msghdr mh;
    crn_plan_rec rec;
    crn_plan_cur cur;
    char pid[24];
    size_t rlen;
    int cnt = 0, parts = 0;
    if (c->listener_fd < 0 || c->host_pid <= 0
        || !crn_plan_find(c->plan, c->len, CRN_PLAN_SECCOMP_LISTENER, &rec))
        return crn_error_set(err, EINVAL, "seccomp listener", "plan");
    crn_plan_cur_init(&cur, &rec);
    const char *path = crn_cur_str(&cur);
    const char *p = crn_cur_rest(&cur, &rlen), *end = p + rlen;
    crn_itoa(pid, c->host_pid);
    while (p < end) {
        const char *nul = memchr(p, '\0', (size_t)(end - p));
        if (nul == NULL || parts == CRN_LISTENER_MAX_PARTS)
            return crn_error_set(err, EINVAL, "seccomp listener: malformed state", path);
        if (parts++ > 0)
            vec[cnt++] = (struct iovec){.iov_base = pid, .iov_len = strlen(pid)};
        vec[cnt++] = (struct iovec){.iov_base = (void *)p, .iov_len = (size_t)(nul - p)};
        p = nul + 1;
    }
    memset(&mh, 0, sizeof(mh));
    crn_fd_attach(&mh, &ctl, notify_fd);
    while (cnt > 0) {
        mh.msg_iov = iov;
        mh.msg_iovlen = (size_t)cnt;
        ssize_t n = sendmsg(c->listener_fd, &mh, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return crn_error_set(err, n < 0 ? errno : EPIPE, "sendmsg to linux.seccomp.listenerPath",
                                 path);
        mh.msg_control = NULL;
        mh.msg_controllen = 0;
        iov_advance(&iov, &cnt, (size_t)n);
    }
    return 0;
}

/* Without no_new_privs, loading a filter needs CAP_SYS_ADMIN, which the
 * capability step may drop: then the filter goes in early, before the user
 * and capability switches (as runc does), and has to allow what follows. */
int crn_proc_seccomp_early(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    if (crn_plan_find(c->plan, c->len, CRN_PLAN_NO_NEW_PRIVS, &rec))
        return 0;
    return crn_proc_seccomp(c, err);
}

/* With no_new_privs a filter is loaded after the start barrier, unless it
 * has a listener: then it goes in now, the last step before READY, so the
 * agent has the notify fd when `create` returns and a failure to hand it
 * over fails the create (runc loads it before its exec fifo too). */
int crn_proc_seccomp_listener(crn_child *c, crn_error *err)
{
    if (c->listener_fd < 0)
        return 0;
    return crn_proc_seccomp(c, err);
}

int crn_proc_seccomp(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    crn_plan_cur cur;
    struct sock_fprog prog;
    size_t blen;
    long fd;
    int rc = 0;
    if (c->seccomp_done || !crn_plan_find(c->plan, c->len, CRN_PLAN_SECCOMP, &rec))
        return 0;
    crn_plan_cur_init(&cur, &rec);
    uint32_t flags = crn_cur_u32(&cur);
    prog.filter = (struct sock_filter *)crn_cur_rest(&cur, &blen);
    prog.len = (unsigned short)(blen / sizeof(struct sock_filter));
    /* with NEW_LISTENER the result is the notify fd (close-on-exec) */
    fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
    if (fd < 0)
        return crn_error_set(err, errno, "seccomp", NULL);
    c->seccomp_done = 1;
    if (flags & SECCOMP_FILTER_FLAG_NEW_LISTENER) {
        rc = send_listener_state(c, (int)fd, err);
        close((int)fd);
        crn_close_fdp(&c->listener_fd);
    }
    return rc;
}
