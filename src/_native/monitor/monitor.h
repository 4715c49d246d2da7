/* crio-native-monitor: one small process per container that is the parent
 * (and child subreaper) of the container process, holds its stdio, writes the
 * CRI log, records the exit status and serves attach.  It runs apart from the
 * daemon, so containers, their logs and exit codes survive a daemon crash.
 *
 * All state lives in one struct crn_monitor that main() owns and passes down;
 * no file keeps globals, so the monitor links cleanly with other C code. */
#ifndef CRN_MONITOR_H
#define CRN_MONITOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "../error.h"
#include "protocol.h"

#define CRN_ATTACH_CLIENTS_MAX 16
#define CRN_STDIN_BUF 65536
/* CRI: a line longer than this is written as partial (P) chunks. */
#define CRN_LOG_LINE_MAX 16384

enum crn_stream { CRN_STREAM_STDOUT = 0, CRN_STREAM_STDERR = 1 };

struct crn_monitor_opts {
    const char *id;              /* container id: shows in ps, for people */
    const char *state_dir;       /* pid files, exit file and attach socket */
    const char *log_path;        /* CRI log file; NULL: no log */
    const char *cgroup_path;     /* cgroup dir read for oom_kill; NULL: none */
    const char *container_pid_file; /* argv is a runtime's create; pid is here */
    const char *plan_path;       /* launch this plan (CRNPLAN1) instead of argv */
    int sync_fd;                 /* readiness goes here; -1: none */
    bool stdin_open;             /* keep a stdin pipe the attach clients feed */
    bool stdin_once;             /* close stdin when the stdin client leaves */
    bool terminal;               /* a pty instead of pipes */
    bool gate;                   /* --plan: ask the launcher for "go" before
                                    the container process is cloned */
    const char *console_socket;  /* with container_pid_file and terminal: where
                                    the runtime sends the pty master */
    const char *warm_cgroup;     /* with container_pid_file: the cgroup.procs of
                                    our own cgroup, rewritten while the runtime's
                                    create runs (adopt.c) */
    char **argv;                 /* what to exec as the container process;
                                    NULL with plan_path */
};

/* One output stream of the container, read non-blocking. */
struct crn_output {
    int fd;                      /* -1 once closed */
    enum crn_stream stream;
};

struct crn_log {
    int fd;                      /* -1 when there is no log */
    const char *path;
};

struct crn_client {
    int fd;                      /* -1: free slot */
    uint8_t flags;               /* CRN_ATTACH_* once attached */
    bool paused;                 /* not read while stdin is backed up */
};

struct crn_stdin {
    int fd;                      /* our end of the container's stdin; -1 if none */
    bool want_out;               /* EPOLLOUT armed */
    bool close_pending;          /* close once the buffer is written */
    size_t len;
    char buf[CRN_STDIN_BUF];
};

struct crn_monitor {
    struct crn_monitor_opts opts;
    int state_dirfd;
    int epfd;
    int sigfd;
    int listen_fd;
    int pty_master;              /* -1 unless opts.terminal */
    int console_fd;              /* --console-socket's listener until the create */
    pid_t child;                 /* the container process */
    bool exited;
    int wait_status;
    struct timespec exited_at;   /* CLOCK_REALTIME at reaping */
    struct timespec exited_mono; /* CLOCK_MONOTONIC at reaping, for the drain */
    long oom_base;               /* oom_kill count before the start, or -1 */
    void *plan;                  /* --plan: the file's bytes until launched */
    size_t plan_len;
    const char *fail_stage;      /* crn_stage_name of a failed plan launch */
    struct crn_output out[2];
    struct crn_log log;
    struct crn_stdin in;
    struct crn_client clients[CRN_ATTACH_CLIENTS_MAX];
    /* One read buffer: byte 0 is kept free for the frame type so output is
     * relayed to attach clients without a copy. */
    char frame[CRN_MSG_MAX];
};

/* The container's pty is made in the container, by the runtime or the
 * launch, and its master handed to us (console.c), rather than by us. */
