/* crn_launch: clone the container process and drive it to the start barrier.
 *
 * The caller may be a multi-threaded daemon, so the child never returns into
 * the caller's code: it runs the fixed list of steps below (each one walks its
 * records of the plan), reports READY or FAIL on the sync socket and then
 * waits at the barrier.  Everything it needs (argv, envp) was built here, in
 * the parent, before clone. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "cleanup.h"
#include "fdpass.h"
#include "launch.h"
#include "syscalls.h"

/* A child that neither reports READY nor fails by then is killed. */
#define CRN_LAUNCH_TIMEOUT_MS 60000

static const char *const stage_names[CRN_STAGE_COUNT] = {
    "none", "parent", "sync", "namespaces", "oom_score_adj", "hostname",
    "rootfs", "mounts", "devices", "pivot_root", "masks", "rlimits", "user",
    "cwd", "capabilities", "no_new_privs", "lookup", "barrier", "seccomp", "exec", "sysctl", "hooks",
    "terminal", "selinux", "personality", "console", "apparmor", "landlock",
};

const char *crn_stage_name(int stage)
{
    if (stage < 0 || stage >= CRN_STAGE_COUNT)
        return "unknown";
    return stage_names[stage];
}

/* ---- child ----------------------------------------------------------- */

typedef int (*crn_step_fn)(crn_child *c, crn_error *err);

static const struct {
    int stage;
    crn_step_fn fn;
} setup_steps[] = {
    {CRN_STAGE_TERMINAL, crn_proc_controlling_tty},
    {CRN_STAGE_SECCOMP, crn_proc_seccomp_connect},
    {CRN_STAGE_ROOTFS, crn_barrier_open},
    {CRN_STAGE_NAMESPACES, crn_proc_join_namespaces},
    {CRN_STAGE_OOM, crn_proc_oom_score_adj},
    {CRN_STAGE_HOSTNAME, crn_proc_hostname},
    {CRN_STAGE_ROOTFS, crn_rootfs_prepare},
    {CRN_STAGE_USER, crn_proc_userns_root},
    {CRN_STAGE_MOUNTS, crn_mounts_apply},
    {CRN_STAGE_DEVICES, crn_devices_apply},
    {CRN_STAGE_HOOKS, crn_proc_hook_pause},
    {CRN_STAGE_PIVOT, crn_rootfs_pivot},
    {CRN_STAGE_SYSCTL, crn_proc_sysctls},
    {CRN_STAGE_MASKS, crn_masks_apply},
    {CRN_STAGE_CONSOLE, crn_proc_console},
    {CRN_STAGE_LANDLOCK, crn_proc_landlock_prepare},
    {CRN_STAGE_PERSONALITY, crn_proc_personality},
    {CRN_STAGE_RLIMITS, crn_proc_rlimits},
    {CRN_STAGE_NAMESPACES, crn_proc_join_userns},
    {CRN_STAGE_SECCOMP, crn_proc_seccomp_early},
    {CRN_STAGE_CAPS, crn_caps_drop_bounding},
    {CRN_STAGE_CWD, crn_proc_cwd_early},
    {CRN_STAGE_USER, crn_proc_user},
    {CRN_STAGE_CWD, crn_proc_cwd},
    {CRN_STAGE_CAPS, crn_caps_apply},
    {CRN_STAGE_NO_NEW_PRIVS, crn_proc_no_new_privs},
    {CRN_STAGE_LOOKUP, crn_proc_lookup},
    {CRN_STAGE_SELINUX, crn_proc_selinux_label},
    {CRN_STAGE_APPARMOR, crn_proc_apparmor},
    {CRN_STAGE_LANDLOCK, crn_proc_landlock},
    {CRN_STAGE_SECCOMP, crn_proc_seccomp_listener},
};

static void child_send(crn_child *c, int kind, int stage, const crn_error *err)
{
    crn_sync_msg msg;
    memset(&msg, 0, sizeof(msg));
    msg.kind = kind;
    msg.stage = stage;
    if (err != NULL)
        msg.err = *err;
    (void)!write(c->sync_fd, &msg, sizeof(msg));
}

