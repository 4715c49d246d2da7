/* The namespaces the container process joins (setns) rather than gets new
 * at clone, and the cgroup namespace it unshares itself once moved. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "child.h"
#include "cleanup.h"

#define CRN_MAX_JOINS 16

static void close_all(int (*fds)[CRN_MAX_JOINS])
{
    for (int i = 0; i < CRN_MAX_JOINS; i++)
        crn_close_fdp(&(*fds)[i]);
}

/* Open every namespace first and only then setns: once in a joined mount
 * namespace, /proc/PID of the target may no longer be visible. */
static int join_all(crn_child *c, crn_error *err)
{
    __attribute__((cleanup(close_all))) int fds[CRN_MAX_JOINS];
    uint32_t types[CRN_MAX_JOINS];
    const char *paths[CRN_MAX_JOINS];
    crn_plan_iter it;
    crn_plan_rec rec;
    int n = 0;
    for (int i = 0; i < CRN_MAX_JOINS; i++)
        fds[i] = -1;
    crn_plan_iter_init(&it, c->plan, c->len);
    while (crn_plan_next(&it, CRN_PLAN_NS_JOIN, &rec)) {
        crn_plan_cur cur;
        crn_plan_cur_init(&cur, &rec);
        uint32_t nstype = crn_cur_u32(&cur);
        const char *path = crn_cur_str(&cur);
        if (nstype == CLONE_NEWPID)
            continue; /* joined by the parent around clone */
        if (n == CRN_MAX_JOINS)
            return crn_error_set(err, E2BIG, "setns", path);
        fds[n] = open(path, O_RDONLY | O_CLOEXEC);
        if (fds[n] < 0)
            return crn_error_set(err, errno, "open", path);
        types[n] = nstype;
        paths[n++] = path;
    }
    for (int i = 0; i < n; i++) {
        if (types[i] == CLONE_NEWUSER) {
            /* Entered last (crn_proc_join_userns): as the host's root we can
             * still join the rest, make the mounts (idmapped ones need it)
             * and set rlimits; inside it we could not. */
            c->userns_fd = crn_steal_fd(&fds[i]);
            continue;
        }
        if (setns(fds[i], (int)types[i]) < 0)
            return crn_error_set(err, errno, "setns", paths[i]);
    }
    return 0;
}

int crn_proc_join_userns(crn_child *c, crn_error *err)
{
    if (c->userns_fd < 0)
        return 0;
    if (setns(c->userns_fd, CLONE_NEWUSER) < 0)
        return crn_error_set(err, errno, "setns", "user namespace");
    crn_close_fdp(&c->userns_fd);
    return 0;
}

int crn_proc_join_namespaces(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    uint32_t flags = 0;
    if (crn_plan_find(c->plan, c->len, CRN_PLAN_NS_NEW, &rec))
        memcpy(&flags, rec.data, 4);
    /* See clone_ns_flags() in launch.c: the parent has moved us by now. */
    if ((flags & CLONE_NEWCGROUP) && crn_plan_find(c->plan, c->len, CRN_PLAN_CGROUP_PROCS, &rec)
        && unshare(CLONE_NEWCGROUP) < 0)
        return crn_error_set(err, errno, "unshare", "cgroup");
    return join_all(c, err);
}
