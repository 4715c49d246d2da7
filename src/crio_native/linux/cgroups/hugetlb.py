"""Which huge page sizes this host's container groups can limit.

The kubelet sends one HugepageLimit for every page size the node has, with
limit 0 for a container that asks for none of that size.  A 0 limit for a
size nothing can limit here is therefore routine, not a mistake: the spec
leaves it out and the plan writes nothing for it (a size the host lacks
cannot be allocated at all).  A non-zero limit there still fails, naming the
field: the container asked for something this host cannot enforce."""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import AbstractSet

from crio_native.linux.cgroups.hierarchy import Hierarchy, host_hierarchies, pure_v2

SYSFS_HUGEPAGES = Path("/sys/kernel/mm/hugepages")


def page_size_name(size_kb: int) -> str:
    """The kernel's name for a page size in hugetlb.<size>.* (mm/hugetlb_cgroup.c
    mem_fmt): 2048 kB -> "2MB", 1048576 kB -> "1GB", 64 kB -> "64KB"."""
    if size_kb >= 1 << 20:
        return f"{size_kb >> 20}GB"
    if size_kb >= 1 << 10:
        return f"{size_kb >> 10}MB"
    return f"{size_kb}KB"


def host_page_sizes(sysfs: Path = SYSFS_HUGEPAGES) -> frozenset[str]:
    """The page sizes the kernel offers (hugepages-<N>kB directories), by
    their cgroup names; empty without hugetlb support."""
    try:
        names = os.listdir(sysfs)
    except OSError:
        return frozenset()
    out = set()
    for name in names:
        if name.startswith("hugepages-") and name.endswith("kB"):
            number = name[len("hugepages-"):-2]
            if number.isdigit():
                out.add(page_size_name(int(number)))
    return frozenset(out)


def hugetlb_usable(hierarchies: list[tuple[Hierarchy, str]]) -> bool:
    """Whether container groups can use the hugetlb controller: a v1
    hierarchy with it, or a pure v2 host whose v2 hierarchy offers it (it is
    delegated from the root down).  A hybrid host's v2 hierarchy does not
    count: nobody (runc, crun, the built-in runtime) enables controllers
    there, so its groups never get hugetlb.* files (this host)."""
    if any(h.version == 1 and "hugetlb" in h.controllers for h, _ in hierarchies):
        return True
    return pure_v2(hierarchies) and any(h.version == 2 and "hugetlb" in h.controllers
                                        for h, _ in hierarchies)


def enforceable_page_sizes(hierarchies: list[tuple[Hierarchy, str]],
                           sizes: AbstractSet[str]) -> frozenset[str]:
    """The page sizes a container's limits can be written for."""
    return frozenset(sizes) if hugetlb_usable(hierarchies) else frozenset()


@functools.cache
def _sizes_at_boot() -> frozenset[str]:
    # fixed by the kernel (hugepagesz= and the CPU) for as long as it runs
    return host_page_sizes()


def host_enforceable_page_sizes() -> frozenset[str]:
    """enforceable_page_sizes for this host, as it is mounted now."""
    return enforceable_page_sizes(host_hierarchies(), _sizes_at_boot())


def host_sizes() -> frozenset[str]:
    """host_page_sizes, read once."""
    return _sizes_at_boot()