static __attribute__((noreturn)) void child_fail(crn_child *c, int stage, const crn_error *err)
{
    child_send(c, CRN_SYNC_FAIL, stage, err);
    _exit(127);
}

/* The caller (Python) ignores SIGPIPE and may block signals; neither must
 * leak into the container. */
static void child_reset_signals(void)
{
    struct sigaction sa;
    sigset_t none;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &sa, NULL);
    sigemptyset(&none);
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof(long));
}

static int child_stdio(crn_child *c, crn_error *err)
{
    /* A caller fd below 3 that is not in its place yet (stdout and stderr
     * crossed over, say) would be overwritten by an earlier dup2: copy it
     * out of the way first.  The copies go with child_close_fds. */
    for (int i = 0; i < 3; i++) {
        if (c->stdio[i] >= 0 && c->stdio[i] < 3 && c->stdio[i] != i) {
            c->stdio[i] = fcntl(c->stdio[i], F_DUPFD, 3);
            if (c->stdio[i] < 0)
                return crn_error_set(err, errno, "fcntl", "F_DUPFD");
        }
    }
    for (int i = 0; i < 3; i++) {
        if (c->stdio[i] < 0 || c->stdio[i] == i)
            continue;
        if (dup2(c->stdio[i], i) < 0)
            return crn_error_set(err, errno, "dup2", NULL);
    }
    return 0;
}

/* The caller's other fds must not stay open in a container that may wait at
 * its barrier for a long time: keep only stdio and the sync socket. */
static void child_close_fds(crn_child *c)
{
    if (c->sync_fd > 3)
        syscall(__NR_close_range, 3U, (unsigned)c->sync_fd - 1, 0U);
    syscall(__NR_close_range, (unsigned)c->sync_fd + 1, ~0U, 0U);
}

static __attribute__((noreturn)) void child_main(crn_child *c)
{
    crn_error err;
    crn_error_clear(&err);
    child_reset_signals();
    if (c->sync_fd < 3) /* a caller without stdio: keep it clear of dup2 */
        c->sync_fd = fcntl(c->sync_fd, F_DUPFD_CLOEXEC, 3);
    if (child_stdio(c, &err) < 0)
        child_fail(c, CRN_STAGE_SYNC, &err);
    child_close_fds(c);
    if (crn_child_wait_go(c, &err) < 0)
        child_fail(c, CRN_STAGE_SYNC, &err);
    setsid();
    for (size_t i = 0; i < sizeof(setup_steps) / sizeof(setup_steps[0]); i++)
        if (setup_steps[i].fn(c, &err) < 0)
            child_fail(c, setup_steps[i].stage, &err);
    child_send(c, CRN_SYNC_READY, CRN_STAGE_NONE, NULL);
    close(c->sync_fd);
    /* The parent is gone from here on: a failure can only end the process. */
    if (crn_proc_barrier(c, &err) < 0)
        _exit(126);
    crn_proc_start_hooks(c);
    if (crn_proc_seccomp(c, &err) < 0)
        _exit(126);
    crn_proc_exec(c, &err);
    _exit(127);
}

/* ---- parent ---------------------------------------------------------- */

static void free_vec(char ***v)
{
    free(*v);
}

/* NULL-terminated vector of the strings in records of `type`. */
static char **build_vec(const void *plan, size_t len, uint16_t type)
{
    size_t n = crn_plan_count(plan, len, type), i = 0;
    char **v = calloc(n + 1, sizeof(char *));
    crn_plan_iter it;
    crn_plan_rec rec;
    if (v == NULL)
        return NULL;
    crn_plan_iter_init(&it, plan, len);
    while (crn_plan_next(&it, type, &rec))
        v[i++] = (char *)rec.data;
    return v;
}

