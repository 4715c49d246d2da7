"""Writable layer usage: bytes and inodes of a directory tree (a container's
overlay upper dir).

Bytes are allocated blocks (st_blocks * 512, as du and containerd's
fs.DiskUsage count), so sparse files count what they occupy.  Symlinks are
counted as entries but never followed; a file with several hard links in the
tree is counted once (by (st_dev, st_ino)); the root itself counts as one
inode.  Entries that vanish during the walk (the container is writing) are
skipped.  Mounts below the root are not crossed."""
from __future__ import annotations

import os
from dataclasses import dataclass

from crio_native.linux import mountinfo


@dataclass(frozen=True)
class DiskUsage:
    used_bytes: int
    inodes_used: int


def disk_usage(root: str | os.PathLike[str]) -> DiskUsage | None:
    """Usage of the tree at `root`, or None when root does not exist."""
    try:
        st = os.lstat(root)
    except OSError:
        return None
    dev = st.st_dev
    seen = {(st.st_dev, st.st_ino)}
    used = st.st_blocks * 512
    stack = [os.fspath(root)] if os.path.isdir(root) and not os.path.islink(root) else []
    while stack:
        try:
            it = os.scandir(stack.pop())
        except OSError:
            continue
        with it:
            for entry in it:
                try:
                    est = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                key = (est.st_dev, est.st_ino)
                if key in seen:
                    continue
                seen.add(key)
                used += est.st_blocks * 512
                if entry.is_dir(follow_symlinks=False) and est.st_dev == dev:
                    stack.append(entry.path)
    return DiskUsage(used, len(seen))


def fs_mountpoint(path: str | os.PathLike[str]) -> str:
    """The mountpoint of the filesystem holding `path` (FilesystemIdentifier):
    the longest mountinfo entry that is a prefix of the real path."""
    real = os.path.realpath(path)
    try:
        entries = mountinfo.read()
    except OSError:
        return "/"
    return mountinfo.holding(entries, real)
