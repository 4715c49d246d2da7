#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/bpf.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bpf.h"
#include "cleanup.h"

static long sys_bpf(int cmd, union bpf_attr *attr)
{
    return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

static int open_cgroup(const char *cgroup, crn_error *err)
{
    int fd = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return crn_error_set(err, errno, "open", cgroup);
    return fd;
}

int crn_bpf_prog_load(int prog_type, const void *insns, uint32_t insn_cnt, const char *license,
                      const char *name, char *log, uint32_t log_size, crn_error *err)
{
    union bpf_attr attr;
    long fd;
    int saved;

    memset(&attr, 0, sizeof(attr));
    attr.prog_type = (uint32_t)prog_type;
    attr.insns = (uint64_t)(uintptr_t)insns;
    attr.insn_cnt = insn_cnt;
    attr.license = (uint64_t)(uintptr_t)license;
    if (name != NULL)
        strncpy(attr.prog_name, name, sizeof(attr.prog_name) - 1);
    fd = sys_bpf(BPF_PROG_LOAD, &attr);
    if (fd >= 0)
        return (int)fd;
    saved = errno;
    if (log != NULL && log_size > 1) {
        log[0] = '\0';
        attr.log_level = 1;
        attr.log_buf = (uint64_t)(uintptr_t)log;
        attr.log_size = log_size;
        fd = sys_bpf(BPF_PROG_LOAD, &attr);
        if (fd >= 0) /* loads with the log on: report the first failure anyway */
            close((int)fd);
        log[log_size - 1] = '\0';
    }
    return crn_error_set(err, saved, "bpf BPF_PROG_LOAD", NULL);
}

int crn_bpf_cgroup_attach(int prog_fd, const char *cgroup, int attach_type, uint32_t flags,
                          crn_error *err)
{
    crn_auto_fd cg = open_cgroup(cgroup, err);
    union bpf_attr attr;

    if (cg < 0)
        return -1;
    memset(&attr, 0, sizeof(attr));
    attr.target_fd = (uint32_t)cg;
    attr.attach_bpf_fd = (uint32_t)prog_fd;
    attr.attach_type = (uint32_t)attach_type;
    attr.attach_flags = flags;
    if (sys_bpf(BPF_PROG_ATTACH, &attr) < 0)
        return crn_error_set(err, errno, "bpf BPF_PROG_ATTACH", cgroup);
    return 0;
}

int crn_bpf_cgroup_query(const char *cgroup, int attach_type, uint32_t *ids, uint32_t *count,
                         crn_error *err)
{
    crn_auto_fd cg = open_cgroup(cgroup, err);
    union bpf_attr attr;

    if (cg < 0)
        return -1;
    memset(&attr, 0, sizeof(attr));
    attr.query.target_fd = (uint32_t)cg;
    attr.query.attach_type = (uint32_t)attach_type;
    attr.query.prog_ids = (uint64_t)(uintptr_t)ids;
    attr.query.prog_cnt = *count;
    if (sys_bpf(BPF_PROG_QUERY, &attr) < 0) {
        *count = attr.query.prog_cnt;
        return crn_error_set(err, errno, "bpf BPF_PROG_QUERY", cgroup);
    }
    *count = attr.query.prog_cnt;
    return 0;
}

int crn_bpf_cgroup_detach(const char *cgroup, int attach_type, uint32_t prog_id, crn_error *err)
{
    crn_auto_fd cg = open_cgroup(cgroup, err);
    crn_auto_fd prog = -1;
    union bpf_attr attr;

    if (cg < 0)
        return -1;
    memset(&attr, 0, sizeof(attr));
    attr.prog_id = prog_id;
    prog = (int)sys_bpf(BPF_PROG_GET_FD_BY_ID, &attr);
    if (prog < 0)
        return crn_error_set(err, errno, "bpf BPF_PROG_GET_FD_BY_ID", cgroup);
    memset(&attr, 0, sizeof(attr));
    attr.target_fd = (uint32_t)cg;
    attr.attach_bpf_fd = (uint32_t)prog;
    attr.attach_type = (uint32_t)attach_type;
    if (sys_bpf(BPF_PROG_DETACH, &attr) < 0)
        return crn_error_set(err, errno, "bpf BPF_PROG_DETACH", cgroup);
    return 0;
}
