/* The task's exit status from the shim: Task/Wait on a fresh connection,
 * again while the task is not created yet (the relay starts before the
 * daemon's Create), again while the shim is unreachable for less than the
 * grace; 255 once it is clear nobody will say. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"

#define STREAM_ID 1   /* one call per connection: the client's first odd id */

double crn_relay_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int crn_waiter_init(struct crn_waiter *w, const char *address, const char *task_id,
                    double appear_timeout, crn_error *err)
{
    /* envelope + WaitRequest around the id, twice (ttrpc.c builds in halves) */
    size_t cap = 2 * (strlen(task_id) + 64) + CRN_TTRPC_HEADER_LEN + 64;
    int n;

    /* field by field: a memset would touch every page of the reader's
     * 64 KiB buffer, which a Wait answer never fills */
    w->address = address;
    w->task_id = task_id;
    w->lost_at = w->connected_at = -1;
    w->fd = -1;
    w->code = -1;
    w->request = malloc(cap);
    if (w->request == NULL)
        return crn_error_set(err, ENOMEM, "malloc", NULL);
    n = crn_ttrpc_wait_request(w->request, cap, STREAM_ID, task_id, "", err);
    if (n < 0)
        return -1;
    w->request_len = (size_t)n;
    w->next_try = crn_relay_now();
    w->appear_deadline = w->next_try + appear_timeout;
    return 0;
}

static void disconnect(struct crn_waiter *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
}

static void finish(struct crn_waiter *w, int code)
{
    disconnect(w);
    w->code = code;
    w->next_try = -1;
    free(w->request);
    w->request = NULL;
}

/* The exit stays unknown: say why on stderr (the container's log). */
static void give_up(struct crn_waiter *w, const char *why)
{
    fprintf(stderr, "crio-native shim relay: Wait for %s: %s\n", w->task_id, why);
    finish(w, CRN_RELAY_UNKNOWN_EXIT);
}

/* The shim did not serve this attempt: retry until it has not for the
 * grace.  A connection that lived the grace through (a Wait pending while
 * the task ran) starts a new count; one that is cut at once does not, so a
 * shim that accepts and hangs up is given up on too. */
static void unavailable(struct crn_waiter *w, double now, const char *why)
{
    if (w->lost_at < 0
        || (w->connected_at >= 0 && now - w->connected_at >= CRN_RELAY_SHIM_LOST_GRACE))
        w->lost_at = now;
    w->connected_at = -1;
    disconnect(w);
    if (now - w->lost_at >= CRN_RELAY_SHIM_LOST_GRACE) {
        give_up(w, why);
        return;
    }
    w->next_try = now + CRN_RELAY_RETRY_INTERVAL;
}

static void unavailable_errno(struct crn_waiter *w, double now, const char *what, int e)
{
    char why[CRN_ERROR_MSG_MAX + 256];
    snprintf(why, sizeof(why), "ttrpc %s: %s: %s", w->address, what, strerror(e));
    unavailable(w, now, why);
}

/* "unix:///x" and "/x" name a path, "@x" an abstract socket (as
 * socket_path() in ttrpc.py).  -1 (ENAMETOOLONG) when it does not fit. */
static int socket_address(const char *address, struct sockaddr_un *sa, socklen_t *len)
{
    const char *path = address;
    size_t n;

    if (strncmp(path, "unix://", 7) == 0)
        path += 7;
    n = strlen(path);
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (n == 0 || n >= sizeof(sa->sun_path)) {
        errno = n == 0 ? EINVAL : ENAMETOOLONG;
        return -1;
    }
    memcpy(sa->sun_path, path, n);
    if (path[0] == '@')
        sa->sun_path[0] = '\0';
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '@' ? 0 : 1));
    return 0;
}

int crn_relay_connect(const char *address)
{
    struct sockaddr_un sa;
    socklen_t salen;
    int fd, e;

    if (socket_address(address, &sa, &salen) < 0)
        return -1;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    /* A unix connect does not go on in the background: it is made, or
     * refused, or the backlog is full (EAGAIN), which counts as a refusal. */
    if (connect(fd, (struct sockaddr *)&sa, salen) < 0) {
        e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static void attempt(struct crn_waiter *w, double now)
{
    ssize_t sent;

    w->next_try = -1;
    w->fd = crn_relay_connect(w->address);
    if (w->fd < 0) {
        unavailable_errno(w, now, "cannot connect", errno);
        return;
    }
    w->connected_at = now;
    /* A fresh socket's buffer takes the ~50-byte request whole. */
    do
        sent = send(w->fd, w->request, w->request_len, MSG_NOSIGNAL);
    while (sent < 0 && errno == EINTR);
    if (sent != (ssize_t)w->request_len) {
        unavailable_errno(w, now, "cannot send the Wait request", sent < 0 ? errno : EAGAIN);
        return;
    }
    crn_ttrpc_reader_init(&w->reader, STREAM_ID);
}

void crn_waiter_tick(struct crn_waiter *w, double now)
{
    if (!crn_waiter_done(w) && w->fd < 0 && w->next_try >= 0 && now >= w->next_try)
        attempt(w, now);
}

static void answered(struct crn_waiter *w, double now, const struct crn_ttrpc_answer *a)
{
    char why[CRN_TTRPC_STATUS_MSG_MAX + 128];
    crn_error err;
    uint32_t status;

    switch (a->code) {
    case CRN_RPC_OK:
        if (crn_ttrpc_wait_response_decode(a->payload, a->payload_len, &status, &err) < 0) {
            give_up(w, err.msg);
            return;
        }
        /* 128+signal for a signal; anything past a byte cannot be an exit code */
        finish(w, status <= 255 ? (int)status : CRN_RELAY_UNKNOWN_EXIT);
        return;
    case CRN_RPC_NOT_FOUND:
        /* the shim serves us; the task is not there (yet) */
        w->lost_at = -1;
        w->connected_at = -1;
        disconnect(w);
        if (now >= w->appear_deadline) {
            snprintf(why, sizeof(why), "ttrpc containerd.task.v2.Task/Wait: not found: %s",
                     a->message[0] ? a->message : "status code 5");
            give_up(w, why);
            return;
        }
        w->next_try = now + CRN_RELAY_RETRY_INTERVAL;
        return;
    case CRN_RPC_UNAVAILABLE:
        snprintf(why, sizeof(why), "ttrpc %s: unavailable: %s", w->address,
                 a->message[0] ? a->message : "status code 14");
        unavailable(w, now, why);
        return;
    default:
        snprintf(why, sizeof(why), "ttrpc containerd.task.v2.Task/Wait: status code %d%s%s",
                 (int)a->code, a->message[0] ? ": " : "", a->message);
        give_up(w, why);
    }
}

void crn_waiter_on_input(struct crn_waiter *w, double now)
{
    struct crn_ttrpc_answer answer;
    crn_error err;
    int r;

    if (w->fd < 0)
        return;
    r = crn_ttrpc_receive(w->fd, &w->reader, &answer, &err);
    if (r == 0)
        return;
    if (r < 0) {
        /* a stream that is not ttrpc will not get better on a retry */
        if (err.err == EMSGSIZE || err.err == EBADMSG) {
            give_up(w, err.msg);
            return;
        }
        char why[CRN_ERROR_MSG_MAX + 256];
        snprintf(why, sizeof(why), "ttrpc %s: connection lost: %s", w->address, err.msg);
        unavailable(w, now, why);
        return;
    }
    answered(w, now, &answer);
}
