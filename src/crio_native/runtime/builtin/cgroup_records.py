"""The built-in runtime's glue to linux.cgroups: which groups a container's
spec asks for, the launch records that put its process (or a process
exec'd into it) in them, the group its monitor watches for OOM kills, and
the groups an update may write to: those create made."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crio_native.errors import FailedPrecondition
from crio_native.linux import cgroups
from crio_native.linux.systemd.names import SystemdPath, parse_cgroups_path
from crio_native.runtime.builtin.plan import has_cgroup_mount
from crio_native.runtime.builtin.records import Rec, Record, rec


def container_cgroups_path(spec: dict, container_id: str) -> str | None:
    """linux.cgroupsPath, or the id when resources or a cgroup mount ask for
    groups of its own; None when nothing does."""
    linux = spec.get("linux") or {}
    wants = linux.get("resources") or has_cgroup_mount(spec)
    return linux.get("cgroupsPath") or (container_id if wants else None)


@dataclass(frozen=True)
class ContainerCgroups:
    """Where a container's groups go: the plan, the path it was made from
    (a cgroupfs path: the systemd driver's scope resolved to its cgroup),
    the cgroup root it was checked against, and the scope systemd holds the
    group as (None with the cgroupfs driver)."""
    plan: cgroups.CgroupPlan
    path: str
    root: str
    scope: SystemdPath | None


def container_cgroups(spec: dict, container_id: str, cgroup_root: str = "",
                      driver: str = "cgroupfs") -> ContainerCgroups | None:
    """The container's cgroups (see container_cgroups_path), all at or below
    `cgroup_root` ("" = our own cgroup) with the cgroupfs driver; with the
    systemd driver wherever its `slice:prefix:name` scope lies.  None when
    it has none of its own."""
    path = container_cgroups_path(spec, container_id)
    if not path:
        return None
    resources = (spec.get("linux") or {}).get("resources") or {}
    if driver != "systemd":
        return ContainerCgroups(cgroups.plan_cgroups(path, resources, root=cgroup_root),
                                path, cgroup_root, None)
    scope = parse_cgroups_path(path)
    hierarchies = cgroups.host_hierarchies()
    if not cgroups.pure_v2(hierarchies):
        raise FailedPrecondition(f"config.json: linux.cgroupsPath: {path!r}: the built-in "
                                 "runtime's systemd cgroup driver needs a pure cgroup v2 "
                                 "host (this one mounts v1 hierarchies); use "
                                 "runtime.cgroup_manager = \"cgroupfs\" here")
    plan = cgroups.plan_cgroups(scope.cgroup, resources, hierarchies=hierarchies, root="")
    return ContainerCgroups(plan, scope.cgroup, "", scope)


def update_cgroups(container_id: str, record: dict[str, Any], resources: dict[str, Any],
                   cgroup_root: str) -> cgroups.CgroupPlan:
    """The plan of an update (runc's `update`): `resources` in the groups
    create made (the record's), resolved again from its cgroupsPath."""
    path = record.get("_cgroups_path")
    if not path:
        raise FailedPrecondition(f"container {container_id!r} has no cgroups of its own: "
                                 "its resources cannot be updated")
    # the root create checked against ("" for a systemd scope)
    cgroup_root = record.get("_cgroup_root", cgroup_root)
    plan = cgroups.plan_cgroups(path, resources or {}, root=cgroup_root)
    have, want = record.get("_cgroup_dirs") or [], [str(d) for d in plan.dirs]
    added = [d for d in want if d not in have]
    if added and all(d in want for d in have):
        # a limit in a hierarchy the container joined nothing in (v1
        # net_cls/net_prio): as with runc and crun, only create joins one
        raise FailedPrecondition(f"container {container_id!r} was created without a group "
                                 f"in the hierarchy of {', '.join(added)}: these resources "
                                 "can only be set when the container is created")
    if want != have:
        raise FailedPrecondition(f"container {container_id!r}: its cgroups are no longer "
                                 f"where {path!r} resolves (cgroup root changed?)")
    return plan


def oom_cgroup(dirs: list[Path], made_later: bool = False) -> Path | None:
    """The group whose oom_kill counter the monitor watches: the v2 group,
    or the v1 memory controller's (a hybrid host's v2 hierarchy has none).
    `made_later`: the v1 groups are made while the monitor starts (it reads
    the counter after its gate), so each is told by its nearest existing
    ancestor: every v1 memory group, the root included, has
    memory.oom_control."""
    for d in dirs:
        if made_later and not d.exists():
            if (_nearest_existing(d) / "memory.oom_control").exists():
                return d
        elif (d / "memory.events").exists() or (d / "memory.oom_control").exists():
            return d
    return None


def _nearest_existing(d: Path) -> Path:
    while not d.exists() and d.parent != d:
        d = d.parent
    return d


def cgroup_records(plan: cgroups.CgroupPlan) -> list[Record]:
    """Put the created process in its groups: clone3 into the plan's one v2
    group, else the parent writes each cgroup.procs (hybrid/v1)."""
    if plan.into is not None:
        return [rec(Rec.CGROUP_INTO, str(plan.into))]
    return [rec(Rec.CGROUP_PROCS, str(p)) for p in plan.procs]


def cgroup_join_records(dirs: list[Path]) -> list[Record]:
    """Enter a running container's groups: clone3 into the one v2 group on a
    pure v2 host, else the parent writes each cgroup.procs."""
    if len(dirs) == 1 and (dirs[0] / "cgroup.controllers").exists():
        return [rec(Rec.CGROUP_INTO, str(dirs[0]))]
    return [rec(Rec.CGROUP_PROCS, str(d / "cgroup.procs")) for d in dirs]
