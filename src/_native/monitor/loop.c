/* The monitor's event loop: one epoll set, level-triggered, single thread.
 * It ends once the container has been reaped and its output drained: every
 * output closed, or nothing read for DRAIN_IDLE_MS (a background process may
 * hold the pipes open forever), and never later than DRAIN_MAX_MS. */
#define _GNU_SOURCE
#include <sys/epoll.h>

#include "monitor.h"

#define DRAIN_IDLE_MS 100
#define DRAIN_MAX_MS 2000
#define EVENTS_MAX 16

int crn_epoll_add(struct crn_monitor *m, int fd, uint32_t events, uint64_t tag, crn_error *err)
{
    struct epoll_event ev = {.events = events, .data.u64 = tag};

    if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return crn_error_set(err, errno, "epoll_ctl", NULL);
    return 0;
}

void crn_epoll_mod(struct crn_monitor *m, int fd, uint32_t events, uint64_t tag)
{
    struct epoll_event ev = {.events = events, .data.u64 = tag};

    epoll_ctl(m->epfd, EPOLL_CTL_MOD, fd, &ev);
}

static bool outputs_open(const struct crn_monitor *m)
{
    return m->out[0].fd >= 0 || m->out[1].fd >= 0;
}

static int wait_timeout(const struct crn_monitor *m)
{
    struct timespec now;
    long elapsed;

    if (!m->exited)
        return -1;
    clock_gettime(CLOCK_MONOTONIC, &now);
    elapsed = (now.tv_sec - m->exited_mono.tv_sec) * 1000 +
              (now.tv_nsec - m->exited_mono.tv_nsec) / 1000000;
    if (elapsed >= DRAIN_MAX_MS)
        return 0;
    return DRAIN_MAX_MS - elapsed < DRAIN_IDLE_MS ? (int)(DRAIN_MAX_MS - elapsed) : DRAIN_IDLE_MS;
}

static void dispatch(struct crn_monitor *m, const struct epoll_event *ev)
{
    int idx = (int)(uint32_t)ev->data.u64;

    switch ((enum crn_ev_kind)(ev->data.u64 >> 32)) {
    case CRN_EV_SIGNAL:
        crn_signals_event(m);
        break;
    case CRN_EV_OUTPUT:
        crn_output_read(m, idx);
        break;
    case CRN_EV_LISTEN:
        crn_attach_accept(m);
        break;
    case CRN_EV_CLIENT:
        crn_attach_client_event(m, idx, ev->events);
        break;
    case CRN_EV_STDIN:
        crn_stdin_flush(m);
        break;
    }
}

void crn_monitor_run(struct crn_monitor *m)
{
    struct epoll_event evs[EVENTS_MAX];

    while (!(m->exited && !outputs_open(m))) {
        int n = epoll_wait(m->epfd, evs, EVENTS_MAX, wait_timeout(m));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || (n == 0 && m->exited))
            return;
        for (int i = 0; i < n; i++)
            dispatch(m, &evs[i]);
    }
}
