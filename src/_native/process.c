/* The container process's own settings: controlling terminal, joined
 * namespaces, oom_score_adj, hostname, rlimits, user, cwd, no_new_privs,
 * executable lookup, the start barrier, seccomp and execve.
 *
 * The id switches use raw syscalls: glibc's setresuid() broadcasts to the
 * threads it believes exist, and after a raw clone3 those are the parent's. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "child.h"
#include "cleanup.h"
#include "fdpass.h"
#include "syscalls.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef SECCOMP_FILTER_FLAG_NEW_LISTENER
#define SECCOMP_FILTER_FLAG_NEW_LISTENER (1UL << 3)
#endif

/* In a new user namespace the maps are written by now; our ids are still
 * the host's (unmapped, so nothing can be created on the new mounts): become
 * its root.  Runs after the rootfs bind and the fifo open, which still rely
 * on being the host paths' owner. */
int crn_proc_userns_root(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    uint32_t flags = 0;
    if (crn_plan_find(c->plan, c->len, CRN_PLAN_NS_NEW, &rec))
        memcpy(&flags, rec.data, 4);
    if (!(flags & CLONE_NEWUSER))
        return 0;
    if (syscall(SYS_setresgid, 0, 0, 0) < 0)
        return crn_error_set(err, errno, "setresgid", NULL);
    if (syscall(SYS_setresuid, 0, 0, 0) < 0)
        return crn_error_set(err, errno, "setresuid", NULL);
    return 0;
}

#define CRN_MAX_JOINS 16

static void close_all(int (*fds)[CRN_MAX_JOINS])
{
    for (int i = 0; i < CRN_MAX_JOINS; i++)
        crn_close_fdp(&(*fds)[i]);
}

/* Open every namespace first and only then setns: once in a joined mount
 * namespace, /proc/PID of the target may no longer be visible. */
static int join_all(crn_child *c, crn_error *err)
{
    __attribute__((cleanup(close_all))) int fds[CRN_MAX_JOINS];
    uint32_t types[CRN_MAX_JOINS];
    const char *paths[CRN_MAX_JOINS];
    crn_plan_iter it;
    crn_plan_rec rec;
    int n = 0;
    for (int i = 0; i < CRN_MAX_JOINS; i++)
        fds[i] = -1;
    crn_plan_iter_init(&it, c->plan, c->len);
    while (crn_plan_next(&it, CRN_PLAN_NS_JOIN, &rec)) {
        crn_plan_cur cur;
        crn_plan_cur_init(&cur, &rec);
        uint32_t nstype = crn_cur_u32(&cur);
        const char *path = crn_cur_str(&cur);
        if (nstype == CLONE_NEWPID)
            continue; /* joined by the parent around clone */
        if (n == CRN_MAX_JOINS)
            return crn_error_set(err, E2BIG, "setns", path);
        fds[n] = open(path, O_RDONLY | O_CLOEXEC);
        if (fds[n] < 0)
            return crn_error_set(err, errno, "open", path);
        types[n] = nstype;
        paths[n++] = path;
    }
    for (int i = 0; i < n; i++)
        if (setns(fds[i], (int)types[i]) < 0)
            return crn_error_set(err, errno, "setns", paths[i]);
    return 0;
}

int crn_proc_join_namespaces(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    uint32_t flags = 0;
    if (crn_plan_find(c->plan, c->len, CRN_PLAN_NS_NEW, &rec))
        memcpy(&flags, rec.data, 4);
    /* See clone_ns_flags() in launch.c: the parent has moved us by now. */
    if ((flags & CLONE_NEWCGROUP) && crn_plan_find(c->plan, c->len, CRN_PLAN_CGROUP_PROCS, &rec)
        && unshare(CLONE_NEWCGROUP) < 0)
        return crn_error_set(err, errno, "unshare", "cgroup");
    return join_all(c, err);
}

int crn_proc_oom_score_adj(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    char num[24];
    int32_t v;
    if (!crn_plan_find(c->plan, c->len, CRN_PLAN_OOM_SCORE_ADJ, &rec))
        return 0;
    memcpy(&v, rec.data, 4);
    crn_itoa(num, v);
    crn_auto_fd fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return crn_error_set(err, errno, "open", "/proc/self/oom_score_adj");
    if (write(fd, num, strlen(num)) < 0)
        return crn_error_set(err, errno, "write", "/proc/self/oom_score_adj");
    return 0;
}

