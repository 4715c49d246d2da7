/* With --plan FILE the monitor launches the built-in runtime's container
 * itself: FILE holds the launch plan (CRNPLAN1, ../plan.h) the daemon
 * prepared, and crn_launch() (../launch.c) clones the container process as
 * our child with the stdio we prepared, up to its start barrier.  This
 * replaces crn_monitor_spawn (spawn.h) in that mode.
 *
 * OCI hooks (createRuntime, createContainer, prestart) are Python's: while
 * the child waits before pivot_root we ask the launcher over the sync fd (a
 * stream socket in this mode) and block for its answer:
 *
 *   monitor -> launcher   hooks <container-pid>\n
 *   launcher -> monitor   go\n   or   fail <message>\n
 *
 * With --gate we first ask, before the container process is cloned, with
 *
 *   monitor -> launcher   gate\n
 *
 * answered the same way: the launcher lets us start (exec, load the plan,
 * open the log) while it is still making what the clone needs, such as the
 * systemd scope whose cgroup the process is cloned into.
 *
 * A launcher that closes the socket instead of answering fails the launch.
 *
 * With --terminal the plan has a console record: the child makes the pty
 * from the container's /dev/ptmx and the launch hands us the master. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../launch.h"
#include "cleanup.h"
#include "monitor.h"

/* A plan is some KiB (seccomp BPF included); refuse anything absurd. */
#define CRN_PLAN_FILE_MAX (16 << 20)

int crn_plan_load(struct crn_monitor *m, crn_error *err)
{
    const char *path = m->opts.plan_path;
    cleanup_fd int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    size_t got = 0;

    if (fd < 0)
        return crn_error_set(err, errno, "open", path);
    if (fstat(fd, &st) < 0)
        return crn_error_set(err, errno, "fstat", path);
    if (!S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > CRN_PLAN_FILE_MAX)
        return crn_error_set(err, EINVAL, "not a plan file", path);
    m->plan = malloc((size_t)st.st_size);
    if (m->plan == NULL)
        return crn_error_set(err, ENOMEM, "malloc", path);
    m->plan_len = (size_t)st.st_size;
    while (got < m->plan_len) {
        ssize_t n = read(fd, (char *)m->plan + got, m->plan_len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return crn_error_set(err, n < 0 ? errno : EIO, "read", path);
        got += (size_t)n;
    }
    return 0;
}

void crn_plan_free(struct crn_monitor *m)
{
    free(m->plan);
    m->plan = NULL;
    m->plan_len = 0;
}

/* One line (without its '\n') from the blocking sync fd; 0 at EOF before a
 * full line. */
static ssize_t read_line(int fd, char *buf, size_t size, crn_error *err)
{
    size_t used = 0;

    while (used + 1 < size) {
        ssize_t n = read(fd, buf + used, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return crn_error_set(err, errno, "read", "sync fd");
        if (n == 0)
            return 0;
        if (buf[used] == '\n') {
            buf[used] = '\0';
            return (ssize_t)used + 1;
        }
        used++;
    }
    return crn_error_set(err, EMSGSIZE, "read", "sync fd: hooks answer too long");
}

/* Send `question` (one line) on the sync fd and wait for go or fail;
 * `closed` and `unexpected` say what went wrong otherwise. */
static int ask_launcher(int fd, const char *question, const char *closed,
                        const char *unexpected, crn_error *err)
{
    char line[CRN_ERROR_MSG_MAX + 16];
    ssize_t n;

    if (crn_write_all(fd, question, strlen(question)) < 0)
        return crn_error_set(err, errno, "write", "sync fd");
    n = read_line(fd, line, sizeof(line), err);
    if (n < 0)
        return -1;
    if (n == 0)
        return crn_error_set(err, 0, closed, NULL);
    if (strcmp(line, "go") == 0)
        return 0;
    if (strncmp(line, "fail ", 5) == 0)
        return crn_error_set(err, 0, line + 5, NULL);
    return crn_error_set(err, EPROTO, unexpected, line);
}

/* crn_hook_fn: called by crn_launch while the child waits for its hooks. */
static int hooks_handshake(void *ctx, int pid, crn_error *err)
{
    struct crn_monitor *m = ctx;
    char question[32];

    if (m->opts.sync_fd < 0)
        return crn_error_set(err, EINVAL, "the plan has hooks: they need", "--sync-fd");
    snprintf(question, sizeof(question), "hooks %d\n", pid);
    return ask_launcher(m->opts.sync_fd, question,
                        "hooks: the launcher closed the sync fd without an answer",
                        "hooks: unexpected answer", err);
}

int crn_plan_spawn(struct crn_monitor *m, const int stdio[3], crn_error *err)
{
    crn_launch_result res;
    int rc;

    if (m->opts.gate) {
        if (ask_launcher(m->opts.sync_fd, "gate\n",
                         "gate: the launcher closed the sync fd without an answer",
                         "gate: unexpected answer", err) < 0) {
            crn_plan_free(m);
            return -1;
        }
        m->oom_base = crn_oom_kill_count(m->opts.cgroup_path);
    }
    rc = crn_launch(m->plan, m->plan_len, stdio, hooks_handshake, m, &res, err);

    crn_plan_free(m);
    if (rc < 0) {
        m->fail_stage = crn_stage_name(res.stage);
        return -1;
    }
    /* we reap through SIGCHLD like any child of ours; the pidfd adds nothing */
    close(res.pidfd);
    m->child = res.pid;
    if (!m->opts.terminal) {
        if (res.console_fd >= 0)
            close(res.console_fd);
        return 0;
    }
    /* --terminal: the plan's console record had the child make the pty */
    if (res.console_fd < 0)
        return crn_error_set(err, EINVAL, "--terminal: the plan made no terminal (no console "
                             "record)", NULL);
    return crn_console_use(m, res.console_fd, err);
}
