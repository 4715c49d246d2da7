/* One file descriptor passed over a unix socket (SCM_RIGHTS) beside a
 * message: the child's sync messages (launch.c, tty.c), the seccomp
 * listener (seccomp.c) and the launcher protocol (launchspawn.c).
 * Async-signal-safe, no allocation: the child uses it before execve. */
#ifndef CRN_FDPASS_H
#define CRN_FDPASS_H

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Control buffer for one fd, aligned for struct cmsghdr. */
typedef union crn_fd_control {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int))];
} crn_fd_control;

/* Attach `fd` to `mh`, with `ctl` as its control buffer. */
static inline void crn_fd_attach(struct msghdr *mh, crn_fd_control *ctl, int fd)
{
    struct cmsghdr *cm;
    memset(ctl, 0, sizeof(*ctl));
    mh->msg_control = ctl->buf;
    mh->msg_controllen = sizeof(ctl->buf);
    cm = CMSG_FIRSTHDR(mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));
}

/* Receive one message of exactly `len` bytes into `buf` (retried on EINTR);
 * `*fd` gets the descriptor it carried (close-on-exec), or -1.  Returns what
 * recvmsg returned; for any count but `len` the descriptor is closed. */
static inline ssize_t crn_fd_recv(int sock, void *buf, size_t len, int *fd)
{
    crn_fd_control ctl;
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
                        .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf)};
    struct cmsghdr *cm;
    ssize_t n;
    *fd = -1;
    do
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    cm = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL;
    if (cm != NULL && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS
        && cm->cmsg_len == CMSG_LEN(sizeof(int)))
        memcpy(fd, CMSG_DATA(cm), sizeof(int));
    if (n != (ssize_t)len && *fd >= 0) {
        int saved = errno;
        close(*fd);
        *fd = -1;
        errno = saved;
    }
    return n;
}

#endif
