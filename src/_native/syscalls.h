/* Raw syscall numbers for calls that older libcs do not wrap.  The numbers are
 * the kernel's (they are the same on x86_64 and aarch64 for these calls since
 * they were added after the syscall tables were unified). */
#ifndef CRN_SYSCALLS_H
#define CRN_SYSCALLS_H

#include <sys/syscall.h>

#ifndef __NR_pidfd_send_signal
#define __NR_pidfd_send_signal 424
/* close_range(2)'s flag, for headers older than the call. */
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#endif
#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
/* close_range(2)'s flag, for headers older than the call. */
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#endif
#ifndef __NR_clone3
#define __NR_clone3 435
/* close_range(2)'s flag, for headers older than the call. */
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#endif
#ifndef __NR_close_range
#define __NR_close_range 436
/* close_range(2)'s flag, for headers older than the call. */
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#endif
#ifndef __NR_openat2
#define __NR_openat2 437
/* close_range(2)'s flag, for headers older than the call. */
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#endif
#ifndef __NR_mount_setattr
#define __NR_mount_setattr 442
/* close_range(2)'s flag, for headers older than the call. */
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#endif

/* close_range(2)'s flag, for headers older than the call. */
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#endif
