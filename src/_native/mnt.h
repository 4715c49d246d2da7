/* mount(2) and umount2(2) for the daemon's own use (pod /dev/shm, overlay
 * rootfs); the container-side mount sequence lives in mounts.c. */
#ifndef CRN_MNT_H
#define CRN_MNT_H

#include "error.h"

int crn_mnt_mount(const char *source, const char *target, const char *fstype,
                  unsigned long flags, const char *data, crn_error *err);

/* Lazily unmount every mount stacked on `target`; nothing mounted is not an error. */
int crn_mnt_unmount(const char *target, crn_error *err);

/* crn_idmap_tree (idmap.h) for the user namespace pinned at `userns_path`:
 * the detached tree's fd. */
int crn_mnt_idmapped_tree(const char *path, const char *userns_path, int recursive,
                          crn_error *err);

#endif
