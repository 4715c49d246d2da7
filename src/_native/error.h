/* The one error contract for crio-native's C code.
 *
 * Every fallible function takes a `crn_error *` as its last argument, returns a
 * negative value on failure and fills the error with the errno and a message of
 * the form "syscall `path`".  Nothing here allocates, so the same contract is
 * usable between clone and execve, where only async-signal-safe code may run. */
#ifndef CRN_ERROR_H
#define CRN_ERROR_H

#include <errno.h>

#define CRN_ERROR_MSG_MAX 512

typedef struct crn_error {
    int err;                        /* errno of the failed call, 0 if none */
    char msg[CRN_ERROR_MSG_MAX];    /* "syscall `path`" or "syscall" */
} crn_error;

/* Record a failure and return -1.  `path` may be NULL.  Async-signal-safe. */
int crn_error_set(crn_error *e, int err, const char *syscall_name, const char *path);

/* Clear an error before reuse. */
void crn_error_clear(crn_error *e);

#endif