int crn_proc_hostname(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    if (crn_plan_find(c->plan, c->len, CRN_PLAN_HOSTNAME, &rec)
        && sethostname((const char *)rec.data, strlen((const char *)rec.data)) < 0)
        return crn_error_set(err, errno, "sethostname", (const char *)rec.data);
    if (crn_plan_find(c->plan, c->len, CRN_PLAN_DOMAINNAME, &rec)
        && setdomainname((const char *)rec.data, strlen((const char *)rec.data)) < 0)
        return crn_error_set(err, errno, "setdomainname", (const char *)rec.data);
    return 0;
}

/* Written through the container's own /proc, so namespaced keys land in its
 * namespaces; runs before readonlyPaths makes /proc/sys read-only. */
int crn_proc_sysctls(crn_child *c, crn_error *err)
{
    crn_plan_iter it;
    crn_plan_rec rec;
    crn_plan_iter_init(&it, c->plan, c->len);
    while (crn_plan_next(&it, CRN_PLAN_SYSCTL, &rec)) {
        char path[PATH_MAX] = "/proc/sys/";
        crn_plan_cur cur;
        crn_plan_cur_init(&cur, &rec);
        const char *key = crn_cur_str(&cur), *value = crn_cur_str(&cur);
        if (strlen(key) + 11 > sizeof(path))
            return crn_error_set(err, ENAMETOOLONG, "open", key);
        strcat(path, key);
        crn_auto_fd fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
            return crn_error_set(err, errno, "open", path);
        if (write(fd, value, strlen(value)) < 0)
            return crn_error_set(err, errno, "write", path);
    }
    return 0;
}

/* Runs first, right after setsid(): a session leader without a terminal
 * takes the pty on fd 0 as its controlling tty, so job control, ^C and
 * SIGHUP reach the container as they would in a login shell. */
int crn_proc_controlling_tty(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    if (!crn_plan_find(c->plan, c->len, CRN_PLAN_CONTROLLING_TTY, &rec))
        return 0;
    if (ioctl(0, TIOCSCTTY, 0) < 0)
        return crn_error_set(err, errno, "ioctl TIOCSCTTY", "stdin");
    return 0;
}

int crn_proc_hook_pause(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    crn_sync_msg msg;
    if (!crn_plan_find(c->plan, c->len, CRN_PLAN_HOOK_PAUSE, &rec))
        return 0;
    memset(&msg, 0, sizeof(msg));
    msg.kind = CRN_SYNC_HOOKS;
    if (write(c->sync_fd, &msg, sizeof(msg)) != (ssize_t)sizeof(msg))
        return crn_error_set(err, errno, "write sync", NULL);
    return crn_child_wait_go(c, err);
}

int crn_proc_rlimits(crn_child *c, crn_error *err)
{
    crn_plan_iter it;
    crn_plan_rec rec;
    crn_plan_iter_init(&it, c->plan, c->len);
    while (crn_plan_next(&it, CRN_PLAN_RLIMIT, &rec)) {
        crn_plan_cur cur;
        struct rlimit rl;
        crn_plan_cur_init(&cur, &rec);
        int resource = (int)crn_cur_u32(&cur);
        rl.rlim_cur = crn_cur_u64(&cur);
        rl.rlim_max = crn_cur_u64(&cur);
        if (syscall(SYS_prlimit64, 0, resource, &rl, NULL) < 0)
            return crn_error_set(err, errno, "prlimit", NULL);
    }
    return 0;
}

