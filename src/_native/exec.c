/* What the container process execs and how: the cwd, the executable
 * looked up in $PATH, the SELinux exec label, the personality, the umask and
 * execve itself. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "child.h"
#include "cleanup.h"
#include "syscalls.h"

/* Like runc, try the cwd first with the runtime's rights (the container user
 * may not reach it, the volume may be chowned to it), and once more after
 * the user switch if that was refused. */
int crn_proc_cwd_early(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    if (!crn_plan_find(c->plan, c->len, CRN_PLAN_CWD, &rec))
        return 0;
    if (chdir((const char *)rec.data) == 0) {
        c->cwd_done = 1;
        return 0;
    }
    if (errno == EACCES || errno == EPERM)
        return 0;
    return crn_error_set(err, errno, "chdir", (const char *)rec.data);
}

int crn_proc_cwd(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    if (c->cwd_done || !crn_plan_find(c->plan, c->len, CRN_PLAN_CWD, &rec))
        return 0;
    if (chdir((const char *)rec.data) < 0)
        return crn_error_set(err, errno, "chdir", (const char *)rec.data);
    return 0;
}

int crn_is_executable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && !S_ISDIR(st.st_mode) && (st.st_mode & 0111)
           && access(path, X_OK) == 0;
}

static const char *env_path(crn_child *c)
{
    for (char *const *e = c->envp; *e; e++)
        if (strncmp(*e, "PATH=", 5) == 0)
            return *e + 5;
    return "";
}

/* Resolve argv[0] the way runc does: a name with a slash is used as is,
 * anything else is searched in the container's $PATH. */
int crn_proc_lookup(crn_child *c, crn_error *err)
{
    const char *name = c->argv[0], *p = env_path(c);
    size_t nlen;
    if (name == NULL)
        return 0;   /* no process (see crn_launch): it never gets past the barrier */
    nlen = strlen(name);
    if (strchr(name, '/') != NULL) {
        if (nlen >= sizeof(c->exe))
            return crn_error_set(err, ENAMETOOLONG, "exec", name);
        memcpy(c->exe, name, nlen + 1);
        if (!crn_is_executable(c->exe))
            return crn_error_set(err, errno ? errno : EACCES, "exec", name);
        return 0;
    }
    while (*p) {
        const char *colon = strchrnul(p, ':');
        size_t dlen = (size_t)(colon - p);
        if (dlen == 0) {
            c->exe[0] = '.';
            dlen = 1;
        } else if (dlen < sizeof(c->exe)) {
            memcpy(c->exe, p, dlen);
        }
        if (dlen + 1 + nlen < sizeof(c->exe)) {
            c->exe[dlen] = '/';
            memcpy(c->exe + dlen + 1, name, nlen + 1);
            if (crn_is_executable(c->exe))
                return 0;
        }
        p = *colon ? colon + 1 : colon;
    }
    return crn_error_set(err, ENOENT, "exec", name);
}

/* process.selinuxLabel: the context the next execve enters, as
 * setexeccon(3) sets it, but with a plain write (no libselinux, no
 * allocation).  /proc is the container's own by now (thread-self names this
 * thread in it); the policy checks the transition itself at execve.  The
 * plan has no record when SELinux is off on the host. */
int crn_proc_selinux_label(crn_child *c, crn_error *err)
{
    static const char path[] = "/proc/thread-self/attr/exec";
    crn_plan_rec rec;
    const char *label;
    if (!crn_plan_find(c->plan, c->len, CRN_PLAN_SELINUX_LABEL, &rec))
        return 0;
    label = (const char *)rec.data;
    crn_auto_fd fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return crn_error_set(err, errno, "open", path);
    /* the kernel wants the context in a single write, NUL included */
    if (write(fd, label, strlen(label) + 1) < 0)
        return crn_error_set(err, errno, "write", path);
    return 0;
}

/* process.apparmorProfile: "exec NAME" makes the next execve enter profile
 * NAME, as aa_change_onexec(3) does.  Kernels with LSM stacking have the
 * per-module file attr/apparmor/exec; older ones only attr/exec.  A profile
 * the kernel has not loaded fails here with ENOENT.  The plan has no record
 * when AppArmor is off on the host. */
int crn_proc_apparmor(crn_child *c, crn_error *err)
{
    static const char stacked[] = "/proc/thread-self/attr/apparmor/exec";
    static const char legacy[] = "/proc/thread-self/attr/exec";
    crn_plan_rec rec;
    char cmd[CRN_LABEL_MAX + 8];
    const char *path = stacked;
    size_t n;
    if (!crn_plan_find(c->plan, c->len, CRN_PLAN_APPARMOR, &rec))
        return 0;
    n = strlen((const char *)rec.data);
    if (n + 6 > sizeof(cmd))
        return crn_error_set(err, ENAMETOOLONG, "apparmor", (const char *)rec.data);
    memcpy(cmd, "exec ", 5);
    memcpy(cmd + 5, rec.data, n + 1);
    crn_auto_fd fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        path = legacy;
        fd = open(path, O_WRONLY | O_CLOEXEC);
    }
    if (fd < 0)
        return crn_error_set(err, errno, "open", path);
    if (write(fd, cmd, n + 5) < 0)
        return crn_error_set(err, errno, "write apparmor exec profile", (const char *)rec.data);
    return 0;
}

/* linux.personality: the execution domain (LINUX32: uname -m says i686)
 * and flags the user program runs with. */
int crn_proc_personality(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    uint32_t persona;
    if (!crn_plan_find(c->plan, c->len, CRN_PLAN_PERSONALITY, &rec))
        return 0;
    memcpy(&persona, rec.data, 4);
    if (syscall(SYS_personality, (unsigned long)persona) < 0)
        return crn_error_set(err, errno, "personality", NULL);
    return 0;
}

int crn_proc_exec(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    mode_t mask = 022;
    if (crn_plan_find(c->plan, c->len, CRN_PLAN_UMASK, &rec)) {
        uint32_t v;
        memcpy(&v, rec.data, 4);
        mask = (mode_t)v;
    }
    umask(mask);
    syscall(__NR_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
    execve(c->exe, c->argv, c->envp);
    return crn_error_set(err, errno, "execve", c->exe);
}
