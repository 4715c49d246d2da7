/* The container's mount tree: rootfs bind, spec mounts, devices, pivot_root,
 * masked and read-only paths.
 *
 * Destinations are resolved with openat2(RESOLVE_IN_ROOT) against the rootfs,
 * so a symlink inside the image can never send a mount outside it, and the
 * mount goes onto the resolved fd through /proc/self/fd (the host's procfs is
 * still visible before pivot_root). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <poll.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "child.h"
#include "cleanup.h"
#include "idmap.h"
#include "syscalls.h"

#define RESOLVE_FLAGS (RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)

static int open_in_root(int rootfd, const char *path, int flags)
{
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = (uint64_t)(flags | O_CLOEXEC);
    how.resolve = RESOLVE_FLAGS;
    return (int)syscall(__NR_openat2, rootfd, path, &how, sizeof(how));
}

/* Rewrite buf, where buf[start..end) names a dangling symlink under `cur`,
 * as the symlink's target followed by the rest of the path, so the walk can
 * create what the link points to (inside the root, like the kernel would
 * resolve it there). */
static int follow_dangling(int cur, char *buf, size_t start, size_t end, crn_error *err)
{
    char target[PATH_MAX], out[PATH_MAX], name[NAME_MAX + 1];
    const char *rest = buf + end;
    size_t used = 0, rlen = strlen(rest);
    if (end - start > NAME_MAX)
        return crn_error_set(err, ENAMETOOLONG, "readlinkat", buf);
    memcpy(name, buf + start, end - start);
    name[end - start] = '\0';
    ssize_t n = readlinkat(cur, name, target, sizeof(target) - 1);
    if (n < 0)
        return crn_error_set(err, errno, "readlinkat", buf);
    target[n] = '\0';
    if (target[0] != '/') {
        memcpy(out, buf, start);
        used = start;
    }
    if (used + (size_t)n + rlen + 2 >= sizeof(out))
        return crn_error_set(err, ENAMETOOLONG, "readlinkat", buf);
    memcpy(out + used, target, (size_t)n);
    used += (size_t)n;
    out[used++] = '/';
    memcpy(out + used, rest, rlen + 1);
    memcpy(buf, out, used + rlen + 1);
    return 0;
}

/* Create the missing component buf[start..] under `cur`: a directory, or
 * (as_file) an empty file. */
