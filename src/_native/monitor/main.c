/* crio-native-monitor: entry, daemonizing and the readiness report.
 *
 * The launcher (the daemon) starts us with a socket (or pipe) on --sync-fd.
 * We fork away from it into our own session, become a child subreaper, prepare the
 * container's stdio, log and attach socket, spawn the container, and write
 * to the sync fd first
 *
 *   pid <monitor-pid>\n                     (once daemonized) and then
 *   ok <monitor-pid> <container-pid>\n      or
 *   error <errno> <message>\n               (errno 0: not a failed syscall)
 *   error <errno> stage=<name> <message>\n  (--plan: crn_launch failed there)
 *
 * With --plan a "gate" and a "hooks <pid>" exchange may come in between
 * (launchplan.c).
 *
 * so the launcher knows whom to wait for or kill whatever happens.
 * From then on the launcher may exit or die; we live until the container
 * is gone and its output is drained, and leave the exit file behind. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../proc.h"
#include "cleanup.h"
#include "monitor.h"
#include "spawn.h"

#ifndef __NR_close_range
#define __NR_close_range 436
#endif

/* `m` arrives zeroed (static storage): not clearing it again leaves the
 * pages of its big buffers untouched until used, which keeps RSS down. */
static void init(struct crn_monitor *m)
{
    m->state_dirfd = m->epfd = m->sigfd = m->listen_fd = m->pty_master = m->console_fd = -1;
    m->out[0] = (struct crn_output){.fd = -1, .stream = CRN_STREAM_STDOUT};
    m->out[1] = (struct crn_output){.fd = -1, .stream = CRN_STREAM_STDERR};
    m->log.fd = m->in.fd = -1;
    m->oom_base = -1;
    for (int i = 0; i < CRN_ATTACH_CLIENTS_MAX; i++)
        m->clients[i].fd = -1;
}

static void report(int sync_fd, const char *line)
{
    if (sync_fd >= 0)
        (void)!write(sync_fd, line, strlen(line));
}

static void report_error(int sync_fd, const char *stage, const crn_error *err)
{
    char line[CRN_ERROR_MSG_MAX + 64];

    if (stage != NULL)
        snprintf(line, sizeof(line), "error %d stage=%s %s\n", err->err, stage, err->msg);
    else
        snprintf(line, sizeof(line), "error %d %s\n", err->err, err->msg);
    report(sync_fd, line);
}

/* Leave the launcher's process and session; keep only the sync fd. */
static int daemonize(int sync_fd, crn_error *err)
{
    char line[32];
    pid_t pid = fork();

    if (pid < 0)
        return crn_error_set(err, errno, "fork", NULL);
    if (pid > 0)
        _exit(0);
    if (setsid() < 0)
        return crn_error_set(err, errno, "setsid", NULL);
    cleanup_fd int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0)
        return crn_error_set(err, errno, "open", "/dev/null");
    for (int i = 0; i < 3; i++)
        if (dup2(null, i) < 0)
            return crn_error_set(err, errno, "dup2", "/dev/null");
    if (sync_fd > 3)
        syscall(__NR_close_range, 3, sync_fd - 1, 0);
    syscall(__NR_close_range, (sync_fd < 3 ? 3 : sync_fd + 1), ~0U, 0);
    if (chdir("/") < 0)
        return crn_error_set(err, errno, "chdir", "/");
    snprintf(line, sizeof(line), "pid %d\n", (int)getpid());
    report(sync_fd, line);
    return 0;
}

static int start_container(struct crn_monitor *m, crn_error *err)
{
    struct crn_spawn_req req = {.argv = m->opts.argv, .stdio = {-1, -1, -1},
                                .controlling_tty = m->opts.terminal &&
                                                   !crn_pty_from_container(&m->opts)};
    int rc = crn_stdio_setup(m, req.stdio, err);

    if (rc == 0 && m->opts.plan_path)
        rc = crn_plan_spawn(m, req.stdio, err);
    else if (rc == 0)
        rc = crn_monitor_spawn(&req, &m->child, err);
    for (int i = 0; i < 3; i++)
        if (req.stdio[i] >= 0)
            close(req.stdio[i]);
    return rc;
}

static int setup(struct crn_monitor *m, crn_error *err)
{
    m->state_dirfd = open(m->opts.state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (m->state_dirfd < 0)
        return crn_error_set(err, errno, "open", m->opts.state_dir);
    /* an exit file left from an earlier run in this dir would lie */
    if (unlinkat(m->state_dirfd, "exit", 0) < 0 && errno != ENOENT)
        return crn_error_set(err, errno, "unlink", "exit");
    if (crn_proc_set_child_subreaper(1, err) < 0)
        return -1;
    m->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (m->epfd < 0)
        return crn_error_set(err, errno, "epoll_create1", NULL);
    if (crn_signals_setup(m, err) < 0)
        return -1;
    if (!m->opts.gate)      /* with --gate the group may not exist yet (launchplan.c) */
        m->oom_base = crn_oom_kill_count(m->opts.cgroup_path);
    if (crn_log_open(&m->log, m->opts.log_path, err) < 0 || crn_attach_listen(m, err) < 0)
        return -1;
    if (m->opts.console_socket && crn_console_listen(m, err) < 0)
        return -1;
    if (start_container(m, err) < 0)
        return -1;
    if (m->opts.container_pid_file && crn_adopt_created(m, err) < 0)
        return -1;
    if (m->opts.console_socket && crn_console_receive(m, err) < 0)
        return -1;
    return crn_write_pid_files(m, err);
}

/* A failed setup leaves nothing: no container process, no socket file. */
static void undo_setup(struct crn_monitor *m)
{
    if (m->child > 0) {
        kill(m->child, SIGKILL);
        waitpid(m->child, NULL, 0);
    }
    crn_attach_shutdown(m);
    crn_console_shutdown(m);
}

static int finish(struct crn_monitor *m)
{
    crn_error err;
    /* the loop only ends early on an epoll failure: then we know no exit */
    int rc = m->exited ? crn_exit_record(m, &err) : -1;

    crn_attach_send_exit(m, crn_exit_code(m->wait_status));
    crn_attach_shutdown(m);
    crn_log_close(&m->log);
    return rc < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
    static struct crn_monitor monitor;
    struct crn_monitor *m = &monitor;
    crn_error err = {0};
    char line[64];

    init(m);
    if (crn_monitor_parse_args(&m->opts, argc, argv, &err) < 0) {
        fprintf(stderr, "crio-native-monitor: %s\n", err.msg);
        report_error(m->opts.sync_fd, NULL, &err);
        return 2;
    }
    /* read before daemonize's chdir("/"), so a relative path works */
    if (m->opts.plan_path && crn_plan_load(m, &err) < 0) {
        report_error(m->opts.sync_fd, NULL, &err);
        return 1;
    }
    if (daemonize(m->opts.sync_fd, &err) < 0 || setup(m, &err) < 0) {
        undo_setup(m);
        crn_plan_free(m);
        report_error(m->opts.sync_fd, m->fail_stage, &err);
        return 1;
    }
    snprintf(line, sizeof(line), "ok %d %d\n", (int)getpid(), (int)m->child);
    report(m->opts.sync_fd, line);
    if (m->opts.sync_fd >= 0)
        close(m->opts.sync_fd);
    crn_monitor_run(m);
    return finish(m);
}
