/* The launch plan: a flat, serialized list of records that Python builds from
 * an OCI bundle and C walks between clone and execve.
 *
 * The same bytes are handed to crn_launch() by the daemon and (later) read from
 * a file by the per-container monitor, so the format is defined here once and
 * nothing in it is a pointer.
 *
 * Layout (integers in host byte order, no padding, no alignment):
 *
 *     "CRNPLAN1"                       8-byte magic, also the format version
 *     record*                          until the end of the buffer
 *
 *     record  = u16 type, u16 zero, u32 payload_len, payload[payload_len]
 *
 * A payload is the fields listed for its type below, in that order:
 *     I = u32, i = s32, Q = u64, s = NUL-terminated string,
 *     b = the rest of the payload as raw bytes (last field only),
 *     G = u32 count followed by that many u32 (last field only).
 *
 * Records of one type keep their order (mounts run in spec order); types are
 * walked in the fixed order of the child's steps, not in buffer order.
 * crn_plan_validate() checks framing and every field once, in the parent, so
 * the child's readers need no bounds checks. */
#ifndef CRN_PLAN_H
#define CRN_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define CRN_PLAN_MAGIC "CRNPLAN1"
#define CRN_PLAN_MAGIC_LEN 8
#define CRN_PLAN_HEADER_LEN 8       /* u16 type, u16 zero, u32 len */

enum crn_plan_type {
    CRN_PLAN_NS_NEW = 1,            /* I clone flags (CLONE_NEW*) */
    CRN_PLAN_NS_JOIN = 2,           /* I nstype, s path */
    CRN_PLAN_ID_MAP = 3,            /* I 0=uid 1=gid, I inside, I outside, I count */
    CRN_PLAN_ROOTFS = 10,           /* s absolute host path of the rootfs */
    CRN_PLAN_ROOT_PROPAGATION = 11, /* Q MS_* propagation flags for "/" */
    CRN_PLAN_ROOT_READONLY = 12,    /* (empty) */
    CRN_PLAN_MOUNT = 13,            /* Q flags, Q propagation, I kind, s source,
                                       s destination, s fstype, s data */
    CRN_PLAN_DEVICE = 14,           /* I mode (with S_IF*), I major, I minor, I uid,
                                       I gid, s path */
    CRN_PLAN_SYMLINK = 15,          /* s target, s link path */
    CRN_PLAN_MASK = 16,             /* s path */
    CRN_PLAN_READONLY_PATH = 17,    /* s path */
    CRN_PLAN_HOSTNAME = 20,         /* s */
    CRN_PLAN_DOMAINNAME = 21,       /* s */
    CRN_PLAN_RLIMIT = 22,           /* I resource, Q soft, Q hard */
    CRN_PLAN_OOM_SCORE_ADJ = 23,    /* i */
    CRN_PLAN_UMASK = 24,            /* I */
    CRN_PLAN_USER = 25,             /* I uid, I gid, G additional gids */
    CRN_PLAN_CAPS = 26,             /* Q bounding, Q effective, Q permitted,
                                       Q inheritable, Q ambient, I last_cap */
    CRN_PLAN_NO_NEW_PRIVS = 27,     /* (empty) */
    CRN_PLAN_CWD = 28,              /* s */
    CRN_PLAN_ARG = 29,              /* s, one record per argv entry */
    CRN_PLAN_ENV = 30,              /* s, one record per "KEY=value" */
    CRN_PLAN_SECCOMP = 31,          /* I seccomp(2) flags, b struct sock_filter[] */
    CRN_PLAN_BARRIER = 32,          /* s path of the start fifo */
    CRN_PLAN_CGROUP_PROCS = 33,     /* s a cgroup.procs file the parent writes the
                                       child's pid to before letting it go */
    CRN_PLAN_CGROUP_INTO = 34,      /* s a cgroup v2 directory the child is
                                       cloned into (clone3 CLONE_INTO_CGROUP) */
    CRN_PLAN_SYSCTL = 35,           /* s key as a path below /proc/sys, s value */
    CRN_PLAN_HOOK_PAUSE = 36,       /* (empty) stop before pivot_root until the
                                       parent has run its hooks */
    CRN_PLAN_CONTROLLING_TTY = 37,  /* (empty) stdin is a pty slave: make it the
                                       controlling terminal of the new session */
    CRN_PLAN_SELINUX_LABEL = 40,    /* s SELinux context for the execve, written to
                                       /proc/thread-self/attr/exec as the last step */
    CRN_PLAN_PERSONALITY = 41,      /* I personality(2) persona (domain | flags) */
    CRN_PLAN_START_HOOK = 42,       /* I timeout in seconds (0: none), I argc, s path,
                                       b argc NUL-terminated args, then the env
                                       ("KEY=value"), each NUL-terminated;
                                       one record per startContainer hook, in order */
    CRN_PLAN_START_RESULT = 43,     /* s fifo the child opens (O_RDWR) before
                                       pivot_root; a failing startContainer hook
                                       is reported there (crn_hook_result) */
    CRN_PLAN_CONSOLE = 44,          /* (empty) allocate a pty from the container's
                                       /dev/ptmx, make its slave stdio and the
                                       controlling tty, send the master to the
                                       parent (SCM_RIGHTS, CRN_SYNC_CONSOLE) */
    CRN_PLAN_SECCOMP_LISTENER = 45, /* s linux.seccomp.listenerPath, b the container
                                       process state JSON in parts, each
                                       NUL-terminated: the process's pid (as the
                                       parent sees it) goes between consecutive
                                       parts.  The child connects before joining
                                       or building the container's mounts and,
                                       once the filter (flag NEW_LISTENER) is
                                       loaded, sends the JSON and the notify fd */
};

