/* State and steps of the launched child, between clone and execve.  Every
 * step is async-signal-safe C that reads the validated plan; none allocates.
 * Internal to launch.c and the per-concern files it walks (mounts.c,
 * msmove.c, caps.c, creds.c, nsjoin.c, sysctl.c, rlimit.c, tty.c, exec.c,
 * hooks.c, seccomp.c, landlock.c), which call nothing in launch.c: what they share with
 * it is in sync.c and fmt.c. */
#ifndef CRN_CHILD_H
#define CRN_CHILD_H

#include <limits.h>
#include <stddef.h>

#include "error.h"
#include "fmt.h"
#include "plan.h"

typedef struct crn_child {
    const void *plan;
    size_t len;
    char *const *argv;      /* built in the parent, before clone */
    char *const *envp;
    int sync_fd;            /* child end of the sync socket */
    int stdio[3];
    int rootfd;             /* O_PATH of the bound rootfs, until pivot_root */
    int fifo_fd;            /* start barrier, opened before pivot_root */
    int result_fd;          /* startContainer hook failures, ditto */
    int cwd_done;           /* chdir succeeded before the user switch */
    int seccomp_done;       /* filter loaded (early: no no_new_privs) */
    int listener_fd;        /* connected to linux.seccomp.listenerPath, or -1 */
    int userns_fd;          /* the user namespace joined last (crn_proc_join_userns), or -1 */
    int host_pid;           /* our pid as the parent sees it (from CRN_SYNC_GO) */
    int landlock_fd;        /* the Landlock ruleset until it is enforced, or -1 */
    char exe[PATH_MAX];     /* argv[0] resolved against $PATH */
} crn_child;

/* Parent -> child and child -> parent messages on the sync socket. */
enum crn_sync_kind { CRN_SYNC_GO = 1, CRN_SYNC_READY = 2, CRN_SYNC_FAIL = 3, CRN_SYNC_HOOKS = 4,
                     CRN_SYNC_CONSOLE = 5 /* carries the pty master (SCM_RIGHTS) */ };

typedef struct crn_sync_msg {
    int kind;
    int stage;
    int pid;                /* CRN_SYNC_GO: the child's pid in the parent's
                               pid namespace (it cannot see that one itself) */
    crn_error err;
} crn_sync_msg;

/* sync.c: wait for CRN_SYNC_GO (sets host_pid). */
int crn_child_wait_go(crn_child *c, crn_error *err);

/* mounts.c */
int crn_barrier_open(crn_child *c, crn_error *err);
int crn_rootfs_prepare(crn_child *c, crn_error *err);
int crn_mounts_apply(crn_child *c, crn_error *err);
int crn_devices_apply(crn_child *c, crn_error *err);
int crn_rootfs_pivot(crn_child *c, crn_error *err);
int crn_masks_apply(crn_child *c, crn_error *err);
/* The mount id of `path`, or 0 where statx cannot tell (before 5.8). */
uint64_t crn_mount_id(const char *path);

/* msmove.c */
int crn_move_root(crn_child *c, crn_error *err);
int crn_on_initramfs(int e);

/* caps.c */
int crn_caps_drop_bounding(crn_child *c, crn_error *err);
int crn_caps_apply(crn_child *c, crn_error *err);

/* tty.c */
int crn_proc_controlling_tty(crn_child *c, crn_error *err);
int crn_proc_console(crn_child *c, crn_error *err);

/* nsjoin.c */
int crn_proc_join_namespaces(crn_child *c, crn_error *err);
/* nsjoin.c: enter the joined user namespace, after everything that needs the
 * host's root (mounts, rlimits) and before the user switch. */
int crn_proc_join_userns(crn_child *c, crn_error *err);

/* creds.c */
int crn_proc_userns_root(crn_child *c, crn_error *err);
int crn_proc_user(crn_child *c, crn_error *err);
int crn_proc_no_new_privs(crn_child *c, crn_error *err);

/* sysctl.c */
int crn_proc_oom_score_adj(crn_child *c, crn_error *err);
int crn_proc_hostname(crn_child *c, crn_error *err);
int crn_proc_sysctls(crn_child *c, crn_error *err);

/* rlimit.c */
int crn_proc_rlimits(crn_child *c, crn_error *err);

/* exec.c */
int crn_proc_cwd_early(crn_child *c, crn_error *err);
int crn_proc_cwd(crn_child *c, crn_error *err);
int crn_proc_lookup(crn_child *c, crn_error *err);
int crn_proc_selinux_label(crn_child *c, crn_error *err);
int crn_proc_apparmor(crn_child *c, crn_error *err);
int crn_proc_personality(crn_child *c, crn_error *err);
int crn_proc_exec(crn_child *c, crn_error *err);
/* Not a directory, with an x bit, and access(X_OK) allows it (for argv[0]
 * and the startContainer hooks). */
int crn_is_executable(const char *path);

/* hooks.c */
int crn_proc_hook_pause(crn_child *c, crn_error *err);
int crn_proc_barrier(crn_child *c, crn_error *err);
/* After the barrier: a failure is reported on the result fifo and stderr,
 * then the process exits 1 (runc's init does the same). */
void crn_proc_start_hooks(crn_child *c);

/* landlock.c */
int crn_proc_landlock_prepare(crn_child *c, crn_error *err);
int crn_proc_landlock(crn_child *c, crn_error *err);

/* seccomp.c */
int crn_proc_seccomp_connect(crn_child *c, crn_error *err);
int crn_proc_seccomp_early(crn_child *c, crn_error *err);
int crn_proc_seccomp_listener(crn_child *c, crn_error *err);
int crn_proc_seccomp(crn_child *c, crn_error *err);

#endif
