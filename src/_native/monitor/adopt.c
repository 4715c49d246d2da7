/* With --container-pid-file the spawned command is an OCI runtime's create
 * (runc, crun) rather than the container: the runtime makes the container
 * process, waiting at its start barrier, and exits.  Being a child
 * subreaper, we inherit that process and watch it as the container. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../proc.h"
#include "cleanup.h"
#include "monitor.h"

/* How often the attach lock is touched while the runtime's create runs:
 * well within an RCU grace period (a few ms), so it never goes idle. */
#define WARM_INTERVAL_MS 2

static int read_pid_file(const char *path, pid_t *pid, crn_error *err)
{
    char buf[32];
    cleanup_fd int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;
    long v;

    if (fd < 0)
        return crn_error_set(err, errno, "open", path);
    n = read(fd, buf, sizeof(buf) - 1);
    if (n < 0)
        return crn_error_set(err, errno, "read", path);
    buf[n] = '\0';
    v = strtol(buf, NULL, 10);
    if (v <= 0)
        return crn_error_set(err, EINVAL, "no pid in", path);
    *pid = (pid_t)v;
    return 0;
}

/* The error for a failed create, with the start of what the runtime wrote
 * to stderr (a pipe of ours, the container's stderr-to-be). */
static int runtime_failed(struct crn_monitor *m, int status, crn_error *err)
{
    char said[320] = "", msg[CRN_ERROR_MSG_MAX];
    ssize_t n = m->out[1].fd >= 0 ? read(m->out[1].fd, said, sizeof(said) - 1) : -1;

    said[n > 0 ? n : 0] = '\0';
    for (char *c = said; *c; c++)
        if (*c == '\n')
            *c = ' ';
    snprintf(msg, sizeof(msg), "runtime create failed with status %d: %s",
             crn_exit_code(status), said);
    return crn_error_set(err, 0, msg, NULL);
}

/* --warm-cgroup: until `runtime` exits, write "0" (ourselves) to the
 * cgroup.procs of the cgroup we are in, every WARM_INTERVAL_MS.  Moving a
 * process where it already is changes nothing, but each write takes the
 * kernel's cgroup attach lock (cgroup_threadgroup_rwsem) for writing.
 * After such a write the lock stays in its slow mode for an RCU grace
 * period, and a write in that time finds it there; only the first write
 * after an idle spell waits a whole grace period (about 7 ms on the test
 * host) to switch the lock over.  runc joins the container's cgroups by
 * writing cgroup.procs itself, some 15 ms into its create: this way that
 * wait is ours, here, while runc's Go runtime starts, instead of runc's.
 * (A `favordynmods` cgroup mount keeps the lock in that mode for good.)
 * Best effort: a failure only leaves the wait to runc. */
static void wait_warming(const char *procs_path, pid_t runtime)
{
    crn_error ignored;
    cleanup_fd int procs = open(procs_path, O_WRONLY | O_CLOEXEC);
    cleanup_fd int exited = procs < 0 ? -1 : crn_pidfd_open(runtime, &ignored);
    struct pollfd p = {.fd = exited, .events = POLLIN};
    int n;

    if (exited < 0)
        return;
    do {
        (void)!write(procs, "0", 1);
        n = poll(&p, 1, WARM_INTERVAL_MS);
    } while (n == 0 || (n < 0 && errno == EINTR));
}

/* argv was an OCI runtime's create: wait for it, then adopt the container
 * process it left (reparented to us, the subreaper) from the pid file.  A
 * failing create has no errno (err 0); its stderr is quoted instead. */
int crn_adopt_created(struct crn_monitor *m, crn_error *err)
{
    pid_t runtime = m->child;
    int status;

    m->child = 0;
    if (m->opts.warm_cgroup)
        wait_warming(m->opts.warm_cgroup, runtime);
    while (waitpid(runtime, &status, 0) < 0)
        if (errno != EINTR)
            return crn_error_set(err, errno, "waitpid", m->opts.argv[0]);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return runtime_failed(m, status, err);
    return read_pid_file(m->opts.container_pid_file, &m->child, err);
}
