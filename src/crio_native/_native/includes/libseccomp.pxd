cdef extern from "seccomp.h" nogil:
    struct scmp_version:
        unsigned int major
        unsigned int minor
        unsigned int micro
    const scmp_version *seccomp_version()