static int create_component(int cur, const char *buf, size_t start, int as_file, crn_error *err)
{
    int rc;
    if (as_file) {
        rc = openat(cur, buf + start, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (rc >= 0)
            close(rc);
    } else {
        rc = mkdirat(cur, buf + start, 0755);
    }
    if (rc < 0 && errno != EEXIST)
        return crn_error_set(err, errno, as_file ? "open" : "mkdirat", buf);
    return 0;
}

/* Open `path` inside the root, creating missing components: directories on
 * the way and, last, a directory or (as_file) an empty file.  Each new entry
 * is made under an fd already resolved inside the root; a dangling symlink
 * is followed (at most 40 times) so its target is created instead. */
static int ensure_in_root(int rootfd, const char *path, int as_file, crn_error *err)
{
    char buf[PATH_MAX];
    size_t len = strlen(path), i = 0;
    int hops = 0;
    crn_auto_fd cur = -1;

    if (len >= sizeof(buf))
        return crn_error_set(err, ENAMETOOLONG, "openat2", path);
    memcpy(buf, path, len + 1);
restart:
    crn_close_fdp(&cur);
    cur = open_in_root(rootfd, "/", O_PATH | O_DIRECTORY);
    if (cur < 0)
        return crn_error_set(err, errno, "openat2", "/");
    for (i = 0; buf[i];) {
        struct stat st;
        while (buf[i] == '/')
            i++;
        if (buf[i] == '\0')
            break;
        size_t start = i;
        while (buf[i] && buf[i] != '/')
            i++;
        char saved = buf[i];
        int last = buf[i + strspn(buf + i, "/")] == '\0';
        buf[i] = '\0';
        int next = open_in_root(rootfd, buf, O_PATH);
        if (next < 0 && errno == ENOENT) {
            if (fstatat(cur, buf + start, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
                buf[i] = saved;
                if (++hops > 40)
                    return crn_error_set(err, ELOOP, "openat2", path);
                if (follow_dangling(cur, buf, start, i, err) < 0)
                    return -1;
                goto restart;
            }
            if (create_component(cur, buf, start, last && as_file, err) < 0)
                return -1;
            next = open_in_root(rootfd, buf, O_PATH);
        }
        if (next < 0)
            return crn_error_set(err, errno, "openat2", buf);
        buf[i] = saved;
        close(cur);
        cur = next;
    }
    return crn_steal_fd(&cur);
}

static int mount_at_fd(const char *src, int fd, const char *fstype, unsigned long flags,
                       const char *data, const char *what, crn_error *err)
{
    char target[32];
    crn_fd_path(target, fd);
    if (mount(src, target, fstype, flags, data) < 0)
        return crn_error_set(err, errno, "mount", what);
    return 0;
}

/* Remount flags or change propagation on what is now mounted at `dest`:
 * reopen it so the fd names the new mount, not the one underneath. */
/* In a user namespace the flags a mount came with from the host (nosuid,
 * nodev, noexec, atime) are locked: a remount must repeat them or get EPERM.
 * statfs(2) reports them; ST_RELATIME is the one bit that differs. */
static unsigned long locked_flags(const struct statfs *st)
{
    unsigned long f = st->f_flags & (MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME
                                     | MS_NODIRATIME);
    if (st->f_flags & ST_RELATIME)
        f |= MS_RELATIME;
    return f;
}

/* Remount `target` (a path, or /proc/self/fd/N before pivot_root). */
static int remount(const char *target, unsigned long flags, const char *what, crn_error *err)
{
    struct statfs st;
    if (mount(NULL, target, NULL, flags, NULL) == 0)
        return 0;
    if (errno != EPERM || !(flags & MS_REMOUNT) || statfs(target, &st) < 0)
        return crn_error_set(err, errno, "mount", what);
    if (mount(NULL, target, NULL, flags | locked_flags(&st), NULL) < 0)
        return crn_error_set(err, errno, "mount", what);
    return 0;
}

static int adjust_mount(int rootfd, const char *dest, unsigned long flags, crn_error *err)
{
    char target[32];
    crn_auto_fd fd = open_in_root(rootfd, dest, O_PATH);
    if (fd < 0)
        return crn_error_set(err, errno, "openat2", dest);
    crn_fd_path(target, fd);
    return remount(target, flags, dest, err);
}

static int apply_propagation(int rootfd, const char *dest, uint64_t prop, crn_error *err)
{
    static const unsigned long kinds[] = {MS_SHARED, MS_SLAVE, MS_PRIVATE, MS_UNBINDABLE};
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        if (!(prop & kinds[k]))
            continue;
        if (adjust_mount(rootfd, dest, kinds[k] | (prop & MS_REC), err) < 0)
            return -1;
    }
    return 0;
}

/* struct mount_attr and its constants (linux/mount.h), kept here so the
 * file builds against older kernel headers too. */
struct crn_mount_attr {
    uint64_t attr_set, attr_clr, propagation, userns_fd;
};
#define CRN_MOUNT_ATTR_RDONLY 0x00000001
#define CRN_AT_RECURSIVE 0x8000

/* "rro": MS_RDONLY on a bind only covers its top mount; mount_setattr
 * (5.12+) with AT_RECURSIVE covers the submounts a rbind brought along. */
static int make_recursively_readonly(int rootfd, const char *dest, crn_error *err)
{
    struct crn_mount_attr attr = {.attr_set = CRN_MOUNT_ATTR_RDONLY};
    crn_auto_fd fd = open_in_root(rootfd, dest, O_PATH);

    if (fd < 0)
        return crn_error_set(err, errno, "openat2", dest);
    if (syscall(__NR_mount_setattr, fd, "", AT_EMPTY_PATH | CRN_AT_RECURSIVE, &attr,
                sizeof(attr)) < 0)
        return crn_error_set(err, errno, "mount_setattr", dest);
    return 0;
}

/* The plan's linux.mountLabel, or NULL. */
static const char *mount_label(const crn_child *c)
{
    crn_plan_rec rec;
    return crn_plan_find(c->plan, c->len, CRN_PLAN_MOUNT_LABEL, &rec)
        ? (const char *)rec.data : NULL;
}

/* mqueue takes no context= option and a pod's containers may mount one
 * superblock again (a shared IPC namespace): its root is labelled with
 * setxattr instead, as runc's label.SetFileLabel does. */
static int label_mount_root(crn_child *c, const char *dest, crn_error *err)
{
    const char *label = mount_label(c);
    char target[32];
    crn_auto_fd fd = -1;

    if (label == NULL)
        return 0;
    fd = open_in_root(c->rootfd, dest, O_PATH);
    if (fd < 0)
        return crn_error_set(err, errno, "openat2", dest);
    crn_fd_path(target, fd);
    if (setxattr(target, "security.selinux", label, strlen(label), 0) < 0)
        return crn_error_set(err, errno, "setxattr security.selinux", dest);
    return 0;
}

/* A bind whose files show through the user namespace the container joins
 * (the pod's, KEP-127): made while we are still the host's root, which
 * mount_setattr needs, and attached where a plain bind would go. */
static int idmapped_bind(crn_child *c, const char *src, int dest_fd, int recursive,
                         const char *dest, crn_error *err)
{
    crn_auto_fd tree = -1;
    if (c->userns_fd < 0)
        return crn_error_set(err, EINVAL, "idmapped mount without a joined user namespace", dest);
    tree = crn_idmap_tree(src, c->userns_fd, recursive, err);
    if (tree < 0)
        return -1;
    return crn_idmap_attach(tree, dest_fd, dest, err);
}

static int apply_mount(crn_child *c, const crn_plan_rec *rec, crn_error *err)
{
    crn_plan_cur cur;
    crn_plan_cur_init(&cur, rec);
    uint64_t flags = crn_cur_u64(&cur), prop = crn_cur_u64(&cur);
    uint32_t kind = crn_cur_u32(&cur);
    const char *src = crn_cur_str(&cur), *dest = crn_cur_str(&cur);
    const char *fstype = crn_cur_str(&cur), *data = crn_cur_str(&cur);
    int bind = (kind & 0xff) == CRN_MOUNT_BIND;
    crn_auto_fd fd = ensure_in_root(c->rootfd, dest, kind & CRN_MOUNT_DEST_FILE, err);

    if (fd < 0)
        return -1;
    if (bind) {
        uint64_t rest = flags & ~(uint64_t)(MS_BIND | MS_REC | MS_REMOUNT);
        if (kind & CRN_MOUNT_IDMAP) {
            if (idmapped_bind(c, src, fd, flags & MS_REC, dest, err) < 0)
                return -1;
        } else if (mount_at_fd(src, fd, NULL, MS_BIND | (flags & MS_REC), NULL, dest, err) < 0)
            return -1;
        if (rest && adjust_mount(c->rootfd, dest, MS_BIND | MS_REMOUNT | rest, err) < 0)
            return -1;
    } else if (mount_at_fd(src, fd, fstype, flags, *data ? data : NULL, dest, err) < 0) {
        return -1;
    }
    if (apply_propagation(c->rootfd, dest, prop, err) < 0)
        return -1;
    if ((kind & CRN_MOUNT_LABEL_XATTR) && label_mount_root(c, dest, err) < 0)
        return -1;
    return (kind & CRN_MOUNT_RRO) ? make_recursively_readonly(c->rootfd, dest, err) : 0;
}

/* The start fifo lives on the host: open it while the host is visible.
 * Opening for reading without a writer does not block; poll() later waits
 * for `start` to write. */
/* Opened before any namespace is joined (crn_barrier_open): the fifo is a
 * host path, which a joined mount namespace may not show. */
static int open_barrier(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    if (c->fifo_fd >= 0 || !crn_plan_find(c->plan, c->len, CRN_PLAN_BARRIER, &rec))
        return 0;
    c->fifo_fd = open((const char *)rec.data, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (c->fifo_fd < 0)
        return crn_error_set(err, errno, "open", (const char *)rec.data);
    /* Held for reading and writing so the open never blocks; `start` reads
     * EOF once this fd is gone, at execve (close-on-exec) or at exit. */
    if (crn_plan_find(c->plan, c->len, CRN_PLAN_START_RESULT, &rec)) {
        c->result_fd = open((const char *)rec.data, O_RDWR | O_CLOEXEC);
        if (c->result_fd < 0)
            return crn_error_set(err, errno, "open", (const char *)rec.data);
    }
    return 0;
}

int crn_barrier_open(crn_child *c, crn_error *err)
{
    return open_barrier(c, err);
}

/* The mount id of `path`, or 0 where statx cannot tell (before 5.8). */
uint64_t crn_mount_id(const char *path)
{
    struct statx stx;

    if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &stx) < 0
        || !(stx.stx_mask & STATX_MNT_ID))
        return 0;
    return stx.stx_mnt_id;
}

