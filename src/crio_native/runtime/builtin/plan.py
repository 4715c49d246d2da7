"""OCI bundle (config.json + rootfs) -> flat launch plan.

Pure apart from reading the bundle (the rootfs is inspected so a mount
destination cannot escape it and a bind source's kind is known); host facts
the plan depends on come in as a HostFacts value.  Every invalid field raises
InvalidArgument naming it, e.g. `config.json: linux.namespaces[2].type: ...`.
The records are those of src/_native/plan.h, emitted in the child's order.

This module holds the entry points and the order of the records; the
records themselves are built by plan_namespaces (namespaces, id maps,
hostname, sysctls), plan_rootfs (root, mounts, devices), plan_process (what
runs, its limits, personality, startContainer hooks) and plan_security
(capabilities, SELinux, AppArmor, Landlock, seccomp), on plan_fields'
checked readers."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from crio_native.errors import InvalidArgument, Unimplemented
from crio_native.linux.cgroups import CgroupPlan
from crio_native.runtime.builtin.hooks import CREATE_KINDS, parse_hooks
from crio_native.runtime.builtin.plan_fields import invalid, object_at
from crio_native.runtime.builtin.plan_host import HostFacts
from crio_native.runtime.builtin.plan_namespaces import (NAMESPACES, NS_PROC_FILES,
                                                         hostname_records, id_map_records,
                                                         namespace_records, sysctl_records)
from crio_native.runtime.builtin.plan_process import (personality_records, process_records,
                                                      start_hook_records)
from crio_native.runtime.builtin.plan_rootfs import (has_cgroup_mount, root_path,
                                                     rootfs_records)
from crio_native.runtime.builtin.plan_security import (apparmor_records, landlock_records,
                                                       seccomp_records, selinux_label,
                                                       selinux_records)
from crio_native.runtime.builtin.records import Rec, Record, encode, rec
from crio_native.runtime.builtin.seccomp_listener import ListenerState

# What the rest of the tree reads from here (container.py, features.py, the
# CLI, the tests), wherever it is defined.
__all__ = ["HostFacts", "NAMESPACES", "build_plan", "exec_records", "has_cgroup_mount",
           "load_spec", "plan_records"]

log = logging.getLogger(__name__)


def load_spec(bundle: Path) -> dict[str, Any]:
    path = Path(bundle) / "config.json"
    try:
        spec = json.loads(path.read_text())
    except FileNotFoundError:
        raise InvalidArgument(f"bundle {bundle}: no config.json") from None
    except ValueError as e:
        raise InvalidArgument(f"{path}: not valid JSON: {e}") from None
    if not isinstance(spec, dict):
        raise invalid("(document)", "must be a JSON object")
    return spec


def unsupported(spec: dict, terminal: bool = False) -> None:
    """Fail loudly on what this slice of the runtime does not do yet, rather
    than run a container without it.  A terminal needs someone to hold the
    pty master (`terminal`): the monitor, or a console socket."""
    linux = object_at(spec, "linux", "linux")
    process = object_at(spec, "process", "process")
    if process.get("terminal") and not terminal:
        raise Unimplemented("config.json: process.terminal: a terminal needs a console socket "
                            "(--console-socket) or the monitor's --terminal")
    checks = [*((f"process.{k}", process.get(k)) for k in ("ioPriority", "scheduler")),
              *((f"linux.{k}", linux.get(k)) for k in ("intelRdt", "timeOffsets"))]
    for field, present in checks:
        if present:
            raise Unimplemented(f"config.json: {field}: not supported by the built-in runtime yet")


# ---- the plan ---------------------------------------------------------------

def plan_records(spec: dict, bundle: Path, *, host: HostFacts, barrier: str | None = None,
                 cgroups: CgroupPlan | None = None, console: bool = False,
                 start_result: str | None = None,
                 container_id: str = "", no_pivot: bool = False) -> list[Record]:
    """The launch plan for `spec`, as records in the order the child walks them.
    `console`: the child makes the pty itself from the container's
    /dev/ptmx, takes its slave as stdio and controlling tty, and sends the
    master back (to a --console-socket, or to the monitor's --terminal).
    `start_result`: the fifo startContainer hook failures are reported on.
    `container_id`: what a seccomp agent (linux.seccomp.listenerPath) is
    told the container is.  `no_pivot`:
    MS_MOVE and chroot instead of pivot_root (runc's --no-pivot)."""
    unsupported(spec, console)
    hooks = parse_hooks(spec)
    create_hooks = any(hooks.get(k) for k in CREATE_KINDS)
    linux = object_at(spec, "linux", "linux")
    process = object_at(spec, "process", "process")
    label = selinux_label(process.get("selinuxLabel"), "process.selinuxLabel", host)
    mount_label = selinux_label(linux.get("mountLabel"), "linux.mountLabel", host)
    ns, new_ns = namespace_records(linux)
    return (([rec(Rec.CONSOLE)] if console else [])
            + ns + id_map_records(linux, new_ns) + hostname_records(spec, new_ns)
            + (rootfs_records(spec, bundle, barrier, new_ns, cgroups, mount_label, no_pivot)
               if "mount" in new_ns else shared_mount_ns_records(spec, bundle, barrier))
            + ([rec(Rec.HOOK_PAUSE)] if create_hooks else [])
            + sysctl_records(linux, new_ns)
            + personality_records(linux)
            + (process_records(spec, host) if spec.get("process") is not None
               else no_process_records(barrier))
            + selinux_records(label)
            + apparmor_records(process.get("apparmorProfile"), host)
            + landlock_records(spec, process, host)
            + start_hook_records(hooks.get("startContainer", []), start_result)
            + seccomp_records(linux, ListenerState(container_id, str(bundle),
                                                   spec.get("annotations") or {})))


def no_process_records(barrier: str | None) -> list[Record]:
    """A spec without `process` (runtime-spec config.md: it is only REQUIRED
    when start is called): the container is created all the same, its
    process waits at the barrier with no program, and `start` refuses to let
    it go (BuiltinRuntime.start).  Without a barrier nothing would wait."""
    if barrier is None:
        raise invalid("process", "missing: the container has nothing to run")
    return [rec(Rec.CWD, "/")]


def shared_mount_ns_records(spec: dict, bundle: Path, barrier: str | None) -> list[Record]:
    """No mount namespace of the container's own (runtime-spec: a namespace
    not listed is the runtime's).  Without one the process runs in the
    runtime's mount namespace chrooted into root.path, as runc does; with a
    joined one (`path`) it takes that namespace's root as it is, as setns
    gives it.  Nothing is mounted, made or remounted: each field that would
    do so is refused rather than applied to a namespace others live in."""
    linux = object_at(spec, "linux", "linux")
    joined = any(isinstance(ns, dict) and ns.get("type") == "mount" and ns.get("path")
                 for ns in linux.get("namespaces") or [])
    where = "the joined mount namespace" if joined else "the runtime's mount namespace"
    for field, present in (("mounts", spec.get("mounts")),
                           ("linux.maskedPaths", linux.get("maskedPaths")),
                           ("linux.readonlyPaths", linux.get("readonlyPaths")),
                           ("linux.devices", linux.get("devices")),
                           ("linux.rootfsPropagation", linux.get("rootfsPropagation")),
                           ("linux.mountLabel", linux.get("mountLabel")),
                           ("root.readonly", object_at(spec, "root", "root").get("readonly"))):
        if present:
            raise invalid(field, f"needs a mount namespace of the container's own (it would "
                                 f"change {where}): add {{\"type\": \"mount\"}} to "
                                 "linux.namespaces")
    out = [] if joined else [rec(Rec.CHROOT, str(root_path(spec, bundle)))]
    return out + ([rec(Rec.BARRIER, barrier)] if barrier else [])


def exec_records(spec: dict, process: dict, *, pid: int, host: HostFacts,
                 container: dict | None = None) -> list[Record]:
    """Plan for an extra process in the running container whose init is
    `pid`: join each of its namespaces (user first), no mount tree of its
    own, the given process settings and the container's seccomp filter.
    Its SELinux label is its own `selinuxLabel`, else the container's (as
    runc exec does).  `container`: its OCI state (id, status, bundle), what
    a seccomp agent is told along with the exec'd process's notify fd."""
    linux = object_at(spec, "linux", "linux")
    _ns, _new = namespace_records(linux)
    types = sorted((ns["type"] for ns in linux.get("namespaces") or []),
                   key=lambda t: t != "user")
    joins = [rec(Rec.NS_JOIN, NAMESPACES[t], f"/proc/{pid}/ns/{NS_PROC_FILES[t]}")
             for t in types]
    # process.terminal: the caller passes a pty slave as stdin (the streaming
    # server holds the master); the child makes it its controlling tty
    tty = [rec(Rec.CONTROLLING_TTY)] if process.get("terminal") else []
    own = object_at(spec, "process", "process").get("selinuxLabel")
    label = selinux_label(process.get("selinuxLabel") or own, "process.selinuxLabel", host)
    return (tty + [rec(Rec.NS_NEW, 0)] + joins + personality_records(linux)
            + process_records({"process": process}, host)
            + selinux_records(label)
            + apparmor_records(process.get("apparmorProfile"), host)
            + landlock_records(spec, process, host)
            + seccomp_records(linux, _exec_listener_state(spec, container or {}, pid)))


def _exec_listener_state(spec: dict, container: dict, pid: int) -> ListenerState:
    return ListenerState(str(container.get("id", "")), str(container.get("bundle", "")),
                         spec.get("annotations") or {},
                         str(container.get("status") or "running"), pid)


def build_plan(spec: dict, bundle: Path, *, host: HostFacts | None = None,
               barrier: str | None = None) -> bytes:
    return encode(plan_records(spec, bundle, host=host or HostFacts.current(), barrier=barrier))

