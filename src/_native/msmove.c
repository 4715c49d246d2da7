/* MS_MOVE instead of pivot_root (called from crn_rootfs_pivot in mounts.c).
 *
 * pivot_root cannot leave a root that is the namespace's first mount (an
 * initramfs host) and runc's --no-pivot asks not to use it.  Then the rootfs
 * is moved onto / and the process chroots into it; the old root stays in the
 * namespace underneath (".." at the root lands on the moved mount again).
 * Before the move every host mount that is neither on the path to the rootfs
 * nor inside it is detached, so the namespace keeps what pivot_root would
 * leave plus the old root mount: no full host procfs/sysfs to license new
 * proc/sysfs mounts in a user namespace (runc and crun detach only those
 * two), no host mount pinned by the container.  Nothing propagates to the
 * host: the mounts on the path are made private and every mount to go a
 * recursive slave first. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "child.h"
#include "cleanup.h"
#include "syscalls.h"

#define CRN_RAMFS_MAGIC 0x858458f6
#define CRN_TMPFS_MAGIC 0x01021994

/* The whole table: some thousand mounts of a busy node fit many times. */
static char mountinfo_buf[4 << 20];

/* Field 5 (the mount point) of the mountinfo line at `line`, unescaped. */
static int mount_point_of(const char *line, char *out, size_t size)
{
    const char *p = line;
    size_t n = 0;

    for (int field = 0; field < 4 && p; field++)
        if ((p = strchr(p, ' ')) != NULL)
            p++;
    if (p == NULL)
        return -1;
    while (*p && *p != ' ') {
        char ch = *p++;
        if (ch == '\\' && p[0] >= '0' && p[0] <= '3' && p[1] >= '0' && p[1] <= '7'
            && p[2] >= '0' && p[2] <= '7') {
            ch = (char)(((p[0] - '0') << 6) | ((p[1] - '0') << 3) | (p[2] - '0'));
            p += 3;
        }
        if (n + 1 >= size)
            return -1;
        out[n++] = ch;
    }
    out[n] = '\0';
    return 0;
}

/* Is `path` strictly below the directory `dir`? */
static int is_below(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    if (strcmp(dir, "/") == 0)
        return path[0] == '/' && path[1] != '\0';
    return strncmp(path, dir, n) == 0 && path[n] == '/';
}

enum { ON_PATH, INSIDE, OTHER };

static int classify(const char *point, const char *rootfs)
{
    if (strcmp(point, "/") == 0 || is_below(rootfs, point))
        return ON_PATH;
    if (strcmp(point, rootfs) == 0 || is_below(point, rootfs))
        return INSIDE;
    return OTHER;
}

/* Still a mount point (and not just a directory under a detached one)? */
static int is_mount_point(const char *path)
{
    char parent[PATH_MAX];
    char *slash;
    size_t n = strlen(path);

    if (n >= sizeof(parent))
        return 1;
    memcpy(parent, path, n + 1);
    slash = strrchr(parent, '/');
    if (slash == parent)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    return crn_mount_id(path) != crn_mount_id(parent);
}

/* Detach one host mount; a locked one (inherited into a user namespace)
 * cannot be, so it is covered with an empty read-only tmpfs. */
static int detach_host_mount(const char *point, crn_error *err)
{
    struct stat st;
    int e;

    if (umount2(point, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
        return 0;
    e = errno;
    if (e != EINVAL && e != EPERM)         /* ENOENT: under one detached before */
        return e == ENOENT ? 0 : crn_error_set(err, e, "umount2", point);
    if (!is_mount_point(point) || lstat(point, &st) < 0 || !S_ISDIR(st.st_mode))
        return 0;
    if (mount("tmpfs", point, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        return crn_error_set(err, errno, "mount tmpfs over", point);
    return 0;
}

/* One pass over the mountinfo lines in buf[0..len): 0 = the mounts on the
 * path made private, 1 = the others made recursive slaves, 2 = those
 * detached. */
static int host_mounts_step(char *buf, size_t len, const char *rootfs, int step,
                            crn_error *err)
{
    char point[PATH_MAX];

    for (char *line = buf; line < buf + len; line += strlen(line) + 1) {
        int kind;
        if (mount_point_of(line, point, sizeof(point)) < 0)
            continue;
        kind = classify(point, rootfs);
        if (step == 0 && kind == ON_PATH && mount(NULL, point, NULL, MS_PRIVATE, NULL) < 0
            && errno != EINVAL && errno != ENOENT)
            return crn_error_set(err, errno, "mount MS_PRIVATE", point);
        if (step == 1 && kind == OTHER
            && mount(NULL, point, NULL, MS_SLAVE | MS_REC, NULL) < 0
            && errno != EINVAL && errno != ENOENT)
            return crn_error_set(err, errno, "mount MS_SLAVE", point);
        if (step == 2 && kind == OTHER && detach_host_mount(point, err) < 0)
            return -1;
    }
    return 0;
}

/* All of /proc/self/mountinfo as NUL-terminated lines in mountinfo_buf. */
static ssize_t read_mountinfo(crn_error *err)
{
    crn_auto_fd fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
    size_t used = 0;
    ssize_t n = 0;

    if (fd < 0)
        return crn_error_set(err, errno, "open", "/proc/self/mountinfo");
    while (used < sizeof(mountinfo_buf)
           && (n = read(fd, mountinfo_buf + used, sizeof(mountinfo_buf) - used)) > 0)
        used += (size_t)n;
    if (n != 0)
        return crn_error_set(err, n < 0 ? errno : E2BIG, "read", "/proc/self/mountinfo");
    for (size_t i = 0; i < used; i++)
        if (mountinfo_buf[i] == '\n')
            mountinfo_buf[i] = '\0';
    return (ssize_t)used;
}

static int detach_host_mounts(const char *rootfs, crn_error *err)
{
    ssize_t len = read_mountinfo(err);

    if (len < 0)
        return -1;
    for (int step = 0; step < 3; step++)
        if (host_mounts_step(mountinfo_buf, (size_t)len, rootfs, step, err) < 0)
            return -1;
    return 0;
}

/* With the rootfs as cwd: detach the host's mounts, move the rootfs onto /
 * and chroot into it (runc's msMoveRoot). */
int crn_move_root(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;

    if (crn_plan_find(c->plan, c->len, CRN_PLAN_ROOTFS, &rec)
        && detach_host_mounts((const char *)rec.data, err) < 0)
        return -1;
    if (mount(".", "/", NULL, MS_MOVE, NULL) < 0)
        return crn_error_set(err, errno, "mount MS_MOVE", "/");
    if (chroot(".") < 0)
        return crn_error_set(err, errno, "chroot", ".");
    if (chdir("/") < 0)
        return crn_error_set(err, errno, "chdir", "/");
    crn_close_fdp(&c->rootfd);
    return 0;
}

/* pivot_root failed with `e`: is / an initramfs, whose root mount has no
 * parent?  Its rootfs is ramfs, or tmpfs where the kernel has tmpfs. */
int crn_on_initramfs(int e)
{
    struct statfs st;
    return e == EINVAL && statfs("/", &st) == 0
        && (st.f_type == CRN_RAMFS_MAGIC || st.f_type == CRN_TMPFS_MAGIC);
}