/* pivot_root refuses a new root whose parent mount is shared (EINVAL), and
 * a bind mount copies its source's propagation.  So unless the whole tree
 * was made rslave, the mount holding the rootfs is made private (a slave
 * for "slave": `flag`), that mount alone, not recursively: its other
 * children keep propagating, before the rootfs is bound onto itself, as
 * runc does; so is the namespace's root mount.  The mount point is found by walking up from the rootfs while the
 * mount id stays the same. */
static int make_rootfs_parent_private(const char *rootfs, unsigned long flag, crn_error *err)
{
    char path[PATH_MAX], up[PATH_MAX];
    uint64_t id = crn_mount_id(rootfs);
    size_t len = strlen(rootfs);

    if (len >= sizeof(path))
        return crn_error_set(err, ENAMETOOLONG, "mount", rootfs);
    memcpy(path, rootfs, len + 1);
    while (id != 0 && strcmp(path, "/") != 0) {
        char *slash;

        memcpy(up, path, strlen(path) + 1);
        slash = strrchr(up, '/');
        if (slash == up)
            up[1] = '\0';
        else
            *slash = '\0';
        if (crn_mount_id(up) != id)
            break;
        memcpy(path, up, strlen(up) + 1);
    }
    if (id == 0)
        memcpy(path, "/", 2);
    if (mount(NULL, path, NULL, flag, NULL) < 0)
        return crn_error_set(err, errno, "mount", path);
    /* pivot_root also refuses a shared root mount of the namespace */
    if (strcmp(path, "/") != 0 && mount(NULL, "/", NULL, flag, NULL) < 0)
        return crn_error_set(err, errno, "mount", "/");
    return 0;
}

