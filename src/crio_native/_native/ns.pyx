# cython: language_level=3
"""Namespaces: unshare, setns by path, pin to a path and unpin.

Thin wrappers over src/_native/ns.c; which namespaces to create and where to
pin them is decided in Python (crio_native.linux / crio_native.network)."""
import os

from crio_native._native.includes.error cimport crn_error, crn_error_clear, raise_native
from crio_native._native.includes cimport ns as c

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

# /proc/PID/ns/<name> for each flag; "pid_for_children" and "time_for_children"
# are the files that name what new children get.
NS_FILES = {
    "mnt": CLONE_NEWNS,
    "cgroup": CLONE_NEWCGROUP,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "user": CLONE_NEWUSER,
    "pid": CLONE_NEWPID,
    "net": CLONE_NEWNET,
    "time": CLONE_NEWTIME,
}


def unshare(int flags):
    """unshare(2) for the calling thread."""
    cdef crn_error err
    crn_error_clear(&err)
    if c.crn_ns_unshare(flags, &err) < 0:
        raise_native(&err)


def join(path, int nstype=0):
    """setns(2) into the namespace file at `path` (nstype 0: any type)."""
    cdef crn_error err
    cdef bytes bpath = os.fsencode(path)
    cdef const char *cpath = bpath
    cdef int rc
    crn_error_clear(&err)
    with nogil:
        rc = c.crn_ns_join(cpath, nstype, &err)
    if rc < 0:
        raise_native(&err)


def pin(ns_path, pin_path):
    """Bind-mount the nsfs file `ns_path` onto `pin_path` so it outlives its processes."""
    cdef crn_error err
    cdef bytes bsrc = os.fsencode(ns_path)
    cdef bytes bdst = os.fsencode(pin_path)
    cdef const char *csrc = bsrc
    cdef const char *cdst = bdst
    cdef int rc
    crn_error_clear(&err)
    with nogil:
        rc = c.crn_ns_pin(csrc, cdst, &err)
    if rc < 0:
        raise_native(&err)


def unpin(pin_path):
    """Unmount a pin and remove its file; a missing pin is not an error."""
    cdef crn_error err
    cdef bytes bdst = os.fsencode(pin_path)
    cdef const char *cdst = bdst
    cdef int rc
    crn_error_clear(&err)
    with nogil:
        rc = c.crn_ns_unpin(cdst, &err)
    if rc < 0:
        raise_native(&err)


cdef list _pin_arrays(pins, const char **names, const char **paths):
    """Fill names[i]/paths[i] from `pins` (at most 8, checked by the caller);
    the returned list owns the bytes they point into: keep it for the call."""
    keep = []
    for i, (name, path) in enumerate(pins.items()):
        bname, bpath = name.encode(), os.fsencode(path)
        keep.extend((bname, bpath))
        names[i] = bname
        paths[i] = bpath
    return keep


def create_pinned(pins):
    """New net/ipc/uts namespaces, each pinned at a path, with no process
    holding them.  `pins` maps nsfs name -> pin path.  All or nothing."""
    cdef crn_error err
    cdef const char *names[8]
    cdef const char *paths[8]
    cdef int count = len(pins)
    cdef int rc
    if not 0 < count <= 8:
        raise ValueError("create_pinned: between 1 and 8 namespaces")
    keep = _pin_arrays(pins, names, paths)
    crn_error_clear(&err)
    with nogil:
        rc = c.crn_ns_create_pinned(names, paths, count, &err)
    if rc < 0:
        raise_native(&err)


def create_pinned_userns(pins, uid_map, gid_map):
    """A new user namespace with these maps ("inside outside count" lines),
    pinned as pins["user"], and the other namespaces of `pins` made inside
    it and pinned too.  All or nothing."""
    cdef crn_error err
    cdef const char *names[8]
    cdef const char *paths[8]
    cdef int count = len(pins)
    cdef int rc
    cdef bytes buid = uid_map.encode()
    cdef bytes bgid = gid_map.encode()
    cdef const char *cuid = buid
    cdef const char *cgid = bgid
    if not 0 < count <= 8 or "user" not in pins:
        raise ValueError("create_pinned_userns: a user pin and at most 7 others")
    keep = _pin_arrays(pins, names, paths)
    crn_error_clear(&err)
    with nogil:
        rc = c.crn_ns_create_pinned_userns(names, paths, count, cuid, cgid, &err)
    if rc < 0:
        raise_native(&err)