int crn_proc_user(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    crn_plan_cur cur;
    gid_t groups[256];
    size_t glen;
    if (!crn_plan_find(c->plan, c->len, CRN_PLAN_USER, &rec))
        return 0;
    crn_plan_cur_init(&cur, &rec);
    uid_t uid = crn_cur_u32(&cur);
    gid_t gid = crn_cur_u32(&cur);
    uint32_t ngroups = crn_cur_u32(&cur);
    const void *raw = crn_cur_rest(&cur, &glen);
    if (ngroups > 256)
        return crn_error_set(err, E2BIG, "setgroups", NULL);
    memcpy(groups, raw, glen);
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
        return crn_error_set(err, errno, "prctl PR_SET_KEEPCAPS", NULL);
    if (syscall(SYS_setgroups, ngroups, groups) < 0)
        return crn_error_set(err, errno, "setgroups", NULL);
    if (syscall(SYS_setresgid, gid, gid, gid) < 0)
        return crn_error_set(err, errno, "setresgid", NULL);
    if (syscall(SYS_setresuid, uid, uid, uid) < 0)
        return crn_error_set(err, errno, "setresuid", NULL);
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
        return crn_error_set(err, errno, "prctl PR_SET_KEEPCAPS", NULL);
    return 0;
}

/* Like runc, try the cwd first with the runtime's rights (the container user
 * may not reach it, the volume may be chowned to it), and once more after
 * the user switch if that was refused. */
int crn_proc_cwd_early(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    if (!crn_plan_find(c->plan, c->len, CRN_PLAN_CWD, &rec))
        return 0;
    if (chdir((const char *)rec.data) == 0) {
        c->cwd_done = 1;
        return 0;
    }
    if (errno == EACCES || errno == EPERM)
        return 0;
    return crn_error_set(err, errno, "chdir", (const char *)rec.data);
}

int crn_proc_cwd(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    if (c->cwd_done || !crn_plan_find(c->plan, c->len, CRN_PLAN_CWD, &rec))
        return 0;
    if (chdir((const char *)rec.data) < 0)
        return crn_error_set(err, errno, "chdir", (const char *)rec.data);
    return 0;
}

int crn_proc_no_new_privs(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    if (crn_plan_find(c->plan, c->len, CRN_PLAN_NO_NEW_PRIVS, &rec)
        && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return crn_error_set(err, errno, "prctl PR_SET_NO_NEW_PRIVS", NULL);
    return 0;
}

static int is_executable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && !S_ISDIR(st.st_mode) && (st.st_mode & 0111)
           && access(path, X_OK) == 0;
}

static const char *env_path(crn_child *c)
{
    for (char *const *e = c->envp; *e; e++)
        if (strncmp(*e, "PATH=", 5) == 0)
            return *e + 5;
    return "";
}

/* Resolve argv[0] the way runc does: a name with a slash is used as is,
 * anything else is searched in the container's $PATH. */
int crn_proc_lookup(crn_child *c, crn_error *err)
{
    const char *name = c->argv[0], *p = env_path(c);
    size_t nlen = strlen(name);
    if (strchr(name, '/') != NULL) {
        if (nlen >= sizeof(c->exe))
            return crn_error_set(err, ENAMETOOLONG, "exec", name);
        memcpy(c->exe, name, nlen + 1);
        if (!is_executable(c->exe))
            return crn_error_set(err, errno ? errno : EACCES, "exec", name);
        return 0;
    }
    while (*p) {
        const char *colon = strchrnul(p, ':');
        size_t dlen = (size_t)(colon - p);
        if (dlen == 0) {
            c->exe[0] = '.';
            dlen = 1;
        } else if (dlen < sizeof(c->exe)) {
            memcpy(c->exe, p, dlen);
        }
        if (dlen + 1 + nlen < sizeof(c->exe)) {
            c->exe[dlen] = '/';
            memcpy(c->exe + dlen + 1, name, nlen + 1);
            if (is_executable(c->exe))
                return 0;
        }
        p = *colon ? colon + 1 : colon;
    }
    return crn_error_set(err, ENOENT, "exec", name);
}

/* process.selinuxLabel: the context the next execve enters, as
 * setexeccon(3) sets it, but with a plain write (no libselinux, no
 * allocation).  /proc is the container's own by now (thread-self names this
 * thread in it); the policy checks the transition itself at execve.  The
 * plan has no record when SELinux is off on the host. */
int crn_proc_selinux_label(crn_child *c, crn_error *err)
{
    static const char path[] = "/proc/thread-self/attr/exec";
    crn_plan_rec rec;
    const char *label;
    if (!crn_plan_find(c->plan, c->len, CRN_PLAN_SELINUX_LABEL, &rec))
        return 0;
    label = (const char *)rec.data;
    crn_auto_fd fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return crn_error_set(err, errno, "open", path);
    /* the kernel wants the context in a single write, NUL included */
    if (write(fd, label, strlen(label) + 1) < 0)
        return crn_error_set(err, errno, "write", path);
    return 0;
}

