/* Launch a container process from a plan (plan.h).
 *
 * crn_launch() validates the plan, clones the child into its new namespaces
 * and lets it walk the plan up to the start barrier.  It returns once the
 * child is waiting at the barrier (the container is "created") or has failed;
 * a failure in the child comes back over the sync socket as (errno, stage,
 * "syscall `path`") and is returned through `err` and `res->stage`. */
#ifndef CRN_LAUNCH_H
#define CRN_LAUNCH_H

#include <stddef.h>

#include "error.h"

/* The child's steps, in the order it runs them.  Reported with a failure. */
enum crn_stage {
    CRN_STAGE_NONE = 0,
    CRN_STAGE_PARENT,       /* before or around clone, in the caller */
    CRN_STAGE_SYNC,         /* waiting for the parent's go-ahead */
    CRN_STAGE_NAMESPACES,   /* setns into joined namespaces */
    CRN_STAGE_OOM,          /* oom_score_adj */
    CRN_STAGE_HOSTNAME,     /* hostname, domainname */
    CRN_STAGE_ROOTFS,       /* propagation, rootfs bind */
    CRN_STAGE_MOUNTS,       /* spec mounts, in order */
    CRN_STAGE_DEVICES,      /* device nodes and /dev symlinks */
    CRN_STAGE_PIVOT,        /* pivot_root */
    CRN_STAGE_MASKS,        /* maskedPaths, readonlyPaths, read-only root */
    CRN_STAGE_RLIMITS,
    CRN_STAGE_USER,         /* setgroups, setgid, setuid */
    CRN_STAGE_CWD,
    CRN_STAGE_CAPS,
    CRN_STAGE_NO_NEW_PRIVS,
    CRN_STAGE_LOOKUP,       /* find the executable in $PATH */
    CRN_STAGE_BARRIER,      /* waiting for start */
    CRN_STAGE_SECCOMP,
    CRN_STAGE_EXEC,
    CRN_STAGE_SYSCTL,       /* after pivot_root, before read-only /proc/sys */
    CRN_STAGE_HOOKS,        /* createRuntime/createContainer, before pivot_root */
    CRN_STAGE_TERMINAL,     /* the pty slave on stdin becomes the controlling tty */
    CRN_STAGE_SELINUX,      /* the exec label (process.selinuxLabel) */
    CRN_STAGE_PERSONALITY,  /* linux.personality */
    CRN_STAGE_CONSOLE,      /* a pty from the container's /dev/ptmx (console socket) */
    CRN_STAGE_COUNT
};

typedef struct crn_launch_result {
    int pid;                /* in the caller's pid namespace */
    int pidfd;              /* close-on-exec; the caller owns it */
    int stage;              /* enum crn_stage of a failure */
    int console_fd;         /* CRN_PLAN_CONSOLE: the pty master, close-on-exec,
                               the caller owns it; else -1 */
} crn_launch_result;

/* Called in the parent while the child waits before pivot_root, when the
 * plan has a CRN_PLAN_HOOK_PAUSE record; a negative return (with `err` set)
 * fails the launch. */
typedef int (*crn_hook_fn)(void *ctx, int pid, crn_error *err);

/* `stdio` holds the fds the process gets as 0, 1 and 2 (-1: inherit);
 * `on_hooks` may be NULL. */
int crn_launch(const void *plan, size_t len, const int stdio[3], crn_hook_fn on_hooks,
               void *ctx, crn_launch_result *res, crn_error *err);

/* Release a created container: write one byte to its start fifo.  ENXIO
 * means no process is waiting at that barrier. */
int crn_launch_release(const char *fifo_path, crn_error *err);

const char *crn_stage_name(int stage);

#endif
