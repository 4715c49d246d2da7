/* crio-native-shim-relay: the process a vm-handler container's
 * crio-native-monitor runs in place of the container (spawn mode).
 *
 *   crio-native-shim-relay --address A --id ID [--stdout FIFO] [--stderr FIFO]
 *       [--stdin FIFO [--terminal]] [--shim-log FIFO --shim-log-file F]
 *       [--appear-timeout S]
 *
 * It copies the task's stdout/stderr FIFOs to its own fds 1 and 2, which
 * the monitor writes into the CRI log; feeds its fd 0 (the monitor's stdin
 * pipe) into the task's stdin FIFO, and at its end closes the FIFO and calls
 * CloseIO (closer.c), or, for a task with a terminal, types ^D into it as
 * the monitor does into a pty of its own; drains the shim's own log FIFO into a
 * file (a FIFO nobody read would, once full, block the shim), keeping the
 * first MiB; and exits with the task's exit status from the shim's Wait
 * (128+signal for a signal), or 255 when the shim could not say.  So the
 * monitor's exit file holds the container's code as for every handler,
 * and all of it goes on while the daemon is down.
 *
 * One thread, one poll loop, fixed buffers: it runs once per container. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relay.h"

#define SHIM_LOG_LIMIT (1u << 20)   /* bytes of the shim's log kept */
#define DRAIN_IDLE 0.1               /* after the exit, as the monitor: stop once quiet this long */
#define DRAIN_MAX 2.0                /* ... or this long after the exit at most */
#define CHUNK 65536

struct args {
    const char *address, *id, *stdout_fifo, *stderr_fifo, *stdin_fifo, *shim_log,
        *shim_log_file;
    double appear_timeout;      /* how long the task may take to be created */
    int terminal;               /* the task has a terminal: the end of stdin is ^D */
};

/* One of the task's output FIFOs and where it goes. */
struct output {
    int fd;              /* our read end; -1 once it ended */
    int own_writer;      /* held until the exit, so no EOF before the shim opened its end */
    int dest;            /* 1 or 2 */
};

struct relay {
    struct output out[2];
    int shim_log_in, shim_log_out;     /* -1 when absent */
    int shim_log_watched;
    size_t shim_log_written;
    int stdin_fifo;                    /* -1 without stdin, or once closed */
    int stdin_eof;                     /* fd 0 ended: close the FIFO once flushed */
    int terminal;                      /* ... or, with a terminal, type ^D into it */
    const char *address, *id;
    struct crn_stdin_closer closer;    /* CloseIO once the FIFO is closed */
    size_t stdin_off, stdin_len;       /* what fd 0 gave and the FIFO has not taken yet */
    struct crn_waiter waiter;
    double exited_at;                  /* < 0 until Wait answered */
};

static uint8_t chunk[CHUNK];
static uint8_t stdin_pending[CHUNK];

/* ---- the command line ------------------------------------------------------------ */

static const char USAGE[] =
    "usage: crio-native-shim-relay --address A --id ID [--stdout FIFO] [--stderr FIFO]\n"
    "           [--stdin FIFO [--terminal]] [--shim-log FIFO] [--shim-log-file FILE]\n"
    "           [--appear-timeout SECONDS]\n";

__attribute__((noreturn)) static void usage_error(const char *what, const char *arg)
{
    fprintf(stderr, "%scrio-native-shim-relay: error: %s%s\n", USAGE, what, arg ? arg : "");
    exit(2);
}

/* The field a string option sets, or NULL. */
static const char **string_option(struct args *a, const char *name, size_t len)
{
#define IS(s) (len == sizeof(s) - 1 && strncmp(name, s, len) == 0)
    if (IS("address"))
        return &a->address;
    if (IS("id"))
        return &a->id;
    if (IS("stdout"))
        return &a->stdout_fifo;
    if (IS("stderr"))
        return &a->stderr_fifo;
    if (IS("stdin"))
        return &a->stdin_fifo;
    if (IS("shim-log"))
        return &a->shim_log;
    if (IS("shim-log-file"))
        return &a->shim_log_file;
    return NULL;
#undef IS
}