/* The state JSON `start` hands over for the startContainer hooks: static,
 * so the child allocates nothing (untouched pages cost no memory). */
static char start_state[CRN_START_STATE_MAX];
static size_t start_state_len;
static int start_state_errno;

static int has_start_hooks(crn_child *c)
{
    crn_plan_rec rec;
    return crn_plan_find(c->plan, c->len, CRN_PLAN_START_HOOK, &rec);
}

/* With startContainer hooks `start` writes the state JSON and closes: read
 * it to EOF.  Anything past the buffer is drained and reported. */
static int read_start_state(crn_child *c, struct pollfd *pfd)
{
    char scratch[512];
    for (;;) {
        int full = start_state_len == sizeof(start_state);
        ssize_t n = full ? read(c->fifo_fd, scratch, sizeof(scratch))
                         : read(c->fifo_fd, start_state + start_state_len,
                                sizeof(start_state) - start_state_len);
        if (n > 0) {
            if (full)
                start_state_errno = E2BIG;
            else
                start_state_len += (size_t)n;
        } else if (n == 0) {
            return 0;
        } else if (errno == EAGAIN) {
            if (poll(pfd, 1, -1) < 0 && errno != EINTR)
                return -1;
        } else if (errno != EINTR) {
            return -1;
        }
    }
}

int crn_proc_barrier(crn_child *c, crn_error *err)
{
    struct pollfd pfd = {.fd = c->fifo_fd, .events = POLLIN};
    char byte;
    if (c->fifo_fd < 0)
        return 0;
    /* Until a writer has opened the fifo, poll() reports nothing (not even
     * POLLHUP), so this waits for `start`. */
    while (poll(&pfd, 1, -1) < 0)
        if (errno != EINTR)
            return crn_error_set(err, errno, "poll", "exec fifo");
    if (has_start_hooks(c)) {
        if (read_start_state(c, &pfd) < 0)
            start_state_errno = errno;
    } else if (read(c->fifo_fd, &byte, 1) != 1) {
        return crn_error_set(err, errno ? errno : EPIPE, "read", "exec fifo");
    }
    close(c->fifo_fd);
    c->fifo_fd = -1;
    return 0;
}

/* ---- startContainer hooks ------------------------------------------------
 * Run by the container process itself after `start`, before seccomp and
 * execve (runtime-spec: path resolved and executed in the container
 * namespace), with its user, capabilities and cwd.  Each hook is a child
 * with the state JSON on stdin and the container's stdout and stderr. */

static __attribute__((noreturn)) void hook_fail(crn_child *c, int index, const char *path,
                                                int kind, int value)
{
    static const char pre[] = "crio-native: startContainer hook #";
    crn_hook_result r = {.index = index, .kind = kind, .value = value};
    char num[24];
    if (c->result_fd >= 0)
        (void)!write(c->result_fd, &r, sizeof(r));
    crn_itoa(num, index);
    (void)!write(2, pre, sizeof(pre) - 1);
    (void)!write(2, num, strlen(num));
    (void)!write(2, " (", 2);
    (void)!write(2, path, strlen(path));
    (void)!write(2, ") failed\n", 9);
    _exit(1);
}

/* argv and envp of a START_HOOK record, pointing into the plan. */
static int hook_vectors(crn_plan_cur *cur, uint32_t argc, char **argv, char **envp)
{
    size_t rlen, n = 0;
    const char *p = crn_cur_rest(cur, &rlen), *end = p + rlen;
    while (p < end) {
        const char *nul = memchr(p, '\0', (size_t)(end - p));
        if (nul == NULL || n == CRN_HOOK_MAX_STRS)
            return -1;
        if (n < argc)
            argv[n] = (char *)p;
        else
            envp[n - argc] = (char *)p;
        n++;
        p = nul + 1;
    }
    if (n < argc || argc == 0)
        return -1;
    argv[argc] = NULL;
    envp[n - argc] = NULL;
    return 0;
}

