"""A planned container's groups on the host: made with their limits
written, updated, signalled and removed."""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
from pathlib import Path

from crio_native.errors import FailedPrecondition
from crio_native.linux import cgroup_io
from crio_native.linux.cgroups.delegation import delegation_chain, enable_controllers
from crio_native.linux.cgroups.device import replace_device_filter
from crio_native.linux.cgroups import memsw
from crio_native.linux.cgroups.plan import CgroupPlan

# one logger for the package, named as before it was split into modules
log = logging.getLogger(__package__)


def _inherit_cpuset(d: Path) -> None:
    """A new v1 cpuset group starts empty and refuses tasks: copy the parent's.
    (In v2 an empty cpuset means the parent's; nothing to do there.)  Plain
    os calls, not pathlib's text files: this is on a create's path (the v1
    groups are made while the monitor starts), and each buffered text open
    costs several syscalls more."""
    here = str(d)
    if os.path.exists(here + "/cgroup.controllers"):
        return
    parent = os.path.dirname(here)
    for name in ("cpuset.cpus", "cpuset.mems"):
        try:
            value = _read_control(f"{here}/{name}")
        except FileNotFoundError:
            continue
        if not value.strip():
            _write_existing(Path(f"{here}/{name}"), _read_control(f"{parent}/{name}").decode())


def _read_control(path: str) -> bytes:
    """A small control file's whole text (one read: cgroupfs hands a seq
    file's content to one read that has room for it)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 1 << 16)
    finally:
        os.close(fd)


def _make_dirs(d: Path, base: Path, made: list[Path]) -> None:
    """mkdir `d` and its missing parents, appending each one made.  The leaf
    is tried first: a container's parents (its pod's group) usually exist,
    so one mkdir answers what a stat of each level would.  A walk up that
    reaches a missing `base` (the cgroup root) fails as create() says."""
    missing = []
    p = d
    while True:
        if p == base:
            # here only when `d` is the root or a dir below it had no parent
            if d == base and base.is_dir():
                return
            raise _missing_root(base)
        try:
            p.mkdir()
        except FileExistsError:
            break
        except FileNotFoundError:
            missing.append(p)
            p = p.parent
            continue
        made.append(p)
        if (p / "cpuset.cpus").exists():
            _inherit_cpuset(p)
        break
    for m in reversed(missing):
        try:
            m.mkdir()
        except FileExistsError:     # another create made a shared parent meanwhile
            continue
        made.append(m)
        if (m / "cpuset.cpus").exists():
            _inherit_cpuset(m)


def _missing_root(base: Path) -> FailedPrecondition:
    return FailedPrecondition(f"cgroup root {base} does not exist: create it first "
                              "(see runtime.cgroup_root)")


def missing_dirs(plan: CgroupPlan) -> list[Path]:
    """The groups create(plan) would make now: each of its dirs and their
    missing parents, parents first.  A journal saves them before create(),
    so a crash in between still removes them."""
    missing: list[Path] = []
    for d in plan.dirs:
        chain = []
        p = d
        while not p.exists() and p not in missing:
            chain.append(p)
            p = p.parent
        missing.extend(reversed(chain))
    return missing


def _write_existing(path: Path, value: str) -> None:
    """Write a control file that must exist (no O_CREAT: on cgroupfs that
    would turn a missing file into EACCES)."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def write_limits(writes: list[tuple[Path, str]]) -> None:
    for path, value in memsw.in_kernel_order(writes):
        try:
            _write_existing(path, value)
        except FileNotFoundError:
            if memsw.skippable(path, value, writes):
                log.debug("no swap accounting here (no %s): not limiting swap", path)
                continue
            fallback = cgroup_io.FALLBACKS.get(path.name)
            try:
                if fallback is None:
                    raise
                _write_existing(path.parent / fallback[0], fallback[1](value))
            except FileNotFoundError:
                raise FailedPrecondition(f"cgroup file {path} is missing: the host cannot "
                                         "enforce this limit") from None
            except OSError as e:
                assert fallback is not None   # a missing fallback re-raised FileNotFoundError
                raise _refused_value(path.parent / fallback[0], value, e) from e
        except OSError as e:
            raise _refused_value(path, value, e) from e


def _refused_value(path: Path, value: str, e: OSError) -> FailedPrecondition:
    # e.g. a memory limit below what the group already uses (EBUSY), or a
    # net_prio.ifpriomap line for an interface the host lacks (ENODEV)
    return FailedPrecondition(f"cgroup file {path}: the kernel refused {value!r}: "
                              f"{e.strerror or e}")


def apply_limits(plan: CgroupPlan) -> None:
    """Write the limits into groups that exist (`update`) and replace the
    device filter when the resources give device rules."""
    write_limits(plan.writes)
    if plan.device_program is not None and plan.v2 is not None:
        replace_device_filter(plan.v2[1], plan.device_program)


def create(plan: CgroupPlan) -> list[Path]:
    """Make the groups (each cgroup root must exist), enable controllers
    from the root down on pure v2, and write the limits.  Returns the dirs
    made, for remove(); on failure removes what it made and raises."""
    made: list[Path] = []
    try:
        for base, d in zip(plan.bases, plan.dirs, strict=True):
            _make_dirs(d, base, made)
        if plan.v2 is not None:
            enable_controllers(delegation_chain(*plan.v2), plan.controllers)
        write_limits(plan.writes)
        if plan.device_program is not None and plan.v2 is not None:
            replace_device_filter(plan.v2[1], plan.device_program)
    except BaseException:
        remove(made)  # rmdir also detaches a filter attached to the group
        raise
    return made


def remove(dirs: list[Path], timeout: float = 2.0) -> None:
    """rmdir the groups, deepest first; an exiting process may keep one busy
    for a moment, so EBUSY is retried briefly."""
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        deadline = time.monotonic() + timeout
        while True:
            try:
                d.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != errno.EBUSY or time.monotonic() > deadline:
                    log.error("cannot remove cgroup %s: %s", d, e)
                    raise
                time.sleep(0.01)


def kill_all(dirs: list[Path], sig: int) -> None:
    """Signal every process left in the groups (pids from cgroup.procs)."""
    for d in dirs:
        with contextlib.suppress(OSError):
            for pid in (d / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), sig)