/* As the Python relay's argparse took them: `--name value` or
 * `--name=value`; exit 2 with the usage on stderr otherwise. */
static void parse_args(int argc, char **argv, struct args *a)
{
    *a = (struct args){NULL, NULL, "", "", "", "", "", 120.0, 0};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *name, *value, *eq;
        const char **field;
        size_t len;

        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            fputs(USAGE, stdout);
            exit(0);
        }
        if (strncmp(arg, "--", 2) != 0)
            usage_error("unrecognized argument: ", arg);
        if (strcmp(arg, "--terminal") == 0) {
            a->terminal = 1;
            continue;
        }
        name = arg + 2;
        eq = strchr(name, '=');
        len = eq ? (size_t)(eq - name) : strlen(name);
        if (eq)
            value = eq + 1;
        else if (i + 1 < argc)
            value = argv[++i];
        else
            usage_error("expected a value after ", arg);
        field = string_option(a, name, len);
        if (field != NULL) {
            *field = value;
        } else if (len == strlen("appear-timeout") && strncmp(name, "appear-timeout", len) == 0) {
            char *end;
            errno = 0;
            a->appear_timeout = strtod(value, &end);
            if (errno || end == value || *end || isnan(a->appear_timeout))
                usage_error("--appear-timeout: not a number: ", value);
        } else {
            usage_error("unrecognized argument: ", arg);
        }
    }
    if (a->address == NULL || a->id == NULL)
        usage_error("the following arguments are required: --address, --id", NULL);
    if (a->terminal && a->stdin_fifo[0] == '\0')
        usage_error("--terminal needs --stdin", NULL);
}

/* ---- setup ------------------------------------------------------------------------- */

/* Setup failures leave the exit unknown: 255, with the reason in the log. */
__attribute__((noreturn)) static void fail_setup(const char *syscall_name, const char *path)
{
    fprintf(stderr, "crio-native shim relay: %s `%s`: %s\n", syscall_name, path,
            strerror(errno));
    exit(CRN_RELAY_UNKNOWN_EXIT);
}

/* Our read end, and a writer of our own so reads do not see EOF before
 * the shim has opened its end (dropped once the task has exited). */
static void open_output(struct output *o, const char *path, int dest)
{
    o->fd = o->own_writer = -1;
    o->dest = dest;
    if (path[0] == '\0')
        return;
    o->fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (o->fd < 0)
        fail_setup("open", path);
    o->own_writer = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (o->own_writer < 0)
        fail_setup("open", path);
}

static void open_shim_log(struct relay *r, const struct args *a)
{
    r->shim_log_in = r->shim_log_out = -1;
    r->shim_log_watched = 0;
    if (a->shim_log[0] == '\0')
        return;
    /* Best effort, as the log is the shim's, not the container's.  Without
     * the file the FIFO is still drained, so the shim never blocks on it. */
    r->shim_log_in = open(a->shim_log, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (r->shim_log_in < 0)
        return;
    r->shim_log_watched = 1;
    if (a->shim_log_file[0] != '\0')
        r->shim_log_out = open(a->shim_log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                               0600);
}

static void open_stdin(struct relay *r, const char *path)
{
    r->stdin_fifo = -1;
    r->stdin_eof = 0;
    r->stdin_off = r->stdin_len = 0;
    if (path[0] == '\0')
        return;
    /* O_RDWR: never blocks, and never fails for want of a reader.
     * Nonblocking: a task that does not read its stdin must not stall the
     * output it writes; fd 0 is just not read meanwhile. */
    r->stdin_fifo = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (r->stdin_fifo < 0)
        fail_setup("open", path);
}

/* ---- copying ------------------------------------------------------------------------- */

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* All of it to fd 1 or 2, waiting when the monitor's pipe is full.  On a
 * broken one the rest of that stream is dropped: the FIFO is still read,
 * so the task never blocks on it. */
static void write_all(int fd, const uint8_t *data, size_t len)
{
    static int broken[3];

    while (len > 0 && !broken[fd]) {
        ssize_t n = write(fd, data, len);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = {fd, POLLOUT, 0};
            poll(&p, 1, -1);
        } else {
            broken[fd] = 1;
        }
    }
}

