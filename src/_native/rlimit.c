/* process.rlimits, set with prlimit64 on ourselves. */
#define _GNU_SOURCE
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "child.h"

int crn_proc_rlimits(crn_child *c, crn_error *err)
{
    crn_plan_iter it;
    crn_plan_rec rec;
    crn_plan_iter_init(&it, c->plan, c->len);
    while (crn_plan_next(&it, CRN_PLAN_RLIMIT, &rec)) {
        crn_plan_cur cur;
        struct rlimit rl;
        crn_plan_cur_init(&cur, &rec);
        int resource = (int)crn_cur_u32(&cur);
        rl.rlim_cur = crn_cur_u64(&cur);
        rl.rlim_max = crn_cur_u64(&cur);
        if (syscall(SYS_prlimit64, 0, resource, &rl, NULL) < 0)
            return crn_error_set(err, errno, "prlimit", NULL);
    }
    return 0;
}