/* A plan without a rootfs (a process joining a running container's mount
 * namespace) skips every step of the mount tree. */
int crn_rootfs_prepare(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    uint64_t prop = MS_SLAVE | MS_REC;
    const char *rootfs;

    if (open_barrier(c, err) < 0)
        return -1;
    if (!crn_plan_find(c->plan, c->len, CRN_PLAN_ROOTFS, &rec))
        return 0;
    rootfs = (const char *)rec.data;
    if (crn_plan_find(c->plan, c->len, CRN_PLAN_ROOT_PROPAGATION, &rec))
        memcpy(&prop, rec.data, 8);
    /* an unbindable tree could not be bound from: the rootfs is bound off an
     * rslave one and "/" made unbindable after pivot_root (root_propagation) */
    if (prop & MS_UNBINDABLE)
        prop = MS_SLAVE | MS_REC;
    if (mount(NULL, "/", NULL, prop, NULL) < 0)
        return crn_error_set(err, errno, "mount", "/");
    /* A non-recursive propagation can leave the mount holding the rootfs
     * shared: it becomes private, or a slave for "slave" (so the rootfs
     * bound from it is a slave of the same master: master:N inside). */
    if (prop != (MS_SLAVE | MS_REC)
        && make_rootfs_parent_private(rootfs, (prop & MS_SLAVE) ? MS_SLAVE : MS_PRIVATE, err) < 0)
        return -1;
    if (mount(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
        return crn_error_set(err, errno, "mount", rootfs);
    c->rootfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (c->rootfd < 0)
        return crn_error_set(err, errno, "open", rootfs);
    return 0;
}

int crn_mounts_apply(crn_child *c, crn_error *err)
{
    crn_plan_iter it;
    crn_plan_rec rec;
    if (c->rootfd < 0)
        return 0;
    crn_plan_iter_init(&it, c->plan, c->len);
    while (crn_plan_next(&it, CRN_PLAN_MOUNT, &rec))
        if (apply_mount(c, &rec, err) < 0)
            return -1;
    /* Like runc, a missing cwd is created (inside the root) rather than
     * failing the container. */
    if (crn_plan_find(c->plan, c->len, CRN_PLAN_CWD, &rec)) {
        int fd = ensure_in_root(c->rootfd, (const char *)rec.data, 0, err);
        if (fd < 0)
            return -1;
        close(fd);
    }
    return 0;
}

/* Split `path` into an fd for its parent (created inside the root if
 * missing) and its last component, which points into `path`. */
static int parent_in_root(int rootfd, const char *path, char *dir, const char **name,
                          crn_error *err)
{
    const char *slash = strrchr(path, '/');
    size_t dlen = slash ? (size_t)(slash - path) : 0;
    if (dlen >= PATH_MAX)
        return crn_error_set(err, ENAMETOOLONG, "openat2", path);
    memcpy(dir, path, dlen);
    dir[dlen] = '\0';
    *name = slash ? slash + 1 : path;
    return ensure_in_root(rootfd, dlen ? dir : "/", 0, err);
}

/* parent_in_root, reopened as a real directory fd: O_PATH fds do not work
 * with mknodat or symlinkat. */
static int parent_dir_in_root(int rootfd, const char *path, char *dir, const char **name,
                              crn_error *err)
{
    crn_auto_fd pfd = parent_in_root(rootfd, path, dir, name, err);
    int dfd;

    if (pfd < 0)
        return -1;
    dfd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return crn_error_set(err, errno, "open", dir);
    return dfd;
}

static int make_device(int rootfd, const crn_plan_rec *rec, crn_error *err)
{
    char dir[PATH_MAX];
    const char *name;
    crn_plan_cur cur;
    crn_plan_cur_init(&cur, rec);
    uint32_t mode = crn_cur_u32(&cur), major = crn_cur_u32(&cur), minor = crn_cur_u32(&cur);
    uint32_t uid = crn_cur_u32(&cur), gid = crn_cur_u32(&cur);
    const char *path = crn_cur_str(&cur);
    crn_auto_fd dfd = parent_dir_in_root(rootfd, path, dir, &name, err);
    if (dfd < 0)
        return -1;
    if (mknodat(dfd, name, mode, makedev(major, minor)) < 0) {
        if (errno == EEXIST)
            return 0;
        return crn_error_set(err, errno, "mknod", path);
    }
    if (fchownat(dfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
        return crn_error_set(err, errno, "chown", path);
    if (fchmodat(dfd, name, mode & 07777, 0) < 0)
        return crn_error_set(err, errno, "chmod", path);
    return 0;
}

static int make_symlink(int rootfd, const crn_plan_rec *rec, crn_error *err)
{
    char dir[PATH_MAX];
    const char *name;
    crn_plan_cur cur;
    crn_plan_cur_init(&cur, rec);
    const char *target = crn_cur_str(&cur), *path = crn_cur_str(&cur);
    crn_auto_fd dfd = parent_dir_in_root(rootfd, path, dir, &name, err);
    if (dfd < 0)
        return -1;
    if (symlinkat(target, dfd, name) < 0 && errno != EEXIST)
        return crn_error_set(err, errno, "symlink", path);
    return 0;
}

int crn_devices_apply(crn_child *c, crn_error *err)
{
    crn_plan_iter it;
    crn_plan_rec rec;
    if (c->rootfd < 0)
        return 0;
    crn_plan_iter_init(&it, c->plan, c->len);
    while (crn_plan_next(&it, 0, &rec)) {
        int rc = 0;
        if (rec.type == CRN_PLAN_DEVICE)
            rc = make_device(c->rootfd, &rec, err);
        else if (rec.type == CRN_PLAN_SYMLINK)
            rc = make_symlink(c->rootfd, &rec, err);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* linux.rootfsPropagation, once more on the container's own root after
 * pivot_root, so that it is what the container sees on "/" (shared:N,
 * master:N or unbindable in its mountinfo): before, it went to the tree the
 * rootfs was bound from, and the bind of a shared rootfs is made from a
 * private parent.  "/" alone: the mounts below it keep the propagation
 * their spec gave them (a Bidirectional volume stays shared with the host). */
static int root_propagation(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    uint64_t prop;

    if (!crn_plan_find(c->plan, c->len, CRN_PLAN_ROOT_PROPAGATION, &rec))
        return 0;
    memcpy(&prop, rec.data, 8);
    if (mount(NULL, "/", NULL, prop & ~(uint64_t)MS_REC, NULL) < 0)
        return crn_error_set(err, errno, "mount", "/ (rootfsPropagation)");
    return 0;
}

/* No mount namespace of the container's own: chroot into the rootfs (as
 * runc does without one), nothing mounted, pivoted or moved. */
static int chroot_only(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;

    if (!crn_plan_find(c->plan, c->len, CRN_PLAN_CHROOT, &rec))
        return 0;
    if (chroot((const char *)rec.data) < 0)
        return crn_error_set(err, errno, "chroot", (const char *)rec.data);
    if (chdir("/") < 0)
        return crn_error_set(err, errno, "chdir", "/");
    return 0;
}

int crn_rootfs_pivot(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;

    if (c->rootfd < 0)
        return chroot_only(c, err);
    crn_auto_fd oldroot = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);

    if (oldroot < 0)
        return crn_error_set(err, errno, "open", "/");
    if (fchdir(c->rootfd) < 0)
        return crn_error_set(err, errno, "fchdir", "rootfs");
    if (crn_plan_find(c->plan, c->len, CRN_PLAN_NO_PIVOT, &rec))
        return crn_move_root(c, err) < 0 ? -1 : root_propagation(c, err);
    /* pivot_root(".", ".") stacks the old root on top of the new one; it is
     * made a slave first so detaching it cannot propagate to the host.  The
     * cwd is moved onto the old root for that: "." right after pivot_root
     * still names the new root, and making *that* a slave would cut
     * Bidirectional mounts off from the host. */
    if (syscall(SYS_pivot_root, ".", ".") < 0) {
        int e = errno;
        if (crn_on_initramfs(e))
            return crn_move_root(c, err) < 0 ? -1 : root_propagation(c, err);
        return crn_error_set(err, e, "pivot_root", ".");
    }
    if (fchdir(oldroot) < 0)
        return crn_error_set(err, errno, "fchdir", "old root");
    if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
        return crn_error_set(err, errno, "mount", "old root");
    if (umount2(".", MNT_DETACH) < 0)
        return crn_error_set(err, errno, "umount2", "old root");
    if (chdir("/") < 0)
        return crn_error_set(err, errno, "chdir", "/");
    close(c->rootfd);
    c->rootfd = -1;
    return root_propagation(c, err);
}

static int readonly_path(const char *path, crn_error *err)
{
    if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0) {
        if (errno == ENOENT)
            return 0;
        return crn_error_set(err, errno, "mount", path);
    }
    return remount(path, MS_BIND | MS_REMOUNT | MS_RDONLY, path, err);
}

/* A directory is hidden under an empty read-only tmpfs (with the mount
 * label, as runc's maskPath), anything else under the container's
 * /dev/null. */
static int mask_path(const char *path, const char *label, crn_error *err)
{
    char data[CRN_LABEL_MAX + sizeof("context=\"\"")];
    size_t n = label ? strlen(label) : 0;
    struct stat st;
    int rc;
    if (stat(path, &st) < 0)
        return errno == ENOENT ? 0 : crn_error_set(err, errno, "stat", path);
    if (n > CRN_LABEL_MAX)
        return crn_error_set(err, ENAMETOOLONG, "mount", path);
    if (label) {
        memcpy(data, "context=\"", 9);
        memcpy(data + 9, label, n);
        memcpy(data + 9 + n, "\"", 2);
    }
    if (S_ISDIR(st.st_mode))
        rc = mount("tmpfs", path, "tmpfs", MS_RDONLY, label ? data : NULL);
    else
        rc = mount("/dev/null", path, NULL, MS_BIND, NULL);
    if (rc < 0)
        return crn_error_set(err, errno, "mount", path);
    return 0;
}

int crn_masks_apply(crn_child *c, crn_error *err)
{
    crn_plan_iter it;
    crn_plan_rec rec;
    crn_plan_iter_init(&it, c->plan, c->len);
    while (crn_plan_next(&it, CRN_PLAN_READONLY_PATH, &rec))
        if (readonly_path((const char *)rec.data, err) < 0)
            return -1;
    crn_plan_iter_init(&it, c->plan, c->len);
    while (crn_plan_next(&it, CRN_PLAN_MASK, &rec))
        if (mask_path((const char *)rec.data, mount_label(c), err) < 0)
            return -1;
    if (crn_plan_find(c->plan, c->len, CRN_PLAN_ROOT_READONLY, &rec))
        return remount("/", MS_BIND | MS_REMOUNT | MS_RDONLY, "/", err);
    return 0;
}