static inline bool crn_pty_from_container(const struct crn_monitor_opts *o)
{
    return o->console_socket != NULL || (o->terminal && o->plan_path != NULL);
}

/* epoll_event.data.u64 = kind << 32 | index */
enum crn_ev_kind { CRN_EV_SIGNAL = 1, CRN_EV_OUTPUT, CRN_EV_LISTEN, CRN_EV_CLIENT, CRN_EV_STDIN };
#define CRN_EV(kind, idx) (((uint64_t)(kind) << 32) | (uint32_t)(idx))

/* args.c */
int crn_monitor_parse_args(struct crn_monitor_opts *o, int argc, char **argv, crn_error *err);

/* adopt.c: wait for the runtime's create, take the pid from its pid file */
int crn_adopt_created(struct crn_monitor *m, crn_error *err);

/* console.c: --console-socket, the pty master an OCI runtime sends */
int crn_console_listen(struct crn_monitor *m, crn_error *err);
int crn_console_receive(struct crn_monitor *m, crn_error *err);
int crn_console_use(struct crn_monitor *m, int master, crn_error *err);
void crn_console_shutdown(struct crn_monitor *m);

/* launchplan.c: --plan, the built-in runtime's launch under the monitor */
int crn_plan_load(struct crn_monitor *m, crn_error *err);
void crn_plan_free(struct crn_monitor *m);
int crn_plan_spawn(struct crn_monitor *m, const int stdio[3], crn_error *err);

/* stdio.c: the container's stdio; child_fds get dup'ed to 0,1,2 in the child. */
int crn_stdio_setup(struct crn_monitor *m, int child_fds[3], crn_error *err);
int crn_stdio_resize(struct crn_monitor *m, unsigned rows, unsigned cols, crn_error *err);
void crn_stdin_push(struct crn_monitor *m, const char *data, size_t len);
void crn_stdin_flush(struct crn_monitor *m);
int crn_stdin_close(struct crn_monitor *m, crn_error *err);
bool crn_stdin_backed_up(const struct crn_monitor *m);
int crn_output_read(struct crn_monitor *m, int idx);

/* logwriter.c: the CRI log format */
int crn_log_open(struct crn_log *log, const char *path, crn_error *err);
int crn_log_reopen(struct crn_log *log, crn_error *err);
void crn_log_write(struct crn_log *log, enum crn_stream stream, const char *data, size_t len);
void crn_log_close(struct crn_log *log);
void crn_format_time(char *buf, size_t size, const struct timespec *ts);

/* exitfile.c */
/* write() until all of `data` is out (EINTR retried); -1 with errno. */
int crn_write_all(int fd, const char *data, size_t len);
int crn_write_file_atomic(int dirfd, const char *name, const char *data, size_t len,
                          crn_error *err);
int crn_write_pid_files(struct crn_monitor *m, crn_error *err);
long crn_oom_kill_count(const char *cgroup_path);
int crn_exit_code(int wait_status);
int crn_exit_record(struct crn_monitor *m, crn_error *err);

/* attach.c */
int crn_attach_listen(struct crn_monitor *m, crn_error *err);
void crn_attach_accept(struct crn_monitor *m);
void crn_attach_client_event(struct crn_monitor *m, int idx, uint32_t events);
void crn_attach_broadcast(struct crn_monitor *m, uint8_t want_flag, size_t len);
void crn_attach_send_exit(struct crn_monitor *m, int code);
void crn_attach_pause(struct crn_monitor *m, bool paused);
void crn_attach_shutdown(struct crn_monitor *m);

/* control.c: signals and the control requests of attach clients */
int crn_signals_setup(struct crn_monitor *m, crn_error *err);
void crn_signals_event(struct crn_monitor *m);
int crn_control_request(struct crn_monitor *m, struct crn_client *c, uint8_t type,
                        const char *payload, size_t len);

/* loop.c */
int crn_epoll_add(struct crn_monitor *m, int fd, uint32_t events, uint64_t tag, crn_error *err);
void crn_epoll_mod(struct crn_monitor *m, int fd, uint32_t events, uint64_t tag);
void crn_monitor_run(struct crn_monitor *m);

#endif
