"""The host's cgroup hierarchies: which are mounted where (v1 or v2, with
which controllers), this process's own cgroup in each, and whether the host
counts as pure cgroup v2."""
from __future__ import annotations

import os
import select
from dataclasses import dataclass
from pathlib import Path

from crio_native.linux import cgroup_net, mountinfo


@dataclass(frozen=True)
class Hierarchy:
    mountpoint: Path
    version: int                    # 1 or 2
    controllers: frozenset[str]     # v1: from the mount options; v2: cgroup.controllers

    @property
    def name(self) -> str:
        return "cgroup2" if self.version == 2 else ",".join(sorted(self.controllers))

    def own_path(self, own: dict[str, str]) -> str:
        """This process's cgroup in this hierarchy, as /proc/self/cgroup names it."""
        key = "" if self.version == 2 else next(iter(sorted(self.controllers)))
        return own.get(key, "/")

    def dir_of(self, path: str, mount_root: str) -> Path | None:
        """The directory of hierarchy path `path` under this mount, or None
        when the mount (rooted at `mount_root`) does not show it."""
        top = mount_root.rstrip("/")
        if path != top and not path.startswith(top + "/"):
            return None
        rel = path[len(top):].strip("/")
        return self.mountpoint / rel if rel else self.mountpoint


def own_cgroups(text: str | None = None) -> dict[str, str]:
    """controller (or "" for the v2 hierarchy) -> this process's cgroup path."""
    text = text if text is not None else Path("/proc/self/cgroup").read_text()
    out: dict[str, str] = {}
    for line in text.splitlines():
        _hid, ctrls, path = line.split(":", 2)
        for c in (ctrls.split(",") if ctrls else [""]):
            out[c] = path
    return out


class _MountTable:
    """/proc/self/mountinfo, read again only after the mount table changed:
    the kernel flags an open mountinfo fd with an exceptional condition
    (select's third set) on every mount or unmount in our namespace."""

    def __init__(self) -> None:
        self._fd = -1
        self._text = ""

    def text(self) -> str:
        if self._fd < 0:
            self._fd = os.open("/proc/self/mountinfo", os.O_RDONLY | os.O_CLOEXEC)
        elif not select.select([], [], [self._fd], 0)[2]:
            return self._text
        os.lseek(self._fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(self._fd, 65536):
            chunks.append(chunk)
        self._text = b"".join(chunks).decode()
        return self._text


_mount_table = _MountTable()
# (the mount table text last looked at, its cgroup lines, their hierarchies)
_hierarchies_cache: tuple[str, list[str], list[tuple["Hierarchy", str]]] | None = None


def cgroup_mount_lines(text: str) -> list[str]:
    """The lines of mountinfo `text` that mount a cgroup or cgroup2
    filesystem.  A path field escapes its spaces (\\040), so " - cgroup "
    can only be the separator and the filesystem type."""
    return [line for line in text.splitlines()
            if " - cgroup " in line or " - cgroup2 " in line]


def host_hierarchies(mountinfo: str | None = None) -> list[tuple[Hierarchy, str]]:
    """Each cgroup hierarchy once, with the root of its first mount; parsed
    again only when the cgroup mounts changed.  Every create mounts a
    rootfs, which changes the mount table but not its cgroup lines."""
    global _hierarchies_cache
    if mountinfo is not None:
        return _parse_hierarchies(mountinfo)
    text = _mount_table.text()
    cached = _hierarchies_cache
    if cached is None or cached[0] is not text:
        lines = cgroup_mount_lines(text)
        if cached is None or cached[1] != lines:
            cached = (text, lines, _parse_hierarchies("\n".join(lines)))
        else:
            cached = (text, lines, cached[2])
        _hierarchies_cache = cached
    return list(cached[2])


def _parse_hierarchies(text: str) -> list[tuple[Hierarchy, str]]:
    seen, out = set(), []
    for entry in mountinfo.parse(text):
        fstype, opts = entry.fstype, entry.super_options
        if fstype not in ("cgroup", "cgroup2"):
            continue
        mount_root, mountpoint = entry.root, Path(entry.mount_point)
        if fstype == "cgroup2":
            try:
                ctrls = frozenset((mountpoint / "cgroup.controllers").read_text().split())
            except OSError:
                ctrls = frozenset()
            version = 2
        else:
            known = {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
                     "hugetlb", "net_cls", "net_prio", "perf_event", "rdma", "misc"}
            ctrls = frozenset(o for o in opts.split(",") if o in known or o.startswith("name="))
            version = 1
        key = (version, ctrls)
        if key in seen:
            continue
        seen.add(key)
        out.append((Hierarchy(mountpoint, version, ctrls), mount_root))
    return out


def pure_v2(hierarchies: list[tuple[Hierarchy, str]]) -> bool:
    """A cgroup v2 host: one v2 hierarchy, and v1 ones (if any) only with
    controllers v2 does not have (net_cls, net_prio) or none at all (a
    named hierarchy).  A v1 controller that v2 also has makes it hybrid."""
    if sum(h.version == 2 for h, _ in hierarchies) != 1:
        return False
    return all(c in cgroup_net.V1_ONLY or c.startswith("name=")
               for h, _ in hierarchies if h.version == 1 for c in h.controllers)
