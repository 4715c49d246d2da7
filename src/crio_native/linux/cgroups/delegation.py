"""cgroup v2 delegation: enabling controllers in cgroup.subtree_control from
the cgroup root down to the container group's parent."""
from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

from crio_native.errors import FailedPrecondition

# one logger for the package, named as before it was split into modules
log = logging.getLogger(__package__)


def delegation_chain(base: Path, d: Path) -> list[Path]:
    """The groups whose subtree_control must offer controllers to `d`: the
    cgroup root first, then each group below it down to d's parent (none
    when `d` is the root itself)."""
    if d == base:
        return []
    rel = d.relative_to(base).parts
    return [base.joinpath(*rel[:i]) for i in range(len(rel))]


def _write_control(path: Path, text: str) -> None:
    path.write_text(text)


def _holds_processes(group: Path) -> bool:
    """A non-root group with processes in it.  (Only the hierarchy's root,
    the one group without a cgroup.type file, is exempt from v2's rule that
    a group holding processes cannot hand controllers to children.)"""
    if not (group / "cgroup.type").exists():
        return False
    return bool((group / "cgroup.procs").read_text().split())


def _refused(group: Path, ctrls: set[str], e: OSError) -> FailedPrecondition:
    what = f"cgroup {group}: cannot enable {' '.join(sorted(ctrls))} for its child groups"
    if e.errno == errno.EBUSY:
        return FailedPrecondition(
            f"{what}: cgroup v2 cannot delegate controllers below a cgroup that holds "
            "processes; set runtime.cgroup_root (or CRIO_NATIVE_CGROUP_ROOT) to an empty cgroup")
    return FailedPrecondition(f"{what}: {e.strerror or e}")


def _enable_in(group: Path, required: set[str], optional: set[str]) -> None:
    """Enable the controllers in one group's subtree_control: the required
    ones in one write (an error if refused), then the rest best-effort.
    Nothing is written in a group that holds processes: the kernel would
    refuse domain controllers there, but accept threaded ones (cpu, cpuset,
    pids) and so turn the group into a thread root whose new children can
    take no processes at all."""
    if not (required or optional):
        return
    if _holds_processes(group):
        if required:
            raise _refused(group, required, OSError(errno.EBUSY, os.strerror(errno.EBUSY)))
        log.debug("cgroup %s holds processes: no controllers enabled below it", group)
        return
    control = group / "cgroup.subtree_control"
    for ctrls, must in ((required, True), (optional, False)):
        if not ctrls:
            continue
        try:
            _write_control(control, " ".join(f"+{c}" for c in sorted(ctrls)))
        except OSError as e:
            if must:
                raise _refused(group, ctrls, e) from e
            log.debug("cgroup %s: %s not enabled for children: %s", group, sorted(ctrls), e)


def enable_controllers(chain: list[Path], required: frozenset[str]) -> None:
    """Top down, make each group offer its children every controller it has
    (as runc and crun do, so a container sees the same files under all
    three); only a `required` one that cannot be enabled is an error.
    Changes are never undone: other groups below may rely on them."""
    for group in chain:
        offered = set((group / "cgroup.controllers").read_text().split())
        missing = sorted(required - offered)
        if missing:
            raise FailedPrecondition(f"cgroup {group} does not offer the {missing[0]} "
                                     "controller (not in its cgroup.controllers): the limit "
                                     "cannot be enforced below it")
        enabled = set((group / "cgroup.subtree_control").read_text().split())
        _enable_in(group, set(required) - enabled, offered - enabled - required)
