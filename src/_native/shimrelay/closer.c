/* The end of the task's stdin.  Closing our end of its FIFO is not enough:
 * a shim may hold a writer of the FIFO itself (containerd-shim-runc-v2
 * does, so no end of file comes), and kata's turns the FIFO's end into the
 * end of the process's stdin only on CloseIO.  So once our end is closed
 * we call Task/CloseIO(id, stdin=true) on a connection of its own, one
 * more fd in the poll loop; a failure is said on stderr (the log). */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relay.h"

#define STREAM_ID 1
#define CLOSE_IO_TIMEOUT 10.0    /* s for the shim to answer */

static void done(struct crn_stdin_closer *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static void failed(struct crn_stdin_closer *c, const char *why)
{
    fprintf(stderr, "crio-native shim relay: CloseIO of the stdin of %s: %s\n", c->task_id, why);
    done(c);
}

void crn_closer_start(struct crn_stdin_closer *c, const char *address, const char *task_id,
                      double now)
{
    uint8_t request[1024];
    char why[CRN_ERROR_MSG_MAX + 256];
    crn_error err;
    ssize_t sent;
    int n;

    c->task_id = task_id;
    c->fd = -1;
    n = crn_ttrpc_close_stdin_request(request, sizeof(request), STREAM_ID, task_id, &err);
    if (n < 0) {
        failed(c, err.msg);
        return;
    }
    c->fd = crn_relay_connect(address);
    if (c->fd < 0) {
        snprintf(why, sizeof(why), "ttrpc %s: cannot connect: %s", address, strerror(errno));
        failed(c, why);
        return;
    }
    do
        sent = send(c->fd, request, (size_t)n, MSG_NOSIGNAL);
    while (sent < 0 && errno == EINTR);
    if (sent != n) {
        snprintf(why, sizeof(why), "ttrpc %s: cannot send: %s", address,
                 strerror(sent < 0 ? errno : EAGAIN));
        failed(c, why);
        return;
    }
    c->deadline = now + CLOSE_IO_TIMEOUT;
    crn_ttrpc_reader_init(&c->reader, STREAM_ID);
}

void crn_closer_on_input(struct crn_stdin_closer *c)
{
    struct crn_ttrpc_answer answer;
    char why[CRN_TTRPC_STATUS_MSG_MAX + 64];
    crn_error err;
    int r;

    if (c->fd < 0)
        return;
    r = crn_ttrpc_receive(c->fd, &c->reader, &answer, &err);
    if (r == 0)
        return;
    if (r < 0) {
        failed(c, err.msg);
        return;
    }
    if (answer.code != CRN_RPC_OK) {
        snprintf(why, sizeof(why), "status code %d%s%s", (int)answer.code,
                 answer.message[0] ? ": " : "", answer.message);
        failed(c, why);
        return;
    }
    done(c);
}

void crn_closer_tick(struct crn_stdin_closer *c, double now)
{
    if (c->fd >= 0 && now >= c->deadline)
        failed(c, "no answer in time");
}