/* A pipe holding the whole state JSON, so writing never waits for the hook. */
static int state_pipe(int fds[2])
{
    size_t done = 0;
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -1;
    if (start_state_len > 65536)
        fcntl(fds[1], F_SETPIPE_SZ, (int)start_state_len);
    fcntl(fds[1], F_SETFL, O_NONBLOCK);
    while (done < start_state_len) {
        ssize_t n = write(fds[1], start_state + done, start_state_len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int saved = n < 0 ? errno : EPIPE;
            close(fds[0]);
            close(fds[1]);
            errno = saved;
            return -1;
        }
        done += (size_t)n;
    }
    close(fds[1]);
    return 0;
}

/* 0, or the failure's kind with *value set. */
static int run_start_hook(const crn_plan_rec *rec, const char **path, int *value)
{
    char *argv[CRN_HOOK_MAX_STRS + 1], *envp[CRN_HOOK_MAX_STRS + 1];
    struct clone_args args;
    crn_plan_cur cur;
    int fds[2], pidfd = -1, status, ready;
    crn_plan_cur_init(&cur, rec);
    uint32_t timeout = crn_cur_u32(&cur), argc = crn_cur_u32(&cur);
    *path = crn_cur_str(&cur);
    if (hook_vectors(&cur, argc, argv, envp) < 0)
        return (*value = EINVAL), CRN_HOOK_START;
    if (!is_executable(*path))
        return (*value = errno ? errno : EACCES), CRN_HOOK_START;
    if (state_pipe(fds) < 0)
        return (*value = errno), CRN_HOOK_START;
    memset(&args, 0, sizeof(args));
    args.flags = CLONE_PIDFD;
    args.pidfd = (uint64_t)(uintptr_t)&pidfd;
    args.exit_signal = SIGCHLD;
    pid_t pid = (pid_t)syscall(__NR_clone3, &args, sizeof(args));
    if (pid == 0) {
        if (fds[0] == 0)
            fcntl(0, F_SETFD, 0);
        else if (dup2(fds[0], 0) < 0)
            _exit(127);
        syscall(__NR_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
        execve(*path, argv, envp);
        _exit(127);
    }
    close(fds[0]);
    if (pid < 0)
        return (*value = errno), CRN_HOOK_START;
    struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
    do
        ready = poll(&pfd, 1, timeout ? (int)timeout * 1000 : -1);
    while (ready < 0 && errno == EINTR);
    if (ready == 0)
        kill(pid, SIGKILL);
    close(pidfd);
    while (waitpid(pid, &status, __WALL) < 0)
        if (errno != EINTR)
            return (*value = errno), CRN_HOOK_START;
    if (ready == 0)
        return (*value = (int)timeout), CRN_HOOK_TIMEOUT;
    if (WIFSIGNALED(status))
        return (*value = WTERMSIG(status)), CRN_HOOK_SIGNAL;
    if (WEXITSTATUS(status) != 0)
        return (*value = WEXITSTATUS(status)), CRN_HOOK_EXIT;
    return 0;
}

void crn_proc_start_hooks(crn_child *c)
{
    crn_plan_iter it;
    crn_plan_rec rec;
    int index = 0;
    crn_plan_iter_init(&it, c->plan, c->len);
    while (crn_plan_next(&it, CRN_PLAN_START_HOOK, &rec)) {
        const char *path = "";
        int value = 0, kind;
        if (start_state_errno)
            hook_fail(c, index, (const char *)rec.data + 8, CRN_HOOK_STATE, start_state_errno);
        kind = run_start_hook(&rec, &path, &value);
        if (kind != 0)
            hook_fail(c, index, path, kind, value);
        index++;
    }
}

/* linux.personality: the execution domain (LINUX32: uname -m says i686)
 * and flags the user program runs with. */
int crn_proc_personality(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    uint32_t persona;
    if (!crn_plan_find(c->plan, c->len, CRN_PLAN_PERSONALITY, &rec))
        return 0;
    memcpy(&persona, rec.data, 4);
    if (syscall(SYS_personality, (unsigned long)persona) < 0)
        return crn_error_set(err, errno, "personality", NULL);
    return 0;
}

static int send_fd(int sock, int fd, crn_error *err)
{
    crn_sync_msg msg;
    crn_fd_control ctl;
    struct iovec iov = {.iov_base = &msg, .iov_len = sizeof(msg)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    memset(&msg, 0, sizeof(msg));
    msg.kind = CRN_SYNC_CONSOLE;
    crn_fd_attach(&mh, &ctl, fd);
    if (sendmsg(sock, &mh, MSG_NOSIGNAL) != (ssize_t)sizeof(msg))
        return crn_error_set(err, errno, "sendmsg", "console");
    return 0;
}

/* The console socket's pty, made as runc makes it: from the container's
 * own /dev/ptmx (its devpts instance), so `tty` names /dev/pts/0 inside.
 * The slave becomes stdio and the controlling tty (we are a session leader
 * without one), owned by the container user like runc's stdio; the master
 * goes to the parent, which hands it to the console socket. */
int crn_proc_console(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    int unlock = 0;
    if (!crn_plan_find(c->plan, c->len, CRN_PLAN_CONSOLE, &rec))
        return 0;
    crn_auto_fd master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0)
        return crn_error_set(err, errno, "open", "/dev/ptmx");
    if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
        return crn_error_set(err, errno, "ioctl TIOCSPTLCK", "/dev/ptmx");
    crn_auto_fd slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0)
        return crn_error_set(err, errno, "ioctl TIOCGPTPEER", "/dev/ptmx");
    if (crn_plan_find(c->plan, c->len, CRN_PLAN_USER, &rec)) {
        uint32_t uid;
        memcpy(&uid, rec.data, 4);
        if (fchown(slave, uid, (gid_t)-1) < 0)
            return crn_error_set(err, errno, "fchown", "console");
    }
    for (int i = 0; i < 3; i++)
        if (dup2(slave, i) < 0)
            return crn_error_set(err, errno, "dup2", "console");
    if (ioctl(0, TIOCSCTTY, 0) < 0)
        return crn_error_set(err, errno, "ioctl TIOCSCTTY", "console");
    return send_fd(c->sync_fd, master, err);
}

