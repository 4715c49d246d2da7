from libc.stdint cimport uint32_t

from crio_native._native.includes.error cimport crn_error

cdef extern from "bpf.h" nogil:
    int crn_bpf_prog_load(int prog_type, const void *insns, uint32_t insn_cnt,
                          const char *license, const char *name, char *log, uint32_t log_size,
                          crn_error *err)
    int crn_bpf_cgroup_attach(int prog_fd, const char *cgroup, int attach_type, uint32_t flags,
                              crn_error *err)
    int crn_bpf_cgroup_query(const char *cgroup, int attach_type, uint32_t *ids,
                             uint32_t *count, crn_error *err)
    int crn_bpf_cgroup_detach(const char *cgroup, int attach_type, uint32_t prog_id,
                              crn_error *err)

cdef extern from "<linux/bpf.h>" nogil:
    enum:
        BPF_PROG_TYPE_CGROUP_DEVICE
        BPF_CGROUP_DEVICE
        BPF_F_ALLOW_MULTI
