"""The window size of the terminal an OCI runtime relays for a tty exec.

`<runtime> exec --tty` (runc, crun), run as our child with the slave of a
pty of ours as its stdio, makes the container's own pty and holds its
master: it copies our slave's bytes into that master, and copies our
window size onto it when our SIGWINCH reaches its signal loop.  That loop
runs beside its stdin copy, so input the client sent after a resize may
reach the process before the size does.  To keep the client's order, the
streaming session waits (briefly) until the size it set is the size of
the runtime's master: read here, from a copy of the runtime's own fd
(pidfd_getfd), since only the runtime holds that master.  The runtime is
our child and trusted; nothing of the container (whose process may have
put anything on its fd 0) is opened."""
from __future__ import annotations

import ctypes
import errno
import fcntl
import functools
import os
import stat
import struct
import termios
from typing import Callable

# pidfd_getfd(2), Linux 5.6: the same number on every architecture (the
# unified syscall table)
SYS_PIDFD_GETFD = 438
# a pty master: what opening ptmx (any devpts instance's) gives
PTMX_RDEV = os.makedev(5, 2)
_STDIO = ("0", "1", "2")      # the runtime's stdio: our pty's slave


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def _pidfd_getfd(pidfd: int, target_fd: int) -> int:
    """A close-on-exec copy of fd `target_fd` of the process behind `pidfd`."""
    fd = _libc().syscall(ctypes.c_long(SYS_PIDFD_GETFD), ctypes.c_int(pidfd),
                      ctypes.c_int(target_fd), ctypes.c_uint(0))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"pidfd_getfd fd {target_fd}: {os.strerror(err)}")
    return int(fd)


def window_size_of(fd: int) -> tuple[int, int]:
    """(rows, columns) of the terminal behind `fd`."""
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, bytes(8)))
    return rows, cols


def _is_pty_master(fd: int) -> bool:
    st = os.fstat(fd)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == PTMX_RDEV


def relayed_size_reader(pid: int, pidfd: int) -> Callable[[], tuple[int, int] | None]:
    """A function that answers the window size (rows, columns) of the pty
    master the runtime process `pid` (`pidfd`: ours for it) holds; None
    while it holds none yet (the exec'd process is still starting).  It
    raises OSError when the size cannot be read at all (pidfd_getfd
    missing or not permitted, the runtime gone)."""
    found: list[int] = []      # the runtime's fd number of the master, once seen

    def copy_of_master() -> int | None:
        candidates = found or sorted(
            int(n) for n in os.listdir(f"/proc/{pid}/fd") if n not in _STDIO)
        for n in candidates:
            try:
                fd = _pidfd_getfd(pidfd, n)
            except OSError as e:
                if e.errno == errno.EBADF:    # closed since the listing
                    continue
                raise
            if _is_pty_master(fd):
                found[:] = [n]
                return fd
            os.close(fd)
        found.clear()
        return None

    def size() -> tuple[int, int] | None:
        fd = copy_of_master()
        if fd is None:
            return None
        try:
            return window_size_of(fd)
        finally:
            os.close(fd)

    return size
