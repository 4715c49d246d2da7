/* Linux namespaces: create, join, pin to a path, unpin. */
#ifndef CRN_NS_H
#define CRN_NS_H

#include "error.h"

/* unshare(2) the namespaces in `flags` (CLONE_NEW*) for the calling thread. */
int crn_ns_unshare(int flags, crn_error *err);

/* Join the namespace whose nsfs file is at `path`; `nstype` is a CLONE_NEW*
 * flag the file must match, or 0 to accept any type. */
int crn_ns_join(const char *path, int nstype, crn_error *err);

/* Keep the namespace at `ns_path` (e.g. /proc/PID/ns/net) alive after its last
 * process exits by bind-mounting it onto `pin_path`, which is created as an
 * empty file (mode 0444) if missing.  On failure nothing is left at pin_path
 * that this call created. */
int crn_ns_pin(const char *ns_path, const char *pin_path, crn_error *err);

/* Undo crn_ns_pin: lazily unmount `pin_path` and remove the file.  A path that
 * is not there is not an error, so unpin may be retried after a crash. */
int crn_ns_unpin(const char *pin_path, crn_error *err);

#endif

/* Create new namespaces of the kinds in `names` (nsfs names: "net", "ipc",
 * "uts") without any process to hold them: a short-lived thread unshares them
 * and pins each onto the matching entry of `paths`, then exits.  No fork, so
 * it is safe in the multi-threaded daemon.  All or nothing: on failure every
 * pin already made is undone. */
int crn_ns_create_pinned(const char *const *names, const char *const *paths, int count,
                         crn_error *err);

/* Like crn_ns_create_pinned, with "user" among `names`: the other namespaces
 * are made inside (owned by) a new user namespace whose maps are `uid_map`
 * and `gid_map` ("inside outside count\n" lines).  A user namespace cannot be
 * made by a thread of a multi-threaded process, so a short-lived child holds
 * them while they are mapped and pinned; it runs no code but a read and
 * _exit.  All or nothing. */
int crn_ns_create_pinned_userns(const char *const *names, const char *const *paths, int count,
                                const char *uid_map, const char *gid_map, crn_error *err);
