"""Container cgroups and runtime state that outlived what knew them.

Our container groups are named as CRI-O names them with the cgroupfs
driver, `crio-<64 hex id>` (spec/resources.cgroups_path), in the pod's group
or, for a pod without a cgroup_parent, under the cgroup root.  A runtime
removes the groups it made when the container is deleted; these are the
backstops: the groups of a record whose runtime state is gone (a reboot
took the runroot, or the daemon died between the two), and at start-up the
groups in the places we put them that no container record names at all.
Only empty groups are removed (rmdir fails on one with processes or
children): a group with processes in it is reported, never emptied here.
systemd scopes (`crio-<id>.scope`) are systemd's to remove and not touched.
Likewise a runtime's state directory of an id no record names, in the
runtime roots the daemon owns (<runroot>/runtimes/<handler>)."""
from __future__ import annotations

import errno
import logging
import re
from pathlib import Path

from crio_native.errors import CrioNativeError, FailedPrecondition
from crio_native.linux import cgroups
from crio_native.logsetup import fields

log = logging.getLogger(__name__)

CONTAINER_GROUP = re.compile(r"^crio-([0-9a-f]{64})$")
HEX_ID = re.compile(r"^[0-9a-f]{64}$")


def group_name(container_id: str) -> str:
    return f"crio-{container_id}"


def remove_leftover_cgroups(container_id: str, dirs: list[str]) -> None:
    """rmdir each of the container's recorded groups that is still there
    (only ones named for it); one that cannot go fails the removal with
    FAILED_PRECONDITION naming it, so the record stays for a retry."""
    for d in (Path(p) for p in dirs):
        if d.name != group_name(container_id) or not d.is_dir():
            continue
        try:
            d.rmdir()
        except FileNotFoundError:
            continue
        except OSError as e:
            raise FailedPrecondition(f"container {container_id}: its cgroup {d} cannot be "
                                     f"removed: {e.strerror}") from None
        log.warning("removed a container cgroup its runtime no longer knew",
                    extra=fields(id=container_id, cgroup=str(d)))


def stray_runtime_states(runtime_roots: dict[str, Path], owned: set[str]) -> list[tuple[str, str]]:
    """(handler, id) of each `<runtime root>/<64 hex id>` directory whose id
    is not in `owned`: a runtime's state of a container no record names."""
    found = []
    for name, root in sorted(runtime_roots.items()):
        try:
            children = sorted(root.iterdir())
        except OSError:
            continue
        found += [(name, d.name) for d in children
                  if HEX_ID.match(d.name) and d.name not in owned and d.is_dir()]
    return found


def cgroup_root_dirs(cgroup_root: str | None) -> list[Path]:
    """The cgroup root's directory in every hierarchy: where a container of
    a pod without a cgroup_parent gets its group."""
    from crio_native.runtime.cgroup_root import resolve_cgroup_root

    try:
        plan = cgroups.plan_cgroups("crio-sweep", {}, root=resolve_cgroup_root(cgroup_root))
    except (CrioNativeError, OSError) as e:
        log.warning("cgroup sweep: cannot resolve the cgroup root", extra=fields(error=str(e)))
        return []
    return sorted({d.parent for d in plan.dirs})


def sweep_container_cgroups(parents: list[Path], owned: set[str]) -> list[Path]:
    """Remove the empty `crio-<id>` groups directly below `parents` whose id
    is not in `owned`; each removal is logged, a busy one too.  Returns the
    groups removed."""
    removed = []
    for parent in sorted(set(parents)):
        try:
            children = sorted(parent.iterdir())
        except OSError:
            continue
        for d in children:
            match = CONTAINER_GROUP.match(d.name)
            if match is None or match.group(1) in owned or not d.is_dir():
                continue
            try:
                d.rmdir()
            except FileNotFoundError:
                continue
            except OSError as e:
                if e.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                    raise
                log.error("a container cgroup no record owns still has processes or "
                          "groups in it: left", extra=fields(cgroup=str(d), error=str(e)))
                continue
            log.warning("removed a container cgroup no record owns",
                        extra=fields(cgroup=str(d), id=match.group(1)))
            removed.append(d)
    return removed
