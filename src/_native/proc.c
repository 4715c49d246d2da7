#define _GNU_SOURCE
#include <sys/prctl.h>
#include <unistd.h>

#include "proc.h"
#include "syscalls.h"

int crn_pidfd_open(int pid, crn_error *err)
{
    long fd = syscall(__NR_pidfd_open, pid, 0);
    if (fd < 0)
        return crn_error_set(err, errno, "pidfd_open", NULL);
    return (int)fd;
}

int crn_pidfd_send_signal(int pidfd, int sig, crn_error *err)
{
    if (syscall(__NR_pidfd_send_signal, pidfd, sig, NULL, 0) < 0)
        return crn_error_set(err, errno, "pidfd_send_signal", NULL);
    return 0;
}

int crn_proc_set_child_subreaper(int on, crn_error *err)
{
    if (prctl(PR_SET_CHILD_SUBREAPER, on ? 1 : 0, 0, 0, 0) < 0)
        return crn_error_set(err, errno, "prctl PR_SET_CHILD_SUBREAPER", NULL);
    return 0;
}
