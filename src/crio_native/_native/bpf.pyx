# cython: language_level=3
"""eBPF on cgroup v2: load a program, attach it to a cgroup directory, list
and detach the ones attached there.

The instructions come ready-made from Python (crio_native.linux.devfilter
for the device filter); this module only makes the bpf(2) calls.  Program
fds are close-on-exec; the caller closes them (an attached program stays
alive while attached)."""
import os

from libc.stdint cimport uint32_t
from libc.stdlib cimport free, malloc

from crio_native._native.includes.error cimport crn_error, crn_error_clear, raise_native
from crio_native._native.includes cimport bpf as c

PROG_TYPE_CGROUP_DEVICE = c.BPF_PROG_TYPE_CGROUP_DEVICE
CGROUP_DEVICE = c.BPF_CGROUP_DEVICE
F_ALLOW_MULTI = c.BPF_F_ALLOW_MULTI

cdef enum:
    _MAX_ATTACHED = 64
    _LOG_SIZE = 256 * 1024

INSN_SIZE = 8
LOG_SIZE = _LOG_SIZE
MAX_ATTACHED = _MAX_ATTACHED


def prog_load(int prog_type, bytes insns, str license, str name=""):
    """Load `insns` (struct bpf_insn[]) and return the program's fd.  A
    refused program raises NativeError whose message ends with the
    verifier's log."""
    if not insns or len(insns) % INSN_SIZE:
        raise ValueError(f"insns: want a non-empty multiple of {INSN_SIZE} bytes")
    cdef crn_error err
    crn_error_clear(&err)
    cdef bytes lic = license.encode()
    cdef bytes nm = name.encode()
    cdef const char *p_insns = insns
    cdef const char *p_lic = lic
    cdef const char *p_name = nm
    cdef uint32_t count = len(insns) // INSN_SIZE
    cdef char *log = <char *>malloc(_LOG_SIZE)
    cdef int fd
    if log == NULL:
        raise MemoryError()
    try:
        log[0] = 0
        with nogil:
            fd = c.crn_bpf_prog_load(prog_type, p_insns, count, p_lic, p_name, log, _LOG_SIZE,
                                     &err)
        if fd >= 0:
            return fd
        text = log.decode("utf-8", "replace").strip()
    finally:
        free(log)
    try:
        raise_native(&err)
    except OSError as e:
        if text:
            e.strerror = f"{e.strerror}; verifier log:\n{text}"
        raise


def cgroup_attach(int prog_fd, cgroup, int attach_type, uint32_t flags=0):
    """Attach the program to the cgroup v2 directory `cgroup`."""
    cdef crn_error err
    crn_error_clear(&err)
    cdef bytes path = os.fsencode(cgroup)
    if c.crn_bpf_cgroup_attach(prog_fd, path, attach_type, flags, &err) < 0:
        raise_native(&err)


def cgroup_query(cgroup, int attach_type):
    """The ids of the programs of `attach_type` attached to `cgroup` itself."""
    cdef crn_error err
    crn_error_clear(&err)
    cdef bytes path = os.fsencode(cgroup)
    cdef uint32_t ids[_MAX_ATTACHED]
    cdef uint32_t count = _MAX_ATTACHED
    if c.crn_bpf_cgroup_query(path, attach_type, ids, &count, &err) < 0:
        raise_native(&err)
    return [ids[i] for i in range(count)]


def cgroup_detach(cgroup, int attach_type, uint32_t prog_id):
    """Detach the program with id `prog_id` from `cgroup`."""
    cdef crn_error err
    crn_error_clear(&err)
    cdef bytes path = os.fsencode(cgroup)
    if c.crn_bpf_cgroup_detach(path, attach_type, prog_id, &err) < 0:
        raise_native(&err)
