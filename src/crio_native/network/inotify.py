"""A minimal inotify(7) binding through ctypes: one non-blocking,
close-on-exec instance, watches added and removed by path, events read in
batches.  Written here rather than pulling in a library because the daemon
needs four libc calls and a struct parse, and nothing else of inotify."""
from __future__ import annotations

import ctypes
import os
import struct
from dataclasses import dataclass

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_ISDIR = 0x40000000

IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

_EVENT = struct.Struct("iIII")   # struct inotify_event: wd, mask, cookie, len
_READ_SIZE = 64 * 1024           # many events per read(); never less than one event + NAME_MAX

_libc = ctypes.CDLL(None, use_errno=True)
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
_libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]


def _check(ret: int, what: str, path: str = "") -> int:
    if ret < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}", path or None)
    return ret


@dataclass(frozen=True)
class Event:
    wd: int
    mask: int
    name: str


def parse_events(buf: bytes) -> list[Event]:
    """The events in one read() of an inotify fd."""
    events, offset = [], 0
    while offset + _EVENT.size <= len(buf):
        wd, mask, _cookie, length = _EVENT.unpack_from(buf, offset)
        offset += _EVENT.size
        name = buf[offset:offset + length].rstrip(b"\0").decode(errors="surrogateescape")
        offset += length
        events.append(Event(wd, mask, name))
    return events


class Inotify:
    def __init__(self) -> None:
        self.fd = _check(_libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC), "inotify_init1")

    def fileno(self) -> int:
        return self.fd

    def add_watch(self, path: str, mask: int) -> int:
        """The watch descriptor; adding a path again updates its mask and
        returns the same descriptor (the kernel keys watches by inode)."""
        return _check(_libc.inotify_add_watch(self.fd, os.fsencode(path), mask),
                      "inotify_add_watch", path)

    def rm_watch(self, wd: int) -> None:
        _check(_libc.inotify_rm_watch(self.fd, wd), "inotify_rm_watch")

    def read_events(self) -> list[Event]:
        """Everything queued now; [] when nothing is (never blocks)."""
        events: list[Event] = []
        while True:
            try:
                buf = os.read(self.fd, _READ_SIZE)
            except BlockingIOError:
                return events
            events.extend(parse_events(buf))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "Inotify":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
