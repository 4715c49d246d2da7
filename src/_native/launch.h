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
    CRN_STAGE_APPARMOR,     /* the exec profile (process.apparmorProfile) */
    CRN_STAGE_LANDLOCK,     /* the container's Landlock ruleset */
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

/* What crn_launch_ex takes beyond crn_launch. */
typedef struct crn_launch_opts {
    crn_hook_fn on_hooks;           /* may be NULL */
    /* Called right after clone with the child's pid, before anything can
     * fail on its side; may be NULL. */
    void (*on_clone)(void *ctx, int pid);
    unsigned long long clone_flags; /* added to clone3's flags (CLONE_PARENT) */
} crn_launch_opts;

/* crn_launch with options.  With CLONE_PARENT the child is not ours: on a
 * failure it is killed but not reaped, which is then the caller's (the
 * launcher's parent) job. */
int crn_launch_ex(const void *plan, size_t len, const int stdio[3], const crn_launch_opts *opts,
                  void *ctx, crn_launch_result *res, crn_error *err);

/* SIGKILL a child that failed or that the caller gives up on, reap it and
 * close its pidfd (-1 skips that).  A CLONE_PARENT child is not ours to
 * reap: waitpid fails with ECHILD, and our parent reaps it. */
void crn_launch_kill_reap(int pid, int *pidfd);

/* Launch through the small `launcher` executable (crio-native-launch)
 * instead of cloning this process: it is spawned with vfork semantics
 * (posix_spawn), so neither its start nor the container's clone costs in
 * proportion to this process's memory, and it clones with CLONE_PARENT, so
 * the container process is still our child.  Same contract as crn_launch;
 * `on_hooks` runs here, in this process, while the child waits. */
int crn_launch_spawn(const char *launcher, const void *plan, size_t len, const int stdio[3],
                     crn_hook_fn on_hooks, void *ctx, crn_launch_result *res, crn_error *err);

/* Release a created container: write one byte to its start fifo.  ENXIO
 * means no process is waiting at that barrier. */
int crn_launch_release(const char *fifo_path, crn_error *err);

const char *crn_stage_name(int stage);

#endif
