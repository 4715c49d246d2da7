/* The launcher protocol: between crn_launch_spawn (launchspawn.c, in the
 * caller) and the crio-native-launch executable (launcher/main.c).
 *
 * The caller spawns the launcher with
 *   fd 0, 1, 2  the container process's stdio (inherited where the caller
 *               passed -1),
 *   fd 3        its end of a SOCK_SEQPACKET socketpair (this protocol),
 *   fd 4        a memfd holding the plan (plan.h).
 * The launcher runs crn_launch_ex with CLONE_PARENT, so the container
 * process is the caller's child, and reports on fd 3, one message per
 * packet:
 *
 *   launcher -> caller  CLONED pid          right after clone
 *   launcher -> caller  HOOKS pid           the child waits for its hooks
 *   caller -> launcher  GO | FAIL err       the hooks' outcome
 *   launcher -> caller  DONE stage err      the end; err.err == 0 and stage
 *                                           CRN_STAGE_NONE: the child is at
 *                                           its barrier.  Carries the pty
 *                                           master (SCM_RIGHTS) for a plan
 *                                           with a CONSOLE record.
 *
 * then exits.  The caller reaps the launcher, and the child on a failure. */
#ifndef CRN_LAUNCHER_H
#define CRN_LAUNCHER_H

#include "error.h"

#define CRN_LAUNCHER_CTRL_FD 3
#define CRN_LAUNCHER_PLAN_FD 4

enum crn_launcher_kind {
    CRN_LAUNCHER_CLONED = 1,
    CRN_LAUNCHER_HOOKS = 2,
    CRN_LAUNCHER_GO = 3,
    CRN_LAUNCHER_FAIL = 4,
    CRN_LAUNCHER_DONE = 5,
};

typedef struct crn_launcher_msg {
    int kind;
    int pid;
    int stage;
    crn_error err;
} crn_launcher_msg;

/* One message, with `fd` attached when it is >= 0. */
int crn_launcher_send(int sock, const crn_launcher_msg *msg, int fd, crn_error *err);

/* One message; `*fd` gets an attached descriptor (close-on-exec) or -1.
 * EOF is EPIPE. */
int crn_launcher_recv(int sock, crn_launcher_msg *msg, int *fd, crn_error *err);

#endif
