# cython: language_level=3
"""libseccomp, linked directly.  Profile compilation to BPF lands with the
built-in runtime; for now the daemon reports the library it runs with."""
from crio_native._native.includes cimport libseccomp


def library_version():
    """(major, minor, micro) of the libseccomp the module is linked against."""
    cdef const libseccomp.scmp_version *v = libseccomp.seccomp_version()
    return (v.major, v.minor, v.micro)
