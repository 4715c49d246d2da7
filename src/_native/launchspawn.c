/* crn_launch_spawn: launch a container through crio-native-launch.
 *
 * Cloning the caller costs in proportion to its memory: the page tables are
 * copied at clone and torn down at the child's execve, and every page the
 * child touches before that is a copy-on-write fault.  For the daemon (a
 * large, threaded Python process) that was several milliseconds per
 * container and exec.  posix_spawn shares our memory with the new process
 * until it execs (CLONE_VM | CLONE_VFORK), so spawning the small static
 * launcher costs the same whatever our size, and the launcher's own clone
 * copies only its own few pages.  The protocol is in launcher.h. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "fdpass.h"
#include "launch.h"
#include "launcher.h"
#include "plan.h"

/* Caller fds are moved at least this high before the spawn, clear of the
 * numbers the launcher's file actions write (0-4). */
#define HIGH_FD 10

int crn_launcher_send(int sock, const crn_launcher_msg *msg, int fd, crn_error *err)
{
    crn_fd_control ctl;
    struct iovec iov = {.iov_base = (void *)msg, .iov_len = sizeof(*msg)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n;
    if (fd >= 0)
        crn_fd_attach(&mh, &ctl, fd);
    do
        n = sendmsg(sock, &mh, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(*msg))
        return crn_error_set(err, n < 0 ? errno : EPIPE, "sendmsg", "launcher socket");
    return 0;
}

int crn_launcher_recv(int sock, crn_launcher_msg *msg, int *fd, crn_error *err)
{
    ssize_t n = crn_fd_recv(sock, msg, sizeof(*msg), fd);
    if (n != (ssize_t)sizeof(*msg))
        return crn_error_set(err, n < 0 ? errno : EPIPE, "recvmsg", "launcher socket");
    msg->err.msg[CRN_ERROR_MSG_MAX - 1] = '\0';
    return 0;
}

/* `fd` moved to HIGH_FD or above (close-on-exec); the old number is closed. */
static int move_high(int *fd, crn_error *err)
{
    int high;
    if (*fd >= HIGH_FD)
        return 0;
    high = fcntl(*fd, F_DUPFD_CLOEXEC, HIGH_FD);
    if (high < 0)
        return crn_error_set(err, errno, "fcntl", "F_DUPFD_CLOEXEC");
    crn_close_fdp(fd);
    *fd = high;
    return 0;
}

static int plan_memfd(const void *plan, size_t len, int *fd, crn_error *err)
{
    size_t done = 0;
    *fd = memfd_create("crn-plan", MFD_CLOEXEC);
    if (*fd < 0)
        return crn_error_set(err, errno, "memfd_create", NULL);
    while (done < len) {
        ssize_t n = write(*fd, (const char *)plan + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return crn_error_set(err, n < 0 ? errno : EIO, "write", "plan memfd");
        done += (size_t)n;
    }
    return move_high(fd, err);
}

/* The file actions and attributes of the launcher's spawn.  `owned`
 * collects stdio copies made to keep the dup2 order safe (a caller fd below
 * 3 that is not already in place would be overwritten before its turn). */
static int spawn_setup(posix_spawn_file_actions_t *fa, posix_spawnattr_t *attr,
                       const int stdio[3], int ctrl, int memfd, int owned[3], crn_error *err)
{
    sigset_t set;
    int rc;
    for (int i = 0; i < 3; i++) {
        int fd = stdio[i];
        if (fd < 0)
            continue;
        if (fd < 3 && fd != i) {
            owned[i] = fcntl(fd, F_DUPFD_CLOEXEC, HIGH_FD);
            if (owned[i] < 0)
                return crn_error_set(err, errno, "fcntl", "F_DUPFD_CLOEXEC");
            fd = owned[i];
        }
        if ((rc = posix_spawn_file_actions_adddup2(fa, fd, i)) != 0)
            return crn_error_set(err, rc, "posix_spawn_file_actions_adddup2", NULL);
    }
    if ((rc = posix_spawn_file_actions_adddup2(fa, ctrl, CRN_LAUNCHER_CTRL_FD)) != 0
        || (rc = posix_spawn_file_actions_adddup2(fa, memfd, CRN_LAUNCHER_PLAN_FD)) != 0)
        return crn_error_set(err, rc, "posix_spawn_file_actions_adddup2", NULL);
    /* The launcher starts with default dispositions and nothing blocked;
     * the container child resets them again for itself. */
    sigemptyset(&set);
    if ((rc = posix_spawnattr_setsigmask(attr, &set)) != 0)
        return crn_error_set(err, rc, "posix_spawnattr_setsigmask", NULL);
    sigfillset(&set);
    if ((rc = posix_spawnattr_setsigdefault(attr, &set)) != 0
        || (rc = posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
               != 0)
        return crn_error_set(err, rc, "posix_spawnattr", NULL);
    return 0;
}

static int spawn_launcher(const char *launcher, const int stdio[3], int ctrl, int memfd,
                          int owned[3], pid_t *pid, crn_error *err)
{
    static char *const argv[] = {(char *)"crio-native-launch", NULL};
    static char *const envp[] = {NULL};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc != 0)
        return crn_error_set(err, rc, "posix_spawn_file_actions_init", NULL);
    rc = posix_spawnattr_init(&attr);
    if (rc != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return crn_error_set(err, rc, "posix_spawnattr_init", NULL);
    }
    rc = spawn_setup(&fa, &attr, stdio, ctrl, memfd, owned, err);
    if (rc == 0) {
        int e = posix_spawn(pid, launcher, &fa, &attr, argv, envp);
        if (e != 0)
            rc = crn_error_set(err, e, "posix_spawn", launcher);
    }
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}

static void wait_pid(pid_t pid)
{
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

/* The end of a failed launch: the child (ours through CLONE_PARENT) is
 * killed and reaped. */
static void drop_child(crn_launch_result *res, int pid)
{
    if (pid > 0)
        crn_launch_kill_reap(pid, &res->pidfd);
    crn_close_fdp(&res->pidfd);
    crn_close_fdp(&res->console_fd);
}

/* Talk to the launcher until DONE (0) or a failure (-1). */
static int converse(int sock, crn_hook_fn on_hooks, void *ctx, int *child,
                    crn_launch_result *res, crn_error *err)
{
    for (;;) {
        crn_launcher_msg msg;
        crn_auto_fd fd = -1;
        if (crn_launcher_recv(sock, &msg, &fd, err) < 0) {
            if (err->err == EPIPE)
                crn_error_set(err, EPIPE, "the launcher exited without an answer", NULL);
            return -1;
        }
        switch (msg.kind) {
        case CRN_LAUNCHER_CLONED:
            *child = msg.pid;
            /* still our unreaped child: the number cannot be reused */
            res->pidfd = (int)syscall(SYS_pidfd_open, msg.pid, 0);
            if (res->pidfd < 0)
                return crn_error_set(err, errno, "pidfd_open", NULL);
            if (fcntl(res->pidfd, F_SETFD, FD_CLOEXEC) < 0)
                return crn_error_set(err, errno, "fcntl", "pidfd");
            break;
        case CRN_LAUNCHER_HOOKS: {
            crn_launcher_msg answer;
            memset(&answer, 0, sizeof(answer));
            answer.kind = CRN_LAUNCHER_GO;
            res->stage = CRN_STAGE_HOOKS;
            if (on_hooks != NULL && on_hooks(ctx, msg.pid, &answer.err) < 0)
                answer.kind = CRN_LAUNCHER_FAIL;
            if (crn_launcher_send(sock, &answer, -1, err) < 0)
                return -1;
            if (answer.kind == CRN_LAUNCHER_FAIL) {
                /* the launcher fails the launch; report the hook's error */
                *err = answer.err;
                return -1;
            }
            res->stage = CRN_STAGE_PARENT;
            break;
        }
        case CRN_LAUNCHER_DONE:
            if (msg.stage != CRN_STAGE_NONE || msg.err.err != 0 || *child <= 0) {
                res->stage = msg.stage != CRN_STAGE_NONE ? msg.stage : CRN_STAGE_PARENT;
                *err = msg.err;
                if (err->err == 0 && err->msg[0] == '\0')
                    crn_error_set(err, EPROTO, "launcher: failed without an error", NULL);
                return -1;
            }
            res->stage = CRN_STAGE_NONE;
            res->console_fd = crn_steal_fd(&fd);
            return 0;
        default:
            return crn_error_set(err, EPROTO, "launcher: unexpected message", NULL);
        }
    }
}

int crn_launch_spawn(const char *launcher, const void *plan, size_t len, const int stdio[3],
                     crn_hook_fn on_hooks, void *ctx, crn_launch_result *res, crn_error *err)
{
    crn_auto_fd memfd = -1;
    crn_auto_fd mine = -1;
    crn_auto_fd theirs = -1;
    int owned[3] = {-1, -1, -1};
    int sv[2], child = 0, rc;
    pid_t lpid;

    res->pid = res->pidfd = res->console_fd = -1;
    res->stage = CRN_STAGE_PARENT;
    if (crn_plan_validate(plan, len, err) < 0)
        return -1;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return crn_error_set(err, errno, "socketpair", NULL);
    mine = sv[0];
    theirs = sv[1];
    if (move_high(&theirs, err) < 0 || plan_memfd(plan, len, &memfd, err) < 0)
        return -1;
    rc = spawn_launcher(launcher, stdio, theirs, memfd, owned, &lpid, err);
    for (int i = 0; i < 3; i++)
        crn_close_fdp(&owned[i]);
    crn_close_fdp(&theirs);
    crn_close_fdp(&memfd);
    if (rc < 0)
        return -1;
    rc = converse(mine, on_hooks, ctx, &child, res, err);
    crn_close_fdp(&mine);   /* a launcher still running sees EOF and fails */
    wait_pid(lpid);
    if (rc < 0) {
        if (res->stage == CRN_STAGE_NONE)
            res->stage = CRN_STAGE_PARENT;
        drop_child(res, child);
        return -1;
    }
    res->pid = child;
    return 0;
}
