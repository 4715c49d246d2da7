"""OCI mount options -> mount(2) flags, propagation and filesystem data, and
the default devices and /dev symlinks every container gets."""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

# option -> (flags to clear, flags to set)
FLAG_OPTIONS: dict[str, tuple[int, int]] = {
    "ro": (0, MS_RDONLY), "rw": (MS_RDONLY, 0),
    "nosuid": (0, MS_NOSUID), "suid": (MS_NOSUID, 0),
    "nodev": (0, MS_NODEV), "dev": (MS_NODEV, 0),
    "noexec": (0, MS_NOEXEC), "exec": (MS_NOEXEC, 0),
    "sync": (0, MS_SYNCHRONOUS), "async": (MS_SYNCHRONOUS, 0),
    "dirsync": (0, MS_DIRSYNC), "remount": (0, MS_REMOUNT),
    "mand": (0, MS_MANDLOCK), "nomand": (MS_MANDLOCK, 0),
    "noatime": (0, MS_NOATIME), "atime": (MS_NOATIME, 0),
    "nodiratime": (0, MS_NODIRATIME), "diratime": (MS_NODIRATIME, 0),
    "relatime": (0, MS_RELATIME), "norelatime": (MS_RELATIME, 0),
    "strictatime": (0, MS_STRICTATIME), "nostrictatime": (MS_STRICTATIME, 0),
    "lazytime": (0, MS_LAZYTIME), "nolazytime": (MS_LAZYTIME, 0),
    "bind": (0, MS_BIND), "rbind": (0, MS_BIND | MS_REC),
}

PROPAGATION: dict[str, int] = {
    "private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED, "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE, "runbindable": MS_UNBINDABLE | MS_REC,
}


def kernel_at_least(major: int, minor: int) -> bool:
    release = os.uname().release.split("-")[0].split(".")
    try:
        return (int(release[0]), int(release[1])) >= (major, minor)
    except (IndexError, ValueError):
        return False


def kernel_has_mount_setattr() -> bool:
    """mount_setattr(2), which "rro" needs, came with Linux 5.12."""
    return kernel_at_least(5, 12)


@dataclass(frozen=True)
class MountOptions:
    flags: int
    propagation: int
    data: str
    recursive_ro: bool = False      # "rro": every mount below read-only too

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & MS_BIND)


def parse_mount_options(options: list[str]) -> MountOptions:
    """Split OCI mount options the way runc does: known flags and propagation
    words become bits, anything else is passed to the filesystem as data."""
    flags, prop, data, rro = 0, 0, [], False
    for opt in options:
        if opt == "rro":
            # runtime-spec 1.1: read-only, recursively (mount_setattr)
            flags |= MS_RDONLY
            rro = True
        elif opt in FLAG_OPTIONS:
            clear, set_ = FLAG_OPTIONS[opt]
            flags = (flags & ~clear) | set_
        elif opt in PROPAGATION:
            prop |= PROPAGATION[opt]
        else:
            data.append(opt)
    return MountOptions(flags, prop, ",".join(data), rro)


@dataclass(frozen=True)
class Device:
    path: str
    mode: int           # S_IF* | permissions
    major: int
    minor: int
    uid: int = 0
    gid: int = 0


def _chr(path: str, major: int, minor: int) -> Device:
    return Device(path, stat.S_IFCHR | 0o666, major, minor)


DEFAULT_DEVICES = (
    _chr("/dev/null", 1, 3), _chr("/dev/zero", 1, 5), _chr("/dev/full", 1, 7),
    _chr("/dev/random", 1, 8), _chr("/dev/urandom", 1, 9), _chr("/dev/tty", 5, 0),
)

DEVICE_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def default_symlinks(has_devpts: bool) -> list[tuple[str, str]]:
    """(target, link) pairs runc creates in /dev."""
    links = [("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
             ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr")]
    if os.path.exists("/proc/kcore"):
        links.append(("/proc/kcore", "/dev/core"))
    if has_devpts:
        links.append(("pts/ptmx", "/dev/ptmx"))
    return links
