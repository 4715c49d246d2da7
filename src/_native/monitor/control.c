/* Signals to the monitor, and the control requests of attach clients.
 *
 *   SIGCHLD          reap: the container, and orphans reparented to us
 *   SIGUSR1          reopen the log file (log rotation)
 *   SIGTERM, SIGINT  passed on to the container process
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "monitor.h"

int crn_signals_setup(struct crn_monitor *m, crn_error *err)
{
    sigset_t set;

    /* a client gone between poll and send must not kill us */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    /* blocked before the spawn, so an early exit is not missed */
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return crn_error_set(err, errno, "sigprocmask", NULL);
    m->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (m->sigfd < 0)
        return crn_error_set(err, errno, "signalfd", NULL);
    return crn_epoll_add(m, m->sigfd, EPOLLIN, CRN_EV(CRN_EV_SIGNAL, 0), err);
}

static void reap(struct crn_monitor *m)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid != m->child || m->exited)
            continue;
        m->exited = true;
        m->wait_status = status;
        clock_gettime(CLOCK_REALTIME, &m->exited_at);
        clock_gettime(CLOCK_MONOTONIC, &m->exited_mono);
    }
}

void crn_signals_event(struct crn_monitor *m)
{
    struct signalfd_siginfo si;
    crn_error err;

    while (read(m->sigfd, &si, sizeof(si)) == sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGCHLD:
            reap(m);
            break;
        case SIGUSR1:
            crn_log_reopen(&m->log, &err);
            break;
        default:
            if (m->child > 0 && !m->exited)
                kill(m->child, (int)si.ssi_signo);
        }
    }
}

static int resize(struct crn_monitor *m, const char *p, size_t len)
{
    uint16_t rows, cols;
    crn_error err;

    if (len != 4)
        return EINVAL;
    memcpy(&rows, p, 2);
    memcpy(&cols, p + 2, 2);
    return crn_stdio_resize(m, ntohs(rows), ntohs(cols), &err) < 0 ? err.err : 0;
}

/* Returns the errno to reply with (0: done), or -1 for no reply. */
int crn_control_request(struct crn_monitor *m, struct crn_client *c, uint8_t type,
                        const char *payload, size_t len)
{
    crn_error err;

    switch (type) {
    case CRN_MSG_STDIN:
        crn_stdin_push(m, payload, len);
        return -1;
    case CRN_MSG_ATTACH:
        if (len != 1)
            return EINVAL;
        c->flags = (uint8_t)payload[0];
        return 0;
    case CRN_MSG_CLOSE_STDIN:
        return crn_stdin_close(m, &err) < 0 ? err.err : 0;
    case CRN_MSG_RESIZE:
        return resize(m, payload, len);
    case CRN_MSG_REOPEN_LOG:
        return crn_log_reopen(&m->log, &err) < 0 ? err.err : 0;
    default:
        return EINVAL;
    }
}
