/* Capabilities: the bounding set first (needs CAP_SETPCAP, so before the
 * user switch), then effective/permitted/inheritable with capset(2) and the
 * ambient set, after the user switch kept them with PR_SET_KEEPCAPS. */
#define _GNU_SOURCE
#include <linux/capability.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "child.h"

typedef struct caps {
    uint64_t bounding, effective, permitted, inheritable, ambient;
    uint32_t last_cap;
} caps;

static int read_caps(crn_child *c, caps *out)
{
    crn_plan_rec rec;
    crn_plan_cur cur;
    if (!crn_plan_find(c->plan, c->len, CRN_PLAN_CAPS, &rec))
        return 0;
    crn_plan_cur_init(&cur, &rec);
    out->bounding = crn_cur_u64(&cur);
    out->effective = crn_cur_u64(&cur);
    out->permitted = crn_cur_u64(&cur);
    out->inheritable = crn_cur_u64(&cur);
    out->ambient = crn_cur_u64(&cur);
    out->last_cap = crn_cur_u32(&cur);
    return 1;
}

int crn_caps_drop_bounding(crn_child *c, crn_error *err)
{
    caps cs;
    if (!read_caps(c, &cs))
        return 0;
    for (uint32_t cap = 0; cap <= cs.last_cap && cap < 64; cap++) {
        if (cs.bounding & (1ULL << cap))
            continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
            return crn_error_set(err, errno, "prctl PR_CAPBSET_DROP", NULL);
    }
    return 0;
}

int crn_caps_apply(crn_child *c, crn_error *err)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    caps cs;

    if (!read_caps(c, &cs))
        return 0;
    memset(data, 0, sizeof(data));
    for (int i = 0; i < 2; i++) {
        data[i].effective = (uint32_t)(cs.effective >> (32 * i));
        data[i].permitted = (uint32_t)(cs.permitted >> (32 * i));
        data[i].inheritable = (uint32_t)(cs.inheritable >> (32 * i));
    }
    if (syscall(SYS_capset, &hdr, data) < 0)
        return crn_error_set(err, errno, "capset", NULL);
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return crn_error_set(err, errno, "prctl PR_CAP_AMBIENT_CLEAR_ALL", NULL);
    /* Like runc, a cap that cannot be ambient (not in both permitted and
     * inheritable) is skipped rather than failing the container. */
    for (uint32_t cap = 0; cap <= cs.last_cap && cap < 64; cap++)
        if (cs.ambient & (1ULL << cap))
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0);
    return 0;
}
