"""SELinux for the built-in runtime: whether labels apply on this host, which
mounts take linux.mountLabel, and checks of a label against the loaded policy.

The label itself is set by the child (src/_native/exec.c writes
process.selinuxLabel to /proc/thread-self/attr/exec right before execve, as
setexeccon(3) would); a mount label travels as the `context=` mount option,
as runc does.  With SELinux disabled on the host both are ignored (the spec
layer leaves them out anyway; a hand-written config.json may not)."""
from __future__ import annotations

import errno
import os
import re
from pathlib import Path

SELINUXFS = Path("/sys/fs/selinux")

# Filesystems mounted fresh for each container take the mount label as
# `context=` (runc: everything but proc, sysfs, mqueue, cgroup and binds).
# Not mqueue: a container that shares its pod's IPC namespace mounts the
# same mqueue superblock again, and a second `context=` on one superblock
# fails (runc relabels mqueue's root with setxattr instead).
CONTEXT_MOUNT_TYPES = frozenset({"tmpfs", "devpts"})

# user:role:type[:level]; a level may hold commas and a range (s0-s0:c0.c1023).
_LABEL = re.compile(r"^[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+(:[A-Za-z0-9_.,:-]+)?$")


def enabled() -> bool:
    """True when the host runs SELinux (permissive or enforcing)."""
    from crio_native._native import selinux

    return selinux.enabled()


def label_problem(label: object) -> str | None:
    """Why `label` is not a well-formed context, or None if it is."""
    if not isinstance(label, str):
        return f"must be a string, got {label!r}"
    if not _LABEL.match(label):
        return f"{label!r} is not an SELinux context (user:role:type[:level])"
    return None


def context_known(label: str) -> bool:
    """Whether the loaded policy accepts `label` as a context, as
    security_check_context(3) asks: one write to selinuxfs's `context` file.
    True where that cannot be asked (no selinuxfs, or the caller's domain
    may not check contexts): the child's write is the final word anyway."""
    try:
        fd = os.open(SELINUXFS / "context", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return True
    try:
        os.write(fd, label.encode() + b"\0")
    except OSError as e:
        return e.errno != errno.EINVAL
    finally:
        os.close(fd)
    return True


def mount_data_with_label(fstype: str, data: str, label: str | None) -> str:
    """`data` for a mount of `fstype` with the mount label added as
    `context="label"` (quoted: a level holds commas), where the filesystem
    takes one and the spec gave no context option of its own."""
    if not label or fstype not in CONTEXT_MOUNT_TYPES or "context=" in data:
        return data
    option = f'context="{label}"'
    return f"{data},{option}" if data else option


XATTR = "security.selinux"


def relabel(path: str | os.PathLike[str], label: str,
            setxattr=os.setxattr) -> int:
    """Give `path` and everything below it (not following symlinks, not
    crossing into other mounts) the file label `label`, as a CRI mount with
    selinux_relabel asks: the container can then use a host directory its
    MCS level would otherwise shut it out of.  Returns how many were set."""
    root = Path(path)
    device = root.lstat().st_dev
    value = label.encode()
    count = 0
    stack = [root]
    while stack:
        current = stack.pop()
        setxattr(current, XATTR, value, follow_symlinks=False)
        count += 1
        if current.is_symlink() or not current.is_dir():
            continue
        with os.scandir(current) as entries:
            for entry in entries:
                child = Path(entry.path)
                if entry.is_dir(follow_symlinks=False) and child.lstat().st_dev != device:
                    continue   # another filesystem mounted below: not ours to relabel
                stack.append(child)
    return count
