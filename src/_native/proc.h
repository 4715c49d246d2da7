/* Process handles: pidfds and the child-subreaper bit. */
#ifndef CRN_PROC_H
#define CRN_PROC_H

#include "error.h"

/* pidfd_open(2); returns the new fd (close-on-exec) or -1. */
int crn_pidfd_open(int pid, crn_error *err);

/* pidfd_send_signal(2) with no siginfo and no flags. */
int crn_pidfd_send_signal(int pidfd, int sig, crn_error *err);

/* prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants are reparented to us. */
int crn_proc_set_child_subreaper(int on, crn_error *err);

#endif
