# cython: language_level=3
"""libseccomp, linked directly: compile a filter to classic BPF bytes.

What the filter says (actions, architectures, which rules) is decided in
crio_native.linux.seccomp; this module only drives libseccomp.  The BPF is
exported through a memfd and installed later, by the launched child, with
seccomp(SECCOMP_SET_MODE_FILTER)."""
import os

from libc.stdint cimport uint32_t
from libc.stdlib cimport calloc, free

from crio_native._native.includes cimport libseccomp as c

MAX_ARGS = 6


def library_version():
    """(major, minor, micro) of the libseccomp the module is linked against."""
    cdef const c.scmp_version *v = c.seccomp_version()
    return (v.major, v.minor, v.micro)


def arch_token(str name):
    """libseccomp's token for an architecture name ("x86_64"), or 0."""
    return c.seccomp_arch_resolve_name(name.encode())


def syscall_number(str name):
    """The native number of a syscall, or None when this arch lacks it."""
    cdef int nr = c.seccomp_syscall_resolve_name(name.encode())
    return None if nr == c.__NR_SCMP_ERROR else nr


cdef int _add_rule(c.scmp_filter_ctx ctx, uint32_t action, int nr, list conds) except -1:
    cdef c.scmp_arg_cmp *args = NULL
    cdef int rc, i
    if len(conds) > MAX_ARGS:
        raise ValueError(f"at most {MAX_ARGS} argument conditions")
    if conds:
        args = <c.scmp_arg_cmp *>calloc(len(conds), sizeof(c.scmp_arg_cmp))
        if args == NULL:
            raise MemoryError()
    try:
        for i, (index, op, a, b) in enumerate(conds):
            args[i].arg = index
            args[i].op = <c.scmp_compare>op
            args[i].datum_a = a
            args[i].datum_b = b
        rc = c.seccomp_rule_add_array(ctx, action, nr, len(conds), args)
    finally:
        free(args)
    if rc < 0:
        raise OSError(-rc, f"seccomp_rule_add_array: {os.strerror(-rc)}")
    return 0


def compile_bpf(uint32_t default_action, arches, rules):
    """BPF program bytes (struct sock_filter[]) for the filter.

    `arches` are tokens from arch_token(); `rules` are (syscall number,
    action, [(arg index, SCMP_CMP_* op, datum_a, datum_b), ...])."""
    cdef c.scmp_filter_ctx ctx = c.seccomp_init(default_action)
    cdef int rc
    if ctx == NULL:
        raise OSError(22, "seccomp_init: invalid default action")
    try:
        # The child sets no_new_privs itself when the spec asks for it.
        c.seccomp_attr_set(ctx, c.SCMP_FLTATR_CTL_NNP, 0)
        # A binary tree of syscall numbers instead of libseccomp's default
        # linear list: the same decisions, but the kernel's per-syscall
        # action cache (built by emulating the filter for every syscall
        # number when it is loaded) and each filtered syscall walk a few
        # branches instead of hundreds.  The default profile loads in about
        # 0.3 ms instead of 0.8-0.9 ms, which every exec into a container
        # pays.  libseccomp < 2.5 lacks the attribute (EINVAL): linear then.
        c.seccomp_attr_set(ctx, c.SCMP_FLTATR_CTL_OPTIMIZE, 2)
        for token in arches:
            rc = c.seccomp_arch_add(ctx, token)
            if rc < 0 and rc != -17:  # -EEXIST: the native arch is already in
                raise OSError(-rc, f"seccomp_arch_add {token:#x}: {os.strerror(-rc)}")
        for nr, action, conds in rules:
            _add_rule(ctx, action, nr, list(conds))
        fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
        try:
            rc = c.seccomp_export_bpf(ctx, fd)
            if rc < 0:
                raise OSError(-rc, f"seccomp_export_bpf: {os.strerror(-rc)}")
            os.lseek(fd, 0, os.SEEK_SET)
            chunks = []
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)
    finally:
        c.seccomp_release(ctx)
