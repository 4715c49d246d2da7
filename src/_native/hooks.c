/* The container process's part in the runtime-spec hooks: the pause for
 * the createRuntime and createContainer hooks, the start barrier (which
 * carries the state JSON for the startContainer hooks) and the
 * startContainer hooks themselves. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "syscalls.h"

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
    if (!crn_is_executable(*path))
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
