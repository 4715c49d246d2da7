"""Landlock: which ABI this kernel offers, and the access rights each ABI
handles.

A Landlock ruleset denies every access it *handles* except what its rules
allow.  To deny everything the kernel can restrict, a ruleset handles every
right of the best ABI the kernel has: filesystem rights (ABI 1, plus REFER
in 2, TRUNCATE in 3, IOCTL_DEV in 5), TCP bind/connect (ABI 4) and the
abstract-unix-socket and signal scopes (ABI 6).  The ruleset itself is
built and enforced by the built-in runtime's child (src/_native/landlock.c);
this module only does arithmetic and the one version probe."""
from __future__ import annotations

import ctypes
import functools
import platform

# include/uapi/linux/landlock.h
FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13
FS_TRUNCATE = 1 << 14
FS_IOCTL_DEV = 1 << 15

NET_BIND_TCP = 1 << 0
NET_CONNECT_TCP = 1 << 1

SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
SCOPE_SIGNAL = 1 << 1

CREATE_RULESET_VERSION = 1 << 0

# Read-only: what running programs from a tree needs (the kernel's own
# sample sandboxer calls this set "ro").
FS_READ = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR

_SYS_CREATE_RULESET = {"x86_64": 444, "aarch64": 444, "ppc64le": 444, "s390x": 444,
                       "riscv64": 444}


def fs_handled(abi: int) -> int:
    """Every filesystem right ABI `abi` knows (0 without Landlock)."""
    if abi < 1:
        return 0
    mask = (1 << 13) - 1
    if abi >= 2:
        mask |= FS_REFER
    if abi >= 3:
        mask |= FS_TRUNCATE
    if abi >= 5:
        mask |= FS_IOCTL_DEV
    return mask


def net_handled(abi: int) -> int:
    return NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0


def scoped(abi: int) -> int:
    return SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0


@functools.cache
def abi_version() -> int:
    """The best Landlock ABI of the running kernel: 0 when it has none
    (not built in, or not in the lsm= list)."""
    nr = _SYS_CREATE_RULESET.get(platform.machine())
    if nr is None:
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    v = libc.syscall(ctypes.c_long(nr), None, ctypes.c_size_t(0),
                     ctypes.c_uint32(CREATE_RULESET_VERSION))
    # -1: ENOSYS (not built in) or EOPNOTSUPP (built in, not enabled)
    return max(int(v), 0)
