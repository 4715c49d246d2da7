from libc.stdint cimport uint32_t, uint64_t

cdef extern from "seccomp.h" nogil:
    struct scmp_version:
        unsigned int major
        unsigned int minor
        unsigned int micro
    const scmp_version *seccomp_version()

    ctypedef void *scmp_filter_ctx
    enum scmp_compare:
        SCMP_CMP_NE
    enum scmp_filter_attr:
        SCMP_FLTATR_CTL_NNP
        SCMP_FLTATR_CTL_OPTIMIZE
    struct scmp_arg_cmp:
        unsigned int arg
        scmp_compare op
        uint64_t datum_a
        uint64_t datum_b
    int __NR_SCMP_ERROR

    scmp_filter_ctx seccomp_init(uint32_t def_action)
    void seccomp_release(scmp_filter_ctx ctx)
    uint32_t seccomp_arch_resolve_name(const char *arch_name)
    int seccomp_arch_add(scmp_filter_ctx ctx, uint32_t arch_token)
    int seccomp_attr_set(scmp_filter_ctx ctx, scmp_filter_attr attr, uint32_t value)
    int seccomp_syscall_resolve_name(const char *name)
    int seccomp_rule_add_array(scmp_filter_ctx ctx, uint32_t action, int syscall,
                               unsigned int arg_cnt, const scmp_arg_cmp *arg_array)
    int seccomp_export_bpf(const scmp_filter_ctx ctx, int fd)
