/* Landlock: the container's own ruleset.  Python decides which rights the
 * ruleset handles (every one of the kernel's best ABI: linux/landlock.py)
 * and which each rule grants; here the rules are built while the process
 * may still open every path (right after the masks, as root), and the
 * ruleset is enforced as the last step before the start barrier, once
 * no_new_privs is set (the plan sets it when the process will not hold
 * CAP_SYS_ADMIN, which landlock_restrict_self needs otherwise). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "child.h"
#include "cleanup.h"

#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset 444
#endif
#ifndef __NR_landlock_add_rule
#define __NR_landlock_add_rule 445
#endif
#ifndef __NR_landlock_restrict_self
#define __NR_landlock_restrict_self 446
#endif

/* include/uapi/linux/landlock.h, for headers older than the ABI used */
struct crn_landlock_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;    /* ABI 4 */
    uint64_t scoped;                /* ABI 6 */
};

struct crn_landlock_path_beneath_attr {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

struct crn_landlock_net_port_attr {
    uint64_t allowed_access;
    uint64_t port;
};

#define CRN_LANDLOCK_RULE_PATH_BENEATH 1
#define CRN_LANDLOCK_RULE_NET_PORT 2
/* The rights a rule on a file (not a directory) may carry: EXECUTE,
 * WRITE_FILE, READ_FILE, TRUNCATE, IOCTL_DEV; the kernel refuses others. */
#define CRN_LANDLOCK_FILE_RIGHTS ((1ULL << 0) | (1ULL << 1) | (1ULL << 2) | (1ULL << 14) \
                                  | (1ULL << 15))

static size_t ruleset_attr_size(uint32_t abi)
{
    if (abi >= 6)
        return sizeof(struct crn_landlock_ruleset_attr);
    if (abi >= 4)
        return offsetof(struct crn_landlock_ruleset_attr, scoped);
    return offsetof(struct crn_landlock_ruleset_attr, handled_access_net);
}

static int add_path_rules(crn_child *c, int ruleset, crn_error *err)
{
    crn_plan_iter it;
    crn_plan_rec rec;
    crn_plan_iter_init(&it, c->plan, c->len);
    while (crn_plan_next(&it, CRN_PLAN_LANDLOCK_PATH, &rec)) {
        crn_plan_cur cur;
        struct crn_landlock_path_beneath_attr rule;
        struct stat st;
        const char *path;
        crn_plan_cur_init(&cur, &rec);
        rule.allowed_access = crn_cur_u64(&cur);
        path = crn_cur_str(&cur);
        crn_auto_fd fd = open(path, O_PATH | O_CLOEXEC);
        if (fd < 0)
            return crn_error_set(err, errno, "landlock: open", path);
        if (fstat(fd, &st) < 0)
            return crn_error_set(err, errno, "landlock: fstat", path);
        if (!S_ISDIR(st.st_mode))
            rule.allowed_access &= CRN_LANDLOCK_FILE_RIGHTS;
        if (rule.allowed_access == 0)
            continue;
        rule.parent_fd = fd;
        if (syscall(__NR_landlock_add_rule, ruleset, CRN_LANDLOCK_RULE_PATH_BENEATH, &rule, 0) < 0)
            return crn_error_set(err, errno, "landlock_add_rule", path);
    }
    return 0;
}

static int add_port_rules(crn_child *c, int ruleset, crn_error *err)
{
    crn_plan_iter it;
    crn_plan_rec rec;
    crn_plan_iter_init(&it, c->plan, c->len);
    while (crn_plan_next(&it, CRN_PLAN_LANDLOCK_PORT, &rec)) {
        crn_plan_cur cur;
        struct crn_landlock_net_port_attr rule;
        char port[24];
        crn_plan_cur_init(&cur, &rec);
        rule.allowed_access = crn_cur_u64(&cur);
        rule.port = crn_cur_u64(&cur);
        if (syscall(__NR_landlock_add_rule, ruleset, CRN_LANDLOCK_RULE_NET_PORT, &rule, 0) < 0) {
            crn_itoa(port, (long long)rule.port);
            return crn_error_set(err, errno, "landlock_add_rule tcp port", port);
        }
    }
    return 0;
}

int crn_proc_landlock_prepare(crn_child *c, crn_error *err)
{
    crn_plan_rec rec;
    crn_plan_cur cur;
    struct crn_landlock_ruleset_attr attr;
    uint32_t abi;
    int fd;
    if (!crn_plan_find(c->plan, c->len, CRN_PLAN_LANDLOCK, &rec))
        return 0;
    crn_plan_cur_init(&cur, &rec);
    abi = crn_cur_u32(&cur);
    attr.handled_access_fs = crn_cur_u64(&cur);
    attr.handled_access_net = crn_cur_u64(&cur);
    attr.scoped = crn_cur_u64(&cur);
    fd = (int)syscall(__NR_landlock_create_ruleset, &attr, ruleset_attr_size(abi), 0U);
    if (fd < 0)
        return crn_error_set(err, errno, "landlock_create_ruleset", NULL);
    c->landlock_fd = fd;
    if (add_path_rules(c, fd, err) < 0 || add_port_rules(c, fd, err) < 0)
        return -1;
    return 0;
}

int crn_proc_landlock(crn_child *c, crn_error *err)
{
    if (c->landlock_fd < 0)
        return 0;
    if (syscall(__NR_landlock_restrict_self, c->landlock_fd, 0U) < 0)
        return crn_error_set(err, errno, "landlock_restrict_self", NULL);
    close(c->landlock_fd);
    c->landlock_fd = -1;
    return 0;
}
