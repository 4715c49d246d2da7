/* The container's kernel tunables: oom_score_adj, hostname and domainname
 * (kernel.hostname and kernel.domainname of its UTS namespace) and the
 * /proc/sys keys of linux.sysctl. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "child.h"
#include "cleanup.h"

int crn_proc_oom_score_adj(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    char num[24];
    int32_t v;
    if (!crn_plan_find(c->plan, c->len, CRN_PLAN_OOM_SCORE_ADJ, &rec))
        return 0;
    memcpy(&v, rec.data, 4);
    crn_itoa(num, v);
    crn_auto_fd fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return crn_error_set(err, errno, "open", "/proc/self/oom_score_adj");
    if (write(fd, num, strlen(num)) < 0)
        return crn_error_set(err, errno, "write", "/proc/self/oom_score_adj");
    return 0;
}

int crn_proc_hostname(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    if (crn_plan_find(c->plan, c->len, CRN_PLAN_HOSTNAME, &rec)
        && sethostname((const char *)rec.data, strlen((const char *)rec.data)) < 0)
        return crn_error_set(err, errno, "sethostname", (const char *)rec.data);
    if (crn_plan_find(c->plan, c->len, CRN_PLAN_DOMAINNAME, &rec)
        && setdomainname((const char *)rec.data, strlen((const char *)rec.data)) < 0)
        return crn_error_set(err, errno, "setdomainname", (const char *)rec.data);
    return 0;
}

/* Written through the container's own /proc, so namespaced keys land in its
 * namespaces; runs before readonlyPaths makes /proc/sys read-only. */
int crn_proc_sysctls(crn_child *c, crn_error *err)
{
    crn_plan_iter it;
    crn_plan_rec rec;
    crn_plan_iter_init(&it, c->plan, c->len);
    while (crn_plan_next(&it, CRN_PLAN_SYSCTL, &rec)) {
        char path[PATH_MAX] = "/proc/sys/";
        crn_plan_cur cur;
        crn_plan_cur_init(&cur, &rec);
        const char *key = crn_cur_str(&cur), *value = crn_cur_str(&cur);
        if (strlen(key) + 11 > sizeof(path))
            return crn_error_set(err, ENAMETOOLONG, "open", key);
        strcat(path, key);
        crn_auto_fd fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
            return crn_error_set(err, errno, "open", path);
        if (write(fd, value, strlen(value)) < 0)
            return crn_error_set(err, errno, "write", path);
    }
    return 0;
}
