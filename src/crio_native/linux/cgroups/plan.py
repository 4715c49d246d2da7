"""The plan for a container's groups: which directories in which
hierarchies, the files written there, and how the child gets in.  Nothing
here changes the host."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import AbstractSet, Any

from crio_native.errors import FailedPrecondition
from crio_native.linux import cgroup_net, devfilter
from crio_native.linux.cgroups import hugetlb
from crio_native.linux.cgroups.device import device_rules, warn_device_rules_once
from crio_native.linux.cgroups.hierarchy import Hierarchy, host_hierarchies, own_cgroups, pure_v2
from crio_native.linux.cgroups.path import (check_cgroups_path, check_root, group_beside_v2,
                                            group_dir)
from crio_native.linux.cgroups.resources import resource_files


@dataclass
class CgroupPlan:
    """The directories to make, the files to write in each, and how the
    child gets in: cgroup.procs files (hybrid/v1) or one v2 dir (clone3)."""
    dirs: list[Path] = field(default_factory=list)
    writes: list[tuple[Path, str]] = field(default_factory=list)
    procs: list[Path] = field(default_factory=list)
    into: Path | None = None
    # on a v2 host: (the cgroup root's dir, the container's dir) in the v2
    # hierarchy, where controllers are delegated and the device filter goes
    v2: tuple[Path, Path] | None = None
    # (name of the hierarchy's mountpoint, the container's dir in it, version)
    # for a `cgroup` mount inside the container
    views: list[tuple[str, Path, int]] = field(default_factory=list)
    # the cgroup root's dir in each hierarchy, in the order of `dirs`
    bases: list[Path] = field(default_factory=list)
    # v2 controllers the writes need enabled from the root down (pure v2 only)
    controllers: frozenset[str] = frozenset()
    # pure v2: the device filter (struct bpf_insn[] from devfilter) to attach
    # to `into`, or None when the spec has no device rules
    device_program: bytes | None = None


def plan_cgroups(cgroups_path: str, resources: dict[str, Any],
                 hierarchies: list[tuple[Hierarchy, str]] | None = None,
                 own: dict[str, str] | None = None, root: str | None = None,
                 page_sizes: AbstractSet[str] | None = None) -> CgroupPlan:
    """Where the container's groups go and what is written there (no I/O
    beyond reading the host's layout and huge page sizes when not given,
    and on a v2 host whether the container's group exists in a v1 hierarchy
    beside it).  `root` is the configured cgroup root; empty or None means
    this process's own cgroup."""
    parts = check_cgroups_path(cgroups_path)
    root = check_root(root or "")
    hierarchies = host_hierarchies() if hierarchies is None else hierarchies
    own = own_cgroups() if own is None else own
    page_sizes = hugetlb.host_sizes() if page_sizes is None else page_sizes
    v2_only = pure_v2(hierarchies)
    by_ctrl: dict[str, Hierarchy] = {}
    for h, _mount_root in hierarchies:
        for c in h.controllers:
            by_ctrl.setdefault(c, h)
    _check_page_sizes(resources, page_sizes)
    files = _placed_files(resources, v2_only, by_ctrl,
                          hugetlb.enforceable_page_sizes(hierarchies, page_sizes))
    plan = CgroupPlan()
    dir_of: dict[Hierarchy, Path] = {}
    for h, mount_root in hierarchies:
        if v2_only and h.version == 1 and not any(fh == h for fh, *_rest in files):
            group = group_beside_v2(h, mount_root, cgroups_path, parts, own, root)
            if group is None:
                continue
            base, d = group
        else:
            base, d = group_dir(h, mount_root, cgroups_path, parts, own, root)
        dir_of[h] = d
        plan.bases.append(base)
        plan.dirs.append(d)
        # a v2 host's containers see cgroup2 alone (runc's too)
        if not v2_only or h.version == 2:
            plan.views.append((h.mountpoint.name, d, h.version))
        if v2_only and h.version == 2:
            plan.v2 = (base, d)
        plan.procs.append(d / "cgroup.procs")
    if v2_only and len(plan.dirs) == 1:
        # cloned straight into the one group.  With v1 groups beside it the
        # parent places the child in all of them, the v2 one included, by
        # cgroup.procs: a launch plan takes one or the other
        plan.into, plan.procs = plan.dirs[0], []
    for owner, _ctrl, name, value in files:
        if owner is None:       # unified's cgroup.* files (v2 hosts only)
            assert plan.v2 is not None
            plan.writes.append((plan.v2[1] / name, value))
        else:
            plan.writes.append((dir_of[owner] / name, value))
    if v2_only:
        plan.controllers = frozenset(ctrl for h, ctrl, _name, _value in files
                                     if h is not None and h.version == 2)
    v1_devices = "devices" in by_ctrl and by_ctrl["devices"].version == 1
    rules = device_rules(resources)
    if rules and not v1_devices:
        if v2_only:
            plan.device_program = devfilter.program_from_rules(rules)
        else:
            warn_device_rules_once()
    return plan


def _check_page_sizes(resources: dict[str, Any], page_sizes: AbstractSet[str]) -> None:
    """A non-zero hugepage limit for a page size the host lacks is an error
    (a 0 limit there is skipped: see hugetlb.py)."""
    for i, h in enumerate(resources.get("hugepageLimits") or []):
        size = h.get("pageSize")
        if h.get("limit") and size not in page_sizes:
            have = ", ".join(sorted(page_sizes)) or "none"
            raise FailedPrecondition(f"config.json: linux.resources.hugepageLimits[{i}]: this "
                                     f"host has no {size} huge pages (it has: {have})")


def _placed_files(resources: dict[str, Any], v2_only: bool, by_ctrl: dict[str, Hierarchy],
                  hugepage_sizes: AbstractSet[str]
                  ) -> list[tuple[Hierarchy | None, str, str, str]]:
    """(hierarchy, controller, file name, value) for each limit of
    `resources` (no hierarchy for unified's cgroup.* files); a limit no
    hierarchy can take is an error, but for a 0 hugepage limit of a size
    not in `hugepage_sizes`, which is left out."""
    out: list[tuple[Hierarchy | None, str, str, str]] = []
    v1_devices = "devices" in by_ctrl and by_ctrl["devices"].version == 1
    for fieldname, ctrl, v1, v2, value in resource_files(resources, v2_only, hugepage_sizes):
        if ctrl == "devices" and not v1_devices:
            continue
        if not ctrl:
            out.append((None, "", v2, value))
            continue
        # the controller's name in each version ("blkio|io"), v1's first
        names = ctrl.split("|")
        ctrl = next((c for c in names if c in by_ctrl), names[-1])
        if ctrl not in by_ctrl:
            why = (f": it is a cgroup v1 controller (v2 has none) and no v1 hierarchy with {ctrl} "
                   "is mounted") if ctrl in cgroup_net.V1_ONLY else ""
            raise FailedPrecondition(f"config.json: linux.resources.{fieldname}: this host has "
                                     f"no {ctrl} cgroup controller to enforce it{why}")
        h = by_ctrl[ctrl]
        name = v1 if h.version == 1 else v2
        if not name:
            continue
        if "|" in value:
            value = value.split("|")[0 if h.version == 1 else 1]
        out.append((h, ctrl, name, value))
    return out