/* 1 after data, 0 once the fd is done with (EOF or a read error), -1 for
 * nothing now. */
static int read_chunk(int fd, ssize_t *got)
{
    *got = read(fd, chunk, sizeof(chunk));
    if (*got > 0)
        return 1;
    if (*got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return -1;
    return 0;
}

static void on_output(struct output *o)
{
    ssize_t n;
    int r = read_chunk(o->fd, &n);
    if (r > 0)
        write_all(o->dest, chunk, (size_t)n);
    else if (r == 0)
        close_fd(&o->fd);
}

static void on_shim_log(struct relay *r)
{
    ssize_t n;
    int got = read_chunk(r->shim_log_in, &n);
    if (got == 0) {
        /* the shim closed it; kept open, so it never meets a FIFO without reader */
        r->shim_log_watched = 0;
        return;
    }
    if (got < 0 || r->shim_log_out < 0 || r->shim_log_written >= SHIM_LOG_LIMIT)
        return;
    size_t keep = (size_t)n;
    if (keep > SHIM_LOG_LIMIT - r->shim_log_written)
        keep = SHIM_LOG_LIMIT - r->shim_log_written;
    r->shim_log_written += keep;
    /* a regular file: written whole or failed (ENOSPC), and then lost */
    for (size_t off = 0; off < keep;) {
        ssize_t w = write(r->shim_log_out, chunk + off, keep - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

/* What fd 0 gave, into the task's stdin FIFO as far as it takes it now. */
static void flush_stdin(struct relay *r)
{
    while (r->stdin_len > 0) {
        ssize_t n = write(r->stdin_fifo, stdin_pending + r->stdin_off, r->stdin_len);
        if (n > 0) {
            r->stdin_off += (size_t)n;
            r->stdin_len -= (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;     /* the FIFO is full: poll says when it takes more */
        } else {
            r->stdin_len = 0;    /* the task cannot get it */
        }
    }
    if (r->stdin_eof && !r->terminal && r->stdin_fifo >= 0) {
        close_fd(&r->stdin_fifo);      /* EOF for the task, where nobody else writes */
        crn_closer_start(&r->closer, r->address, r->id, crn_relay_now());
    }
}

static void on_stdin(struct relay *r)
{
    ssize_t n = read(0, stdin_pending, sizeof(stdin_pending));
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        r->stdin_eof = 1;
        n = 0;
        if (r->terminal) {
            stdin_pending[0] = 4;   /* ^D: EOF for a canonical-mode terminal */
            n = 1;
        }
    }
    r->stdin_off = 0;
    r->stdin_len = (size_t)n;
    flush_stdin(r);
}

/* ---- the loop ----------------------------------------------------------------------- */

enum { P_OUT0, P_OUT1, P_SHIM_LOG, P_STDIN, P_WAIT, P_CLOSE_IO, P_COUNT };

static int outputs_open(const struct relay *r)
{
    return r->out[0].fd >= 0 || r->out[1].fd >= 0;
}

static int ms_until(double when, double now)
{
    double ms = (when - now) * 1000.0;
    /* rounded up, so a deadline is never woken for just before it */
    return ms <= 0 ? 0 : ms >= 60000 ? 60000 : (int)ms + 1;
}

static void fill_pollfds(const struct relay *r, struct pollfd *p)
{
    for (int i = 0; i < P_COUNT; i++)
        p[i] = (struct pollfd){-1, 0, 0};
    for (int i = 0; i < 2; i++)
        p[P_OUT0 + i] = (struct pollfd){r->out[i].fd, POLLIN, 0};
    if (r->shim_log_watched)
        p[P_SHIM_LOG] = (struct pollfd){r->shim_log_in, POLLIN, 0};
    if (r->stdin_fifo >= 0 && r->stdin_len > 0)
        p[P_STDIN] = (struct pollfd){r->stdin_fifo, POLLOUT, 0};
    else if (r->stdin_fifo >= 0 && !r->stdin_eof)
        p[P_STDIN] = (struct pollfd){0, POLLIN, 0};
    if (r->exited_at < 0)
        p[P_WAIT] = (struct pollfd){crn_waiter_fd(&r->waiter), POLLIN, 0};
    p[P_CLOSE_IO] = (struct pollfd){r->closer.fd, POLLIN, 0};
}

static void on_exit_known(struct relay *r, double now)
{
    r->exited_at = now;
    /* from now on EOF comes once the shim closes its ends */
    for (int i = 0; i < 2; i++)
        close_fd(&r->out[i].own_writer);
}

static int relay(struct relay *r)
{
    struct pollfd p[P_COUNT];

    for (;;) {
        double now = crn_relay_now();
        int timeout = -1;

        if (r->exited_at >= 0) {
            if (!outputs_open(r) || now - r->exited_at >= DRAIN_MAX)
                break;
            timeout = ms_until(now + DRAIN_IDLE < r->exited_at + DRAIN_MAX
                               ? now + DRAIN_IDLE : r->exited_at + DRAIN_MAX, now);
        } else if (r->waiter.next_try >= 0) {
            timeout = ms_until(r->waiter.next_try, now);
        }
        if (r->closer.fd >= 0 && r->exited_at < 0) {    /* after the exit, the drain rules */
            int t = ms_until(r->closer.deadline, now);
            timeout = timeout < 0 || t < timeout ? t : timeout;
        }
        fill_pollfds(r, p);
        int n = poll(p, P_COUNT, timeout);
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "crio-native shim relay: poll: %s\n", strerror(errno));
            break;
        }
        if (n == 0 && r->exited_at >= 0)
            break;     /* quiet since the exit: a background process may hold the FIFOs */
        now = crn_relay_now();
        for (int i = 0; n > 0 && i < 2; i++)
            if (p[P_OUT0 + i].revents)
                on_output(&r->out[i]);
        if (n > 0 && p[P_SHIM_LOG].revents)
            on_shim_log(r);
        if (n > 0 && p[P_STDIN].revents) {
            if (p[P_STDIN].fd == 0)
                on_stdin(r);
            else
                flush_stdin(r);
        }
        if (n > 0 && p[P_CLOSE_IO].revents)
            crn_closer_on_input(&r->closer);
        crn_closer_tick(&r->closer, now);
        if (r->exited_at < 0) {
            if (n > 0 && p[P_WAIT].revents)
                crn_waiter_on_input(&r->waiter, now);
            crn_waiter_tick(&r->waiter, now);
            if (crn_waiter_done(&r->waiter))
                on_exit_known(r, now);
        }
    }
    return crn_waiter_done(&r->waiter) ? r->waiter.code : CRN_RELAY_UNKNOWN_EXIT;
}

int main(int argc, char **argv)
{
    static struct relay r;
    struct args a;
    crn_error err;

    parse_args(argc, argv, &a);
    /* a closed reader is an error to handle (EPIPE), not a reason to die */
    signal(SIGPIPE, SIG_IGN);
    open_output(&r.out[0], a.stdout_fifo, 1);
    open_output(&r.out[1], a.stderr_fifo, 2);
    open_shim_log(&r, &a);
    open_stdin(&r, a.stdin_fifo);
    r.terminal = a.terminal;
    r.address = a.address;
    r.id = a.id;
    r.closer.fd = -1;
    r.exited_at = -1;
    if (crn_waiter_init(&r.waiter, a.address, a.id, a.appear_timeout, &err) < 0) {
        fprintf(stderr, "crio-native shim relay: Wait for %s: %s\n", a.id, err.msg);
        return CRN_RELAY_UNKNOWN_EXIT;
    }
    return relay(&r);
}