static int write_file(const char *path, const char *data, size_t len, crn_error *err)
{
    crn_auto_fd fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return crn_error_set(err, errno, "open", path);
    if (write(fd, data, len) != (ssize_t)len)
        return crn_error_set(err, errno, "write", path);
    return 0;
}

/* Append "inside outside count\n" to buf. */
static size_t map_line(char *buf, size_t used, const crn_plan_rec *rec)
{
    crn_plan_cur cur;
    char num[24];
    crn_plan_cur_init(&cur, rec);
    crn_cur_u32(&cur);
    for (int f = 0; f < 3; f++) {
        crn_itoa(num, crn_cur_u32(&cur));
        size_t l = strlen(num);
        if (used + l + 2 >= 4096)
            return used;
        memcpy(buf + used, num, l);
        used += l;
        buf[used++] = f == 2 ? '\n' : ' ';
    }
    return used;
}

/* The child waits while we write its uid and gid maps. */
static int write_id_maps(const void *plan, size_t len, int pid, crn_error *err)
{
    static const char *const names[2] = {"uid_map", "gid_map"};
    for (uint32_t which = 0; which < 2; which++) {
        char buf[4096], path[64] = "/proc/";
        size_t used = 0;
        crn_plan_iter it;
        crn_plan_rec rec;
        crn_plan_iter_init(&it, plan, len);
        while (crn_plan_next(&it, CRN_PLAN_ID_MAP, &rec)) {
            uint32_t kind;
            memcpy(&kind, rec.data, 4);
            if (kind == which)
                used = map_line(buf, used, &rec);
        }
        if (used == 0)
            continue;
        crn_itoa(path + 6, pid);
        strcat(path, "/");
        strcat(path, names[which]);
        if (write_file(path, buf, used, err) < 0)
            return -1;
    }
    return 0;
}

/* A pid namespace can only be joined for children: switch this thread's
 * pid_for_children to the target around clone and back afterwards. */
static int enter_pid_ns(const void *plan, size_t len, int *saved, crn_error *err)
{
    crn_plan_iter it;
    crn_plan_rec rec;
    crn_plan_iter_init(&it, plan, len);
    *saved = -1;
    while (crn_plan_next(&it, CRN_PLAN_NS_JOIN, &rec)) {
        crn_plan_cur cur;
        crn_plan_cur_init(&cur, &rec);
        if (crn_cur_u32(&cur) != CLONE_NEWPID)
            continue;
        const char *path = crn_cur_str(&cur);
        crn_auto_fd fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return crn_error_set(err, errno, "open", path);
        *saved = open("/proc/thread-self/ns/pid_for_children", O_RDONLY | O_CLOEXEC);
        if (*saved < 0)
            return crn_error_set(err, errno, "open", "/proc/thread-self/ns/pid_for_children");
        if (setns(fd, CLONE_NEWPID) < 0)
            return crn_error_set(err, errno, "setns", path);
    }
    return 0;
}

static void leave_pid_ns(int *saved)
{
    if (*saved >= 0)
        setns(*saved, CLONE_NEWPID);
    crn_close_fdp(saved);   /* sets it to -1: the caller's auto-close skips it */
}

static int do_clone(uint64_t flags, int cgroup_fd, int *pidfd)
{
    struct clone_args args;
    memset(&args, 0, sizeof(args));
    args.flags = flags | CLONE_PIDFD;
    args.pidfd = (uint64_t)(uintptr_t)pidfd;
    /* clone3 refuses an exit signal with CLONE_PARENT: the child then gets
     * ours (SIGCHLD, from the caller's posix_spawn) */
    args.exit_signal = (flags & CLONE_PARENT) ? 0 : SIGCHLD;
    if (cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)cgroup_fd;
    }
    return (int)syscall(__NR_clone3, &args, sizeof(args));
}

/* A cgroup namespace made at clone time would be rooted at our own cgroup
 * when the parent moves the child afterwards (cgroup.procs): then the child
 * unshares it itself, once it has been moved (crn_proc_join_namespaces). */
