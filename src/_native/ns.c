#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ns.h"

int crn_ns_unshare(int flags, crn_error *err)
{
    if (unshare(flags) < 0)
        return crn_error_set(err, errno, "unshare", NULL);
    return 0;
}

int crn_ns_join(const char *path, int nstype, crn_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return crn_error_set(err, errno, "open", path);
    if (setns(fd, nstype) < 0) {
        int saved = errno;
        close(fd);
        return crn_error_set(err, saved, "setns", path);
    }
    close(fd);
    return 0;
}

int crn_ns_pin(const char *ns_path, const char *pin_path, crn_error *err)
{
    int created = 0;
    int fd = open(pin_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);

    if (fd >= 0) {
        created = 1;
        close(fd);
    } else if (errno != EEXIST) {
        return crn_error_set(err, errno, "open", pin_path);
    }
    if (mount(ns_path, pin_path, NULL, MS_BIND, NULL) < 0) {
        int saved = errno;
        if (created)
            unlink(pin_path);
        return crn_error_set(err, saved, "mount", pin_path);
    }
    return 0;
}

int crn_ns_unpin(const char *pin_path, crn_error *err)
{
    /* Several pins may be stacked on one path after a crash during a retried
     * pin; unmount until none is left. */
    while (umount2(pin_path, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
        ;
    if (errno != EINVAL && errno != ENOENT)
        return crn_error_set(err, errno, "umount2", pin_path);
    if (unlink(pin_path) < 0 && errno != ENOENT)
        return crn_error_set(err, errno, "unlink", pin_path);
    return 0;
}

#include <pthread.h>
#include <stdio.h>
#include <string.h>

struct pin_job {
    const char *const *names;
    const char *const *paths;
    int count;
    crn_error *err;
    int rc;
};

static int ns_flag(const char *name)
{
    if (strcmp(name, "net") == 0)
        return CLONE_NEWNET;
    if (strcmp(name, "ipc") == 0)
        return CLONE_NEWIPC;
    if (strcmp(name, "uts") == 0)
        return CLONE_NEWUTS;
    return 0;
}

static void *pin_thread(void *arg)
{
    struct pin_job *job = arg;
    int flags = 0;
    int i;

    for (i = 0; i < job->count; i++) {
        int flag = ns_flag(job->names[i]);
        if (flag == 0) {
            job->rc = crn_error_set(job->err, EINVAL, "unsupported namespace", job->names[i]);
            return NULL;
        }
        flags |= flag;
    }
    /* Only this thread moves: net, ipc and uts namespaces are per thread. */
    if (unshare(flags) < 0) {
        job->rc = crn_error_set(job->err, errno, "unshare", NULL);
        return NULL;
    }
    for (i = 0; i < job->count; i++) {
        char src[64];
        snprintf(src, sizeof src, "/proc/thread-self/ns/%s", job->names[i]);
        if (crn_ns_pin(src, job->paths[i], job->err) < 0) {
            crn_error scratch;
            while (--i >= 0)
                crn_ns_unpin(job->paths[i], &scratch);
            job->rc = -1;
            return NULL;
        }
    }
    job->rc = 0;
    return NULL;
}

int crn_ns_create_pinned(const char *const *names, const char *const *paths, int count,
                         crn_error *err)
{
    struct pin_job job = {names, paths, count, err, -1};
    pthread_t thread;
    int rc = pthread_create(&thread, NULL, pin_thread, &job);

    if (rc != 0)
        return crn_error_set(err, rc, "pthread_create", NULL);
    pthread_join(thread, NULL);
    return job.rc;
}

#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "syscalls.h"

static int write_map(int pid, const char *file, const char *map, crn_error *err)
{
    char path[64];
    size_t len = strlen(map);
    int fd;

    snprintf(path, sizeof path, "/proc/%d/%s", pid, file);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return crn_error_set(err, errno, "open", path);
    if (write(fd, map, len) != (ssize_t)len) {
        int saved = errno;
        close(fd);
        return crn_error_set(err, saved, "write", path);
    }
    close(fd);
    return 0;
}

static int pin_from(int pid, const char *const *names, const char *const *paths, int count,
                    crn_error *err)
{
    for (int i = 0; i < count; i++) {
        char src[64];
        snprintf(src, sizeof src, "/proc/%d/ns/%s", pid, names[i]);
        if (crn_ns_pin(src, paths[i], err) < 0) {
            crn_error scratch;
            while (--i >= 0)
                crn_ns_unpin(paths[i], &scratch);
            return -1;
        }
    }
    return 0;
}

int crn_ns_create_pinned_userns(const char *const *names, const char *const *paths, int count,
                                const char *uid_map, const char *gid_map, crn_error *err)
{
    struct clone_args args;
    uint64_t flags = CLONE_NEWUSER;
    int gate[2], pid, rc;

    for (int i = 0; i < count; i++) {
        int flag = strcmp(names[i], "user") == 0 ? CLONE_NEWUSER : ns_flag(names[i]);
        if (flag == 0)
            return crn_error_set(err, EINVAL, "unsupported namespace", names[i]);
        flags |= (uint64_t)flag;
    }
    if (pipe2(gate, O_CLOEXEC) < 0)
        return crn_error_set(err, errno, "pipe2", NULL);
    memset(&args, 0, sizeof args);
    args.flags = flags;
    args.exit_signal = SIGCHLD;
    pid = (int)syscall(__NR_clone3, &args, sizeof args);
    if (pid == 0) {
        /* The holder: async-signal-safe only (the caller is multi-threaded).
         * It waits until the parent closes the gate, then exits. */
        char byte;
        close(gate[1]);
        while (read(gate[0], &byte, 1) < 0 && errno == EINTR)
            ;
        _exit(0);
    }
    close(gate[0]);
    if (pid < 0) {
        close(gate[1]);
        return crn_error_set(err, errno, "clone3", "user namespace");
    }
    rc = write_map(pid, "uid_map", uid_map, err);
    if (rc == 0)
        rc = write_map(pid, "gid_map", gid_map, err);
    if (rc == 0)
        rc = pin_from(pid, names, paths, count, err);
    close(gate[1]);
    while (waitpid(pid, NULL, __WALL) < 0 && errno == EINTR)
        ;
    return rc;
}
