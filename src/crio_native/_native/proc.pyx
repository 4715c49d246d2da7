# cython: language_level=3
"""Process handles: pidfd_open, pidfd_send_signal, child subreaper."""
from crio_native._native.includes.error cimport crn_error, crn_error_clear, raise_native
from crio_native._native.includes cimport proc as c


def pidfd_open(int pid):
    """Return a close-on-exec pidfd for `pid`; the caller owns and closes it."""
    cdef crn_error err
    crn_error_clear(&err)
    cdef int fd = c.crn_pidfd_open(pid, &err)
    if fd < 0:
        raise_native(&err)
    return fd


def pidfd_send_signal(int pidfd, int sig):
    """Signal the process behind `pidfd`; immune to pid reuse."""
    cdef crn_error err
    crn_error_clear(&err)
    if c.crn_pidfd_send_signal(pidfd, sig, &err) < 0:
        raise_native(&err)


def set_child_subreaper(bint on=True):
    """Make orphaned descendants of this process reparent to it."""
    cdef crn_error err
    crn_error_clear(&err)
    if c.crn_proc_set_child_subreaper(on, &err) < 0:
        raise_native(&err)