/* At most this many parts in a CRN_PLAN_SECCOMP_LISTENER record. */
#define CRN_LISTENER_MAX_PARTS 4

/* Records of the rootfs/mount part, numbered apart from the others. */
enum crn_plan_type_mounts {
    CRN_PLAN_NO_PIVOT = 60,         /* (empty) move the rootfs onto / (MS_MOVE) and
                                       chroot instead of pivot_root (--no-pivot);
                                       also done when pivot_root fails on an
                                       initramfs root */
    CRN_PLAN_MOUNT_LABEL = 61,      /* s linux.mountLabel for what the child mounts
                                       itself (the tmpfs over masked directories)
                                       and for CRN_MOUNT_LABEL_XATTR mounts */
    CRN_PLAN_CHROOT = 62,           /* s rootfs: no mount namespace of its own (the
                                       runtime's, or a joined one, is used as it
                                       is): chroot into it, no mount is made */
};

/* Records of the Linux security modules other than SELinux, numbered apart. */
enum crn_plan_type_lsm {
    CRN_PLAN_APPARMOR = 70,         /* s process.apparmorProfile, written as
                                       "exec NAME" to /proc/self/attr/apparmor/exec
                                       (or attr/exec) before the barrier */
    CRN_PLAN_LANDLOCK = 71,         /* I ABI, Q handled fs rights, Q handled net
                                       rights (ABI 4), Q scopes (ABI 6): the
                                       container's Landlock ruleset */
    CRN_PLAN_LANDLOCK_PATH = 72,    /* Q fs rights granted beneath, s path (in the
                                       container); one record per rule */
    CRN_PLAN_LANDLOCK_PORT = 73,    /* Q net rights granted, Q TCP port */
};

/* At most this long a CRN_PLAN_MOUNT_LABEL. */
#define CRN_LABEL_MAX 4096

/* At most this many args + env strings in one CRN_PLAN_START_HOOK. */
#define CRN_HOOK_MAX_STRS 256
/* The state JSON `start` writes to the barrier fifo when the plan has
 * startContainer hooks is at most this long. */
#define CRN_START_STATE_MAX (256 * 1024)

/* Written to the CRN_PLAN_START_RESULT fifo when a startContainer hook fails;
 * the process then exits 1 without running the user program. */
enum crn_hook_failure {
    CRN_HOOK_EXIT = 1,              /* value: exit status */
    CRN_HOOK_SIGNAL = 2,            /* value: signal number */
    CRN_HOOK_TIMEOUT = 3,           /* value: the timeout in seconds */
    CRN_HOOK_START = 4,             /* value: errno of starting it (stat, pipe,
                                       clone) */
    CRN_HOOK_STATE = 5,             /* value: errno of reading the state JSON */
};

typedef struct crn_hook_result {
    int32_t index;                  /* which hook, from 0 */
    int32_t kind;                   /* enum crn_hook_failure */
    int32_t value;
} crn_hook_result;

/* CRN_PLAN_MOUNT kinds: how the child performs the mount. */
enum crn_mount_kind {
    CRN_MOUNT_FS = 0,               /* mount(source, dest, fstype, flags, data) */
    CRN_MOUNT_BIND = 1,             /* bind (MS_REC in flags for rbind), then
                                       remount with the other flags if any */
    CRN_MOUNT_DEST_FILE = 0x100,    /* or'ed in: create the destination as a
                                       file (bind of a non-directory) */
    CRN_MOUNT_RRO = 0x200,          /* or'ed in: then make the mount and every
                                       mount below it read-only (mount_setattr) */
    CRN_MOUNT_LABEL_XATTR = 0x400,  /* or'ed in: then set security.selinux of its
                                       root to the CRN_PLAN_MOUNT_LABEL (mqueue) */
    CRN_MOUNT_IDMAP = 0x800,        /* or'ed in (binds): an idmapped mount through
                                       the joined user namespace (KEP-127),
                                       made while still the host's root */
};

typedef struct crn_plan_rec {
    uint16_t type;
    uint32_t len;
    const unsigned char *data;
} crn_plan_rec;

typedef struct crn_plan_iter {
    const unsigned char *p;
    const unsigned char *end;
} crn_plan_iter;

/* Reads the fields of one record in order.  Only for validated plans. */
typedef struct crn_plan_cur {
    const unsigned char *p;
    const unsigned char *end;
} crn_plan_cur;

/* Check the magic, the framing, that every type is known and that every
 * payload holds exactly the fields its type lists. */
int crn_plan_validate(const void *buf, size_t len, crn_error *err);

void crn_plan_iter_init(crn_plan_iter *it, const void *buf, size_t len);
/* Next record of `type` (0: any type); 1 when found, 0 at the end. */
int crn_plan_next(crn_plan_iter *it, uint16_t type, crn_plan_rec *rec);
/* First record of `type`, or 0 if the plan has none. */
int crn_plan_find(const void *buf, size_t len, uint16_t type, crn_plan_rec *rec);
size_t crn_plan_count(const void *buf, size_t len, uint16_t type);

void crn_plan_cur_init(crn_plan_cur *c, const crn_plan_rec *rec);
uint32_t crn_cur_u32(crn_plan_cur *c);
int32_t crn_cur_s32(crn_plan_cur *c);
uint64_t crn_cur_u64(crn_plan_cur *c);
const char *crn_cur_str(crn_plan_cur *c);
/* The rest of the payload. */
const void *crn_cur_rest(crn_plan_cur *c, size_t *len);

#endif
