/* crio-native-shim-relay: what a vm-handler container's monitor runs in
 * place of the container (docs/containers.md, "vm handlers").  main.c
 * copies the task's stdio FIFOs; waiter.c gets the task's exit status from
 * the shim's Wait, without a thread: its connection is one more fd in the
 * relay's poll loop. */
#ifndef CRN_SHIMRELAY_RELAY_H
#define CRN_SHIMRELAY_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include "ttrpc.h"

#define CRN_RELAY_UNKNOWN_EXIT 255
#define CRN_RELAY_SHIM_LOST_GRACE 2.0   /* s without a shim serving us before giving up */
#define CRN_RELAY_RETRY_INTERVAL 0.02   /* s between two Wait attempts */

/* Seconds on CLOCK_MONOTONIC. */
double crn_relay_now(void);

/* A nonblocking stream socket connected to the shim's `address`
 * ("unix:///x", "/x" or "@abstract"); -1 with errno. */
int crn_relay_connect(const char *address);

struct crn_waiter {
    const char *address;       /* as the shim printed it: unix:///path, /path or @abstract */
    const char *task_id;
    double appear_deadline;    /* NotFound (the task is not created yet) is retried until then */
    double lost_at;            /* since when the shim has not served us; < 0: it does */
    double connected_at;       /* when the current connection was made; < 0: none */
    double next_try;           /* when to call Wait again; < 0: not scheduled */
    int fd;                    /* the connection our Wait is pending on, or -1 */
    int code;                  /* the exit code once known (255: unknown); -1 before */
    uint8_t *request;          /* the Wait request frame, the same for every attempt */
    size_t request_len;
    struct crn_ttrpc_reader reader;
};

/* -1 with err filled when the request cannot be built. */
int crn_waiter_init(struct crn_waiter *w, const char *address, const char *task_id,
                    double appear_timeout, crn_error *err);

/* The fd to poll for input, or -1 while none. */
static inline int crn_waiter_fd(const struct crn_waiter *w)
{
    return w->fd;
}

static inline int crn_waiter_done(const struct crn_waiter *w)
{
    return w->code >= 0;
}

/* Makes an attempt when one is due. */
void crn_waiter_tick(struct crn_waiter *w, double now);

/* The connection is readable (or hung up). */
void crn_waiter_on_input(struct crn_waiter *w, double now);

/* closer.c: Task/CloseIO of the task's stdin once its FIFO is closed. */
struct crn_stdin_closer {
    const char *task_id;
    int fd;                    /* the call's connection while it is pending, else -1 */
    double deadline;
    struct crn_ttrpc_reader reader;
};

void crn_closer_start(struct crn_stdin_closer *c, const char *address, const char *task_id,
                      double now);
void crn_closer_on_input(struct crn_stdin_closer *c);
void crn_closer_tick(struct crn_stdin_closer *c, double now);

#endif
