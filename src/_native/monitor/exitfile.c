/* What the monitor leaves in its state dir for the daemon, each file written
 * to a temp name and renamed so a reader never sees half of one.  None is
 * fsynced: they describe processes, which a crash of the machine ends too,
 * and the state dir is under runroot, a tmpfs on a usual host (runc and
 * the daemon's state.json skip it likewise).  The files:
 *
 *   monitor.pid   the monitor's pid
 *   pid           the container process's pid
 *   exit          after the container is gone and its output drained:
 *                   code=137                  exit status, or 128+signal
 *                   signal=9                  0 unless killed by a signal
 *                   finished=2024-...Z        RFC 3339, nanoseconds, UTC
 *                   oom=1                     oom_kill grew in the cgroup
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "monitor.h"

int crn_write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int crn_write_file_atomic(int dirfd, const char *name, const char *data, size_t len,
                          crn_error *err)
{
    char tmp[256];

    snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
    cleanup_fd int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return crn_error_set(err, errno, "open", tmp);
    if (crn_write_all(fd, data, len) < 0) {
        crn_error_set(err, errno, "write", tmp);
        unlinkat(dirfd, tmp, 0);
        return -1;
    }
    if (renameat(dirfd, tmp, dirfd, name) < 0) {
        crn_error_set(err, errno, "rename", name);
        unlinkat(dirfd, tmp, 0);
        return -1;
    }
    return 0;
}

static int write_pid(int dirfd, const char *name, pid_t pid, crn_error *err)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%d\n", (int)pid);

    return crn_write_file_atomic(dirfd, name, buf, (size_t)n, err);
}

int crn_write_pid_files(struct crn_monitor *m, crn_error *err)
{
    if (write_pid(m->state_dirfd, "monitor.pid", getpid(), err) < 0)
        return -1;
    return write_pid(m->state_dirfd, "pid", m->child, err);
}

/* The "oom_kill N" counter of the cgroup's memory controller: memory.events
 * on cgroup v2, memory.oom_control on v1 (kernel 4.13+).  -1 if unknown. */
long crn_oom_kill_count(const char *cgroup_path)
{
    static const char *const files[] = {"memory.events", "memory.oom_control"};
    char path[4096], buf[1024];

    if (cgroup_path == NULL)
        return -1;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", cgroup_path, files[i]);
        cleanup_fd int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        /* "oom_kill " at a line start; the space rules out oom_group_kill */
        if (strncmp(buf, "oom_kill ", 9) == 0)
            return strtol(buf + 9, NULL, 10);
        const char *hit = strstr(buf, "\noom_kill ");
        if (hit != NULL)
            return strtol(hit + 10, NULL, 10);
    }
    return -1;
}

int crn_exit_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 255;
}

int crn_exit_record(struct crn_monitor *m, crn_error *err)
{
    char when[64], buf[256];
    long oom_now = crn_oom_kill_count(m->opts.cgroup_path);
    /* a cgroup made after we started (by runc create) counts from zero */
    long base = m->oom_base < 0 ? 0 : m->oom_base;
    int sig = WIFSIGNALED(m->wait_status) ? WTERMSIG(m->wait_status) : 0;
    int n;

    crn_format_time(when, sizeof(when), &m->exited_at);
    n = snprintf(buf, sizeof(buf), "code=%d\nsignal=%d\nfinished=%s\noom=%d\n",
                 crn_exit_code(m->wait_status), sig, when, oom_now > base ? 1 : 0);
    return crn_write_file_atomic(m->state_dirfd, "exit", buf, (size_t)n, err);
}
