/* crio-native-launch: clone one container process on behalf of the caller.
 *
 * Spawned by crn_launch_spawn (../launchspawn.c) with the fds and protocol
 * described in ../launcher.h.  It is static and small, so its exec and its
 * clone are cheap, and it clones with CLONE_PARENT: the container process
 * becomes the caller's child, exactly as if the caller had cloned it.  It
 * writes nothing to stdout or stderr, which belong to the container. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../cleanup.h"
#include "../launch.h"
#include "../launcher.h"

/* A plan is some KiB (seccomp BPF included); refuse anything absurd. */
#define PLAN_MAX (16 << 20)

static int read_plan(void **plan, size_t *len, crn_error *err)
{
    struct stat st;
    size_t got = 0;
    char *buf;
    if (fstat(CRN_LAUNCHER_PLAN_FD, &st) < 0)
        return crn_error_set(err, errno, "fstat", "plan fd");
    if (st.st_size <= 0 || st.st_size > PLAN_MAX)
        return crn_error_set(err, EINVAL, "plan fd: bad size", NULL);
    buf = malloc((size_t)st.st_size);
    if (buf == NULL)
        return crn_error_set(err, ENOMEM, "malloc", NULL);
    while (got < (size_t)st.st_size) {
        ssize_t n = pread(CRN_LAUNCHER_PLAN_FD, buf + got, (size_t)st.st_size - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            free(buf);
            return crn_error_set(err, n < 0 ? errno : EIO, "read", "plan fd");
        }
        got += (size_t)n;
    }
    *plan = buf;
    *len = got;
    return 0;
}

static void on_clone(void *ctx, int pid)
{
    crn_launcher_msg msg;
    crn_error ignored;
    memset(&msg, 0, sizeof(msg));
    msg.kind = CRN_LAUNCHER_CLONED;
    msg.pid = pid;
    /* If the caller is gone, the launch fails at the next exchange. */
    crn_launcher_send(CRN_LAUNCHER_CTRL_FD, &msg, -1, &ignored);
}

static int on_hooks(void *ctx, int pid, crn_error *err)
{
    crn_launcher_msg msg;
    int fd;
    memset(&msg, 0, sizeof(msg));
    msg.kind = CRN_LAUNCHER_HOOKS;
    msg.pid = pid;
    if (crn_launcher_send(CRN_LAUNCHER_CTRL_FD, &msg, -1, err) < 0
        || crn_launcher_recv(CRN_LAUNCHER_CTRL_FD, &msg, &fd, err) < 0)
        return -1;
    crn_close_fdp(&fd);
    if (msg.kind == CRN_LAUNCHER_GO)
        return 0;
    if (msg.kind == CRN_LAUNCHER_FAIL) {
        *err = msg.err;
        return -1;
    }
    return crn_error_set(err, EPROTO, "launcher: unexpected answer to hooks", NULL);
}

int main(void)
{
    static const int stdio[3] = {0, 1, 2};
    crn_launch_opts opts = {.on_hooks = on_hooks, .on_clone = on_clone,
                            .clone_flags = CLONE_PARENT};
    crn_launch_result res = {.pid = -1, .pidfd = -1, .stage = CRN_STAGE_PARENT,
                             .console_fd = -1};
    crn_launcher_msg done;
    crn_error err;
    void *plan = NULL;
    size_t len = 0;
    int rc;

    crn_error_clear(&err);
    /* nothing of the caller's beyond our five fds (theirs are close-on-exec,
     * but a stray inheritable one must not reach the container) */
    syscall(SYS_close_range, CRN_LAUNCHER_PLAN_FD + 1, ~0U, 0U);
    if (fcntl(CRN_LAUNCHER_CTRL_FD, F_SETFD, FD_CLOEXEC) < 0)
        return 2;
    rc = read_plan(&plan, &len, &err);
    close(CRN_LAUNCHER_PLAN_FD);
    if (rc == 0)
        rc = crn_launch_ex(plan, len, stdio, &opts, NULL, &res, &err);
    memset(&done, 0, sizeof(done));
    done.kind = CRN_LAUNCHER_DONE;
    done.pid = res.pid;
    done.stage = rc < 0 ? (res.stage != CRN_STAGE_NONE ? res.stage : CRN_STAGE_PARENT)
                        : CRN_STAGE_NONE;
    if (rc < 0)
        done.err = err;
    else
        crn_error_clear(&done.err);
    crn_launcher_send(CRN_LAUNCHER_CTRL_FD, &done, res.console_fd, &err);
    return rc < 0 ? 1 : 0;
}
