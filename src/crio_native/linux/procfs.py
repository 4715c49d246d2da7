"""Processes as /proc shows them, for the runtime handlers: which processes
are the children of a given one, and which cgroups one is in."""
from __future__ import annotations

import os
from pathlib import Path

from crio_native.linux import cgroups

# one file per thread, each listing the children that thread forked;
# present only with CONFIG_PROC_CHILDREN
CHILDREN_FILE = "/proc/{pid}/task/{tid}/children"


def children_of(pid: int, *, complete: bool = False) -> set[int]:
    """The children of `pid` (zombies included), from every thread's
    children file.  A thread that ends while the files are read is skipped,
    and on a kernel without the files there is nothing to read: both can
    miss children, which is fine for a best-effort walk.  With `complete`
    either case instead falls back to reading the parent pid of every
    process in /proc, slower but exact.  A pid that is gone has none."""
    found: set[int] = set()
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found             # gone
    for tid in tids:
        try:
            with open(CHILDREN_FILE.format(pid=pid, tid=tid), "rb") as f:
                found.update(int(p) for p in f.read().split())
        except OSError:
            if complete:
                return _children_by_scan(pid)
    return found


def _children_by_scan(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # after the command (which may hold spaces and parentheses): state, ppid
        if int(stat[stat.rindex(b")") + 2:].split()[1]) == pid:
            found.add(int(entry))
    return found


def process_cgroup_dirs(pid: int) -> tuple[Path, ...]:
    """The cgroup directories `pid` is in, one per mounted hierarchy,
    leaving out hierarchy roots (groups the container does not own)."""
    own = cgroups.own_cgroups(Path(f"/proc/{pid}/cgroup").read_text())
    out: list[Path] = []
    for h, mount_root in cgroups.host_hierarchies():
        d = h.dir_of(h.own_path(own), mount_root)
        if d is not None and d != h.mountpoint and d not in out:
            out.append(d)
    return tuple(out)
