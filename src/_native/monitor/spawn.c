/* Fork + exec of the container command, with exec failures reported back
 * over a close-on-exec pipe so a missing binary fails the launch. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "spawn.h"

#ifndef __NR_close_range
#define __NR_close_range 436
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* Runs in the child: only async-signal-safe calls from here to execvp. */
static void child_exec(const struct crn_spawn_req *req, int errpipe)
{
    sigset_t none;
    int e;

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* Ignored dispositions survive exec; the container must not inherit ours. */
    signal(SIGPIPE, SIG_DFL);
    if (setsid() < 0)
        goto fail;
    if (req->controlling_tty && ioctl(req->stdio[0], TIOCSCTTY, 0) < 0)
        goto fail;
    for (int i = 0; i < 3; i++)
        if (dup2(req->stdio[i], i) < 0)
            goto fail;
    /* Nothing of the monitor's reaches the container; errpipe closes at exec. */
    syscall(__NR_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
    execvp(req->argv[0], req->argv);
fail:
    e = errno;
    (void)!write(errpipe, &e, sizeof(e));
    _exit(127);
}

int crn_monitor_spawn(const struct crn_spawn_req *req, pid_t *pid, crn_error *err)
{
    int fds[2];
    int child_err = 0;
    ssize_t n;

    if (pipe2(fds, O_CLOEXEC) < 0)
        return crn_error_set(err, errno, "pipe2", NULL);
    cleanup_fd int rd = fds[0];
    cleanup_fd int wr = fds[1];
    pid_t child = fork();
    if (child < 0)
        return crn_error_set(err, errno, "fork", NULL);
    if (child == 0)
        child_exec(req, wr);
    close(crn_take_fd(&wr));
    do
        n = read(rd, &child_err, sizeof(child_err));
    while (n < 0 && errno == EINTR);
    if (n == sizeof(child_err)) {
        waitpid(child, NULL, 0);
        return crn_error_set(err, child_err, "execvp", req->argv[0]);
    }
    *pid = child;
    return 0;
}
