# Declarations for src/_native/error.h, plus the one place where a crn_error
# becomes a Python exception.
cdef extern from "error.h":
    ctypedef struct crn_error:
        int err
        char msg[512]
    void crn_error_clear(crn_error *e)


cdef inline int raise_native(crn_error *e) except -1:
    from crio_native.errors import native_error
    raise native_error(e.err, e.msg.decode("utf-8", "replace"))
