cdef extern from "selinux/selinux.h" nogil:
    int is_selinux_enabled()