static uint32_t clone_ns_flags(const void *plan, size_t len)
{
    crn_plan_rec rec;
    uint32_t flags = 0;
    if (crn_plan_find(plan, len, CRN_PLAN_NS_NEW, &rec))
        memcpy(&flags, rec.data, 4);
    if (crn_plan_find(plan, len, CRN_PLAN_CGROUP_PROCS, &rec))
        flags &= ~(uint32_t)CLONE_NEWCGROUP;
    return flags;
}

static int open_cgroup_into(const void *plan, size_t len, int *fd, crn_error *err)
{
    crn_plan_rec rec;
    *fd = -1;
    if (!crn_plan_find(plan, len, CRN_PLAN_CGROUP_INTO, &rec))
        return 0;
    *fd = open((const char *)rec.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (*fd < 0)
        return crn_error_set(err, errno, "open", (const char *)rec.data);
    return 0;
}

/* cgroup v1 (or a v2 host without clone3 placement): move the waiting child. */
static int write_cgroup_procs(const void *plan, size_t len, int pid, crn_error *err)
{
    crn_plan_iter it;
    crn_plan_rec rec;
    char num[24];
    crn_itoa(num, pid);
    crn_plan_iter_init(&it, plan, len);
    while (crn_plan_next(&it, CRN_PLAN_CGROUP_PROCS, &rec))
        if (write_file((const char *)rec.data, num, strlen(num), err) < 0)
            return -1;
    return 0;
}

void crn_launch_kill_reap(int pid, int *pidfd)
{
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, __WALL) < 0 && errno == EINTR)
        ;
    crn_close_fdp(pidfd);
}

static int send_go(int sock, int pid, crn_error *err)
{
    crn_sync_msg msg;
    memset(&msg, 0, sizeof(msg));
    msg.kind = CRN_SYNC_GO;
    msg.pid = pid;
    if (write(sock, &msg, sizeof(msg)) != (ssize_t)sizeof(msg))
        return crn_error_set(err, errno, "write sync", NULL);
    return 0;
}

/* One message; `*fd` gets the descriptor it carries (SCM_RIGHTS), or -1. */
static int read_msg(int sock, crn_sync_msg *msg, int *fd, crn_error *err)
{
    struct pollfd pfd = {.fd = sock, .events = POLLIN};
    ssize_t n;
    int ready;
    *fd = -1;
    do
        ready = poll(&pfd, 1, CRN_LAUNCH_TIMEOUT_MS);
    while (ready < 0 && errno == EINTR);
    if (ready == 0)
        return crn_error_set(err, ETIMEDOUT, "wait for child", NULL);
    n = crn_fd_recv(sock, msg, sizeof(*msg), fd);
    if (n != (ssize_t)sizeof(*msg))
        return crn_error_set(err, n < 0 ? errno : EPIPE, "read sync", NULL);
    return 0;
}

static int parent_sync(const void *plan, size_t len, int sock, int pid, crn_hook_fn on_hooks,
                       void *ctx, crn_launch_result *res, crn_error *err)
{
    crn_sync_msg msg;
    int fd;
    res->stage = CRN_STAGE_PARENT;
    if (write_id_maps(plan, len, pid, err) < 0 || write_cgroup_procs(plan, len, pid, err) < 0
        || send_go(sock, pid, err) < 0)
        return -1;
    for (;;) {
        if (read_msg(sock, &msg, &fd, err) < 0)
            return -1;
        if (msg.kind == CRN_SYNC_CONSOLE && fd >= 0 && res->console_fd < 0) {
            res->console_fd = fd;   /* the pty master; the child goes on */
            continue;
        }
        crn_close_fdp(&fd);
        if (msg.kind != CRN_SYNC_HOOKS)
            break;
        /* The child waits before pivot_root while the caller runs the
         * createRuntime and createContainer hooks. */
        res->stage = CRN_STAGE_HOOKS;
        if (on_hooks != NULL && on_hooks(ctx, pid, err) < 0)
            return -1;
        res->stage = CRN_STAGE_PARENT;
        if (send_go(sock, pid, err) < 0)
            return -1;
    }
    if (msg.kind == CRN_SYNC_READY) {
        res->stage = CRN_STAGE_NONE;
        return 0;
    }
    *err = msg.err;
    err->msg[CRN_ERROR_MSG_MAX - 1] = '\0';
    res->stage = msg.stage;
    return -1;
}

