/* Idmapped mounts (Linux 5.12+): a detached copy of a mount tree whose file
 * owners are seen through a user namespace's id maps.  Header-only so that
 * both the daemon's mount module (mnt.c) and the container child (mounts.c)
 * use it without another object in their builds.  Async-signal-safe. */
#ifndef CRN_IDMAP_H
#define CRN_IDMAP_H

#include <fcntl.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "error.h"

#ifndef __NR_open_tree
#define __NR_open_tree 428
#endif
#ifndef __NR_move_mount
#define __NR_move_mount 429
#endif
#ifndef __NR_mount_setattr
#define __NR_mount_setattr 442
#endif

#define CRN_OPEN_TREE_CLONE 1
#define CRN_OPEN_TREE_CLOEXEC O_CLOEXEC
#define CRN_IDMAP_AT_RECURSIVE 0x8000
#define CRN_MOUNT_ATTR_IDMAP 0x00100000
#define CRN_MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#define CRN_MOVE_MOUNT_T_EMPTY_PATH 0x00000040

struct crn_idmap_attr {
    uint64_t attr_set, attr_clr, propagation, userns_fd;
};

/* A detached clone of the mount at `path` (with its submounts when
 * `recursive`), idmapped through the user namespace `userns_fd`.  Returns the
 * tree's fd (close-on-exec); the caller attaches it with crn_idmap_attach or
 * hands it to a mount as /proc/self/fd/N.  EINVAL from mount_setattr means
 * the filesystem (or one of the submounts) cannot be idmapped. */
static inline int crn_idmap_tree(const char *path, int userns_fd, int recursive, crn_error *err)
{
    int rec = recursive ? CRN_IDMAP_AT_RECURSIVE : 0;
    struct crn_idmap_attr attr = {.attr_set = CRN_MOUNT_ATTR_IDMAP,
                                  .userns_fd = (uint64_t)userns_fd};
    int fd = (int)syscall(__NR_open_tree, AT_FDCWD, path,
                          CRN_OPEN_TREE_CLONE | CRN_OPEN_TREE_CLOEXEC | rec);
    if (fd < 0)
        return crn_error_set(err, errno, "open_tree", path);
    if (syscall(__NR_mount_setattr, fd, "", AT_EMPTY_PATH | rec, &attr, sizeof(attr)) < 0) {
        int saved = errno;
        close(fd);
        return crn_error_set(err, saved, "mount_setattr MOUNT_ATTR_IDMAP", path);
    }
    return fd;
}

/* Attach the detached tree `tree` onto the directory or file `target_fd`
 * (an O_PATH fd); `what` names it in errors. */
static inline int crn_idmap_attach(int tree, int target_fd, const char *what, crn_error *err)
{
    if (syscall(__NR_move_mount, tree, "", target_fd, "",
                CRN_MOVE_MOUNT_F_EMPTY_PATH | CRN_MOVE_MOUNT_T_EMPTY_PATH) < 0)
        return crn_error_set(err, errno, "move_mount", what);
    return 0;
}

#endif
