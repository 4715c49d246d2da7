"""cgroup v1's memory+swap limit beside the memory limit.

In every v1 memory group the kernel keeps memory.limit_in_bytes at or
below memory.memsw.limit_in_bytes and refuses (EINVAL) a write of either
that would break that.  The OCI spec, and so CRI, sets both at once, and a
kubelet on a v1 host with swap accounting sends memsw = the limit (its
NoSwap): resizing such a container in place must raise memsw before the
limit, and lower the limit before memsw.  runc orders them the same way
(libcontainer's setMemoryAndSwap); v2's memory.max and memory.swap.max are
independent and need nothing.

A host without swap accounting (swapaccount=0) has no memsw files.  A memsw
that asks nothing beyond the limit (equal to it, or unlimited) is then
skipped, as runc and CRI-O skip it; any other value stays an error."""
from __future__ import annotations

from pathlib import Path

LIMIT, MEMSW = "memory.limit_in_bytes", "memory.memsw.limit_in_bytes"
UNLIMITED = "-1"


def in_kernel_order(writes: list[tuple[Path, str]]) -> list[tuple[Path, str]]:
    """`writes` with each group's memsw moved just before its memory limit
    where it must go first: when it grows past the group's current limit."""
    memsw = {p.parent: (p, v) for p, v in writes if p.name == MEMSW}
    limits = {p.parent for p, _v in writes if p.name == LIMIT}
    first = {g for g, (_p, v) in memsw.items() if g in limits and _memsw_first(g, v)}
    out = []
    for path, value in writes:
        if path.name == MEMSW and path.parent in first:
            continue
        if path.name == LIMIT and path.parent in first:
            out.append(memsw[path.parent])
        out.append((path, value))
    return out


def _memsw_first(group: Path, value: str) -> bool:
    if value == UNLIMITED:
        return True
    try:
        current = int((group / LIMIT).read_text())
    except (OSError, ValueError):
        return False
    return current < int(value)


def skippable(path: Path, value: str, writes: list[tuple[Path, str]]) -> bool:
    """Whether a memsw write whose file is missing (no swap accounting) may
    be left out: it is unlimited or equals the limit written beside it."""
    if path.name != MEMSW:
        return False
    return value == UNLIMITED or (path.parent / LIMIT, value) in writes