int crn_launch(const void *plan, size_t len, const int stdio[3], crn_hook_fn on_hooks,
               void *ctx, crn_launch_result *res, crn_error *err)
{
    crn_launch_opts opts = {.on_hooks = on_hooks};
    return crn_launch_ex(plan, len, stdio, &opts, ctx, res, err);
}

int crn_launch_ex(const void *plan, size_t len, const int stdio[3], const crn_launch_opts *opts,
                  void *ctx, crn_launch_result *res, crn_error *err)
{
    crn_auto_fd saved_pidns = -1;
    __attribute__((cleanup(free_vec))) char **argv = NULL;
    __attribute__((cleanup(free_vec))) char **envp = NULL;
    int sv[2], pidfd = -1, pid;

    res->pid = res->pidfd = res->console_fd = -1;
    res->stage = CRN_STAGE_PARENT;
    if (crn_plan_validate(plan, len, err) < 0)
        return -1;
    argv = build_vec(plan, len, CRN_PLAN_ARG);
    envp = build_vec(plan, len, CRN_PLAN_ENV);
    if (argv == NULL || envp == NULL)
        return crn_error_set(err, ENOMEM, "calloc", NULL);
    /* No args: a spec without `process`, created to wait at its barrier
     * for a start that refuses to let it go (runtime-spec: process is only
     * required by start). */
    if (argv[0] == NULL && crn_plan_count(plan, len, CRN_PLAN_BARRIER) == 0)
        return crn_error_set(err, EINVAL, "plan: no args", NULL);
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return crn_error_set(err, errno, "socketpair", NULL);
    crn_auto_fd parent_end = sv[0];
    crn_auto_fd child_end = sv[1];
    crn_auto_fd cgroup_fd = -1;
    if (open_cgroup_into(plan, len, &cgroup_fd, err) < 0)
        return -1;
    if (enter_pid_ns(plan, len, &saved_pidns, err) < 0) {
        leave_pid_ns(&saved_pidns);
        return -1;
    }
    pid = do_clone(clone_ns_flags(plan, len) | opts->clone_flags, cgroup_fd, &pidfd);
    if (pid == 0) {
        crn_child c = {
            .plan = plan, .len = len, .argv = argv, .envp = envp,
            .sync_fd = child_end, .stdio = {stdio[0], stdio[1], stdio[2]},
            .rootfd = -1, .fifo_fd = -1, .result_fd = -1, .listener_fd = -1,
            .userns_fd = -1,
            .landlock_fd = -1,
        };
        close(parent_end);
        child_main(&c);
    }
    int clone_errno = errno;
    leave_pid_ns(&saved_pidns);
    if (pid < 0)
        return crn_error_set(err, clone_errno, "clone3", NULL);
    crn_close_fdp(&child_end);
    child_end = -1;
    if (opts->on_clone != NULL)
        opts->on_clone(ctx, pid);
    if (parent_sync(plan, len, parent_end, pid, opts->on_hooks, ctx, res, err) < 0) {
        crn_launch_kill_reap(pid, &pidfd);
        crn_close_fdp(&res->console_fd);
        return -1;
    }
    res->pid = pid;
    res->pidfd = pidfd;
    return 0;
}

int crn_launch_release(const char *fifo_path, crn_error *err)
{
    crn_auto_fd fd = open(fifo_path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return crn_error_set(err, errno, "open", fifo_path);
    if (write(fd, "0", 1) != 1)
        return crn_error_set(err, errno, "write", fifo_path);
    return 0;
}