/* ---- seccomp ------------------------------------------------------------
 * SCMP_ACT_NOTIFY: the agent's socket (linux.seccomp.listenerPath, a host
 * path) is connected first thing, before the container's namespaces are
 * joined or its mounts made, when host paths still resolve as the runtime
 * sees them (the create's parent ends up in the same place for the daemon
 * and for the monitor this way, and an agent that is not there fails the
 * create before anything is built).  Once the filter is loaded the process
 * itself sends the container process state and the notify fd, and closes
 * both: it is the only one holding them, and it still reports to the
 * parent afterwards, so a failed send fails the create. */

#define CRN_LISTENER_FIELD "connect to linux.seccomp.listenerPath"

int crn_proc_seccomp_connect(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    struct sockaddr_un addr;
    const char *path;
    size_t n;
    int rc;
    if (!crn_plan_find(c->plan, c->len, CRN_PLAN_SECCOMP_LISTENER, &rec))
        return 0;
    path = (const char *)rec.data;
    n = strlen(path);
    if (n >= sizeof(addr.sun_path))
        return crn_error_set(err, ENAMETOOLONG, CRN_LISTENER_FIELD, path);
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, path, n);
    c->listener_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->listener_fd < 0)
        return crn_error_set(err, errno, "socket", path);
    do
        rc = connect(c->listener_fd, (struct sockaddr *)&addr, sizeof(addr));
    while (rc < 0 && errno == EINTR);
    if (rc < 0)
        return crn_error_set(err, errno, CRN_LISTENER_FIELD, path);
    return 0;
}

/* Drop the first `n` bytes of the iovec array. */
static void iov_advance(struct iovec **iov, int *cnt, size_t n)
{
    while (*cnt > 0 && n >= (*iov)->iov_len) {
        n -= (*iov)->iov_len;
        (*iov)++;
        (*cnt)--;
    }
    if (*cnt > 0) {
        (*iov)->iov_base = (char *)(*iov)->iov_base + n;
        (*iov)->iov_len -= n;
    }
}

/* The JSON parts with our pid between them, the notify fd with the first
 * sendmsg (the spec allows several; the fds go with the first). */
