# cython: language_level=3
"""mount(2) / umount2(2) for mounts the daemon itself owns (pod /dev/shm,
container rootfs).  Which mounts to make is decided in Python."""
import os

from crio_native._native.includes.error cimport crn_error, crn_error_clear, raise_native
from crio_native._native.includes cimport mnt as c

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000


def mount(source, target, fstype, unsigned long flags=0, data=None):
    cdef crn_error err
    cdef bytes bsrc = os.fsencode(source) if source is not None else b""
    cdef bytes btgt = os.fsencode(target)
    cdef bytes btype = fstype.encode() if fstype is not None else b""
    cdef bytes bdata = data.encode() if data is not None else b""
    cdef const char *csrc = NULL
    cdef const char *ctgt = btgt
    cdef const char *ctype = NULL
    cdef const char *cdata = NULL
    if source is not None:
        csrc = bsrc
    if fstype is not None:
        ctype = btype
    if data is not None:
        cdata = bdata
    cdef int rc
    crn_error_clear(&err)
    with nogil:
        rc = c.crn_mnt_mount(csrc, ctgt, ctype, flags, cdata, &err)
    if rc < 0:
        raise_native(&err)


def unmount(target):
    """Lazily unmount everything stacked on `target`; nothing mounted is fine."""
    cdef crn_error err
    cdef bytes btgt = os.fsencode(target)
    cdef const char *ctgt = btgt
    cdef int rc
    crn_error_clear(&err)
    with nogil:
        rc = c.crn_mnt_unmount(ctgt, &err)
    if rc < 0:
        raise_native(&err)


def idmapped_tree(path, userns_path, bint recursive=False):
    """A detached, idmapped clone of the mount at `path`, seen through the
    user namespace pinned at `userns_path`: its fd (close-on-exec), for an
    overlay layer as /proc/self/fd/N.  EINVAL: the filesystem cannot be
    idmapped."""
    cdef crn_error err
    cdef bytes bpath = os.fsencode(path)
    cdef bytes bns = os.fsencode(userns_path)
    cdef const char *cpath = bpath
    cdef const char *cns = bns
    cdef int rc
    crn_error_clear(&err)
    with nogil:
        rc = c.crn_mnt_idmapped_tree(cpath, cns, recursive, &err)
    if rc < 0:
        raise_native(&err)
    return rc
