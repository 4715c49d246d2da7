/* The container process's credentials: root of a new user namespace, the
 * user and groups from process.user, and no_new_privs.
 *
 * The id switches use raw syscalls: glibc's setresuid() broadcasts to the
 * threads it believes exist, and after a raw clone3 those are the parent's. */
#define _GNU_SOURCE
#include <linux/sched.h>
#include <sched.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "child.h"

/* In a new user namespace the maps are written by now; our ids are still
 * the host's (unmapped, so nothing can be created on the new mounts): become
 * its root.  Runs after the rootfs bind and the fifo open, which still rely
 * on being the host paths' owner. */
int crn_proc_userns_root(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    uint32_t flags = 0;
    if (crn_plan_find(c->plan, c->len, CRN_PLAN_NS_NEW, &rec))
        memcpy(&flags, rec.data, 4);
    if (!(flags & CLONE_NEWUSER))
        return 0;
    if (syscall(SYS_setresgid, 0, 0, 0) < 0)
        return crn_error_set(err, errno, "setresgid", NULL);
    if (syscall(SYS_setresuid, 0, 0, 0) < 0)
        return crn_error_set(err, errno, "setresuid", NULL);
    return 0;
}

int crn_proc_user(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    crn_plan_cur cur;
    gid_t groups[256];
    size_t glen;
    if (!crn_plan_find(c->plan, c->len, CRN_PLAN_USER, &rec))
        return 0;
    crn_plan_cur_init(&cur, &rec);
    uid_t uid = crn_cur_u32(&cur);
    gid_t gid = crn_cur_u32(&cur);
    uint32_t ngroups = crn_cur_u32(&cur);
    const void *raw = crn_cur_rest(&cur, &glen);
    if (ngroups > 256)
        return crn_error_set(err, E2BIG, "setgroups", NULL);
    memcpy(groups, raw, glen);
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
        return crn_error_set(err, errno, "prctl PR_SET_KEEPCAPS", NULL);
    if (syscall(SYS_setgroups, ngroups, groups) < 0)
        return crn_error_set(err, errno, "setgroups", NULL);
    if (syscall(SYS_setresgid, gid, gid, gid) < 0)
        return crn_error_set(err, errno, "setresgid", NULL);
    if (syscall(SYS_setresuid, uid, uid, uid) < 0)
        return crn_error_set(err, errno, "setresuid", NULL);
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
        return crn_error_set(err, errno, "prctl PR_SET_KEEPCAPS", NULL);
    return 0;
}

int crn_proc_no_new_privs(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    if (crn_plan_find(c->plan, c->len, CRN_PLAN_NO_NEW_PRIVS, &rec)
        && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return crn_error_set(err, errno, "prctl PR_SET_NO_NEW_PRIVS", NULL);
    return 0;
}
