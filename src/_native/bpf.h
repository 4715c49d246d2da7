/* eBPF programs on cgroup v2 directories: load, attach, list, detach.
 * What the program says is decided in Python (crio_native.linux.devfilter). */
#ifndef CRN_BPF_H
#define CRN_BPF_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* bpf(BPF_PROG_LOAD) of `insn_cnt` struct bpf_insn of type `prog_type`;
 * returns the program's fd (close-on-exec) or -1.  When the load fails and
 * `log` is given, it is loaded once more with the verifier log on (a first
 * try without it, since a log too small for a valid program fails the load
 * with ENOSPC) and `log` holds the verifier's words; the error keeps the
 * first try's errno. */
int crn_bpf_prog_load(int prog_type, const void *insns, uint32_t insn_cnt, const char *license,
                      const char *name, char *log, uint32_t log_size, crn_error *err);

/* bpf(BPF_PROG_ATTACH) of `prog_fd` to the cgroup v2 directory `cgroup`. */
int crn_bpf_cgroup_attach(int prog_fd, const char *cgroup, int attach_type, uint32_t flags,
                          crn_error *err);

/* bpf(BPF_PROG_QUERY): the ids of the programs attached to `cgroup` itself
 * (not inherited).  *count is the room in `ids` on entry and the number of
 * programs on return (more than the room: ENOSPC). */
int crn_bpf_cgroup_query(const char *cgroup, int attach_type, uint32_t *ids, uint32_t *count,
                         crn_error *err);

/* bpf(BPF_PROG_GET_FD_BY_ID) then bpf(BPF_PROG_DETACH): detach the program
 * with id `prog_id` from `cgroup`. */
int crn_bpf_cgroup_detach(const char *cgroup, int attach_type, uint32_t prog_id,
                          crn_error *err);

#endif