static int send_listener_state(crn_child *c, int notify_fd, crn_error *err)
{
    struct iovec vec[2 * CRN_LISTENER_MAX_PARTS], *iov = vec;
    crn_fd_control ctl;
    struct msghdr mh;
    crn_plan_rec rec;
    crn_plan_cur cur;
    char pid[24];
    size_t rlen;
    int cnt = 0, parts = 0;
    if (c->listener_fd < 0 || c->host_pid <= 0
        || !crn_plan_find(c->plan, c->len, CRN_PLAN_SECCOMP_LISTENER, &rec))
        return crn_error_set(err, EINVAL, "seccomp listener", "plan");
    crn_plan_cur_init(&cur, &rec);
    const char *path = crn_cur_str(&cur);
    const char *p = crn_cur_rest(&cur, &rlen), *end = p + rlen;
    crn_itoa(pid, c->host_pid);
    while (p < end) {
        const char *nul = memchr(p, '\0', (size_t)(end - p));
        if (nul == NULL || parts == CRN_LISTENER_MAX_PARTS)
            return crn_error_set(err, EINVAL, "seccomp listener: malformed state", path);
        if (parts++ > 0)
            vec[cnt++] = (struct iovec){.iov_base = pid, .iov_len = strlen(pid)};
        vec[cnt++] = (struct iovec){.iov_base = (void *)p, .iov_len = (size_t)(nul - p)};
        p = nul + 1;
    }
    memset(&mh, 0, sizeof(mh));
    crn_fd_attach(&mh, &ctl, notify_fd);
    while (cnt > 0) {
        mh.msg_iov = iov;
        mh.msg_iovlen = (size_t)cnt;
        ssize_t n = sendmsg(c->listener_fd, &mh, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return crn_error_set(err, n < 0 ? errno : EPIPE, "sendmsg to linux.seccomp.listenerPath",
                                 path);
        mh.msg_control = NULL;
        mh.msg_controllen = 0;
        iov_advance(&iov, &cnt, (size_t)n);
    }
    return 0;
}

/* Without no_new_privs, loading a filter needs CAP_SYS_ADMIN, which the
 * capability step may drop: then the filter goes in early, before the user
 * and capability switches (as runc does), and has to allow what follows. */
int crn_proc_seccomp_early(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    if (crn_plan_find(c->plan, c->len, CRN_PLAN_NO_NEW_PRIVS, &rec))
        return 0;
    return crn_proc_seccomp(c, err);
}

/* With no_new_privs a filter is loaded after the start barrier, unless it
 * has a listener: then it goes in now, the last step before READY, so the
 * agent has the notify fd when `create` returns and a failure to hand it
 * over fails the create (runc loads it before its exec fifo too). */
int crn_proc_seccomp_listener(crn_child *c, crn_error *err)
{
    if (c->listener_fd < 0)
        return 0;
    return crn_proc_seccomp(c, err);
}

int crn_proc_seccomp(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    crn_plan_cur cur;
    struct sock_fprog prog;
    size_t blen;
    long fd;
    int rc = 0;
    if (c->seccomp_done || !crn_plan_find(c->plan, c->len, CRN_PLAN_SECCOMP, &rec))
        return 0;
    crn_plan_cur_init(&cur, &rec);
    uint32_t flags = crn_cur_u32(&cur);
    prog.filter = (struct sock_filter *)crn_cur_rest(&cur, &blen);
    prog.len = (unsigned short)(blen / sizeof(struct sock_filter));
    /* with NEW_LISTENER the result is the notify fd (close-on-exec) */
    fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
    if (fd < 0)
        return crn_error_set(err, errno, "seccomp", NULL);
    c->seccomp_done = 1;
    if (flags & SECCOMP_FILTER_FLAG_NEW_LISTENER) {
        rc = send_listener_state(c, (int)fd, err);
        close((int)fd);
        crn_close_fdp(&c->listener_fd);
    }
    return rc;
}

int crn_proc_exec(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    mode_t mask = 022;
    if (crn_plan_find(c->plan, c->len, CRN_PLAN_UMASK, &rec)) {
        uint32_t v;
        memcpy(&v, rec.data, 4);
        mask = (mode_t)v;
    }
    umask(mask);
    syscall(__NR_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
    execve(c->exe, c->argv, c->envp);
    return crn_error_set(err, errno, "execve", c->exe);
}
