#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include "idmap.h"
#include "mnt.h"

int crn_mnt_mount(const char *source, const char *target, const char *fstype,
                  unsigned long flags, const char *data, crn_error *err)
{
    if (mount(source, target, fstype, flags, data) < 0)
        return crn_error_set(err, errno, "mount", target);
    return 0;
}

int crn_mnt_unmount(const char *target, crn_error *err)
{
    while (umount2(target, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
        ;
    /* EINVAL: nothing (more) mounted there; ENOENT: no such path at all. */
    if (errno == EINVAL || errno == ENOENT)
        return 0;
    return crn_error_set(err, errno, "umount2", target);
}

int crn_mnt_idmapped_tree(const char *path, const char *userns_path, int recursive,
                          crn_error *err)
{
    int fd, userns = open(userns_path, O_RDONLY | O_CLOEXEC);
    if (userns < 0)
        return crn_error_set(err, errno, "open", userns_path);
    fd = crn_idmap_tree(path, userns, recursive, err);
    close(userns);
    return fd;
}
