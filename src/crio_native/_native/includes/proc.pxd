from crio_native._native.includes.error cimport crn_error

cdef extern from "proc.h" nogil:
    int crn_pidfd_open(int pid, crn_error *err)
    int crn_pidfd_send_signal(int pidfd, int sig, crn_error *err)
    int crn_proc_set_child_subreaper(int on, crn_error *err)
