"""The privilege records: the capability sets, the SELinux exec label
(applied only where SELinux is on, and checked against the loaded policy),
and the seccomp filter with, for SCMP_ACT_NOTIFY, where its listener fd
goes.  (no_new_privs is one flag, in plan_process's order.)"""
from __future__ import annotations

import logging
from typing import Any

from crio_native.linux import capabilities as caps_mod
from crio_native.linux import seccomp as seccomp_mod
from crio_native.linux import selinux as selinux_mod
from crio_native.runtime.builtin.plan_fields import invalid, object_at
from crio_native.runtime.builtin.plan_host import HostFacts
from crio_native.runtime.builtin.records import Rec, Record, rec
from crio_native.runtime.builtin.seccomp_listener import ListenerState, listener_record

# The plan's one logger, whichever of its modules writes: log settings and
# the JSON log's "logger" field name it.
log = logging.getLogger("crio_native.runtime.builtin.plan")


def _cap_mask(names: Any, field: str, host: HostFacts) -> int:
    if not isinstance(names, list):
        raise invalid(field, "must be an array")
    mask = 0
    for i, name in enumerate(names):
        bit = caps_mod.CAPABILITIES.get(name)
        if bit is None:
            raise invalid(f"{field}[{i}]", f"unknown capability {name!r}")
        if bit > host.last_cap:
            log.warning("%s: %s is unknown to this kernel, skipped", field, name)
            continue
        mask |= 1 << bit
    return mask


def caps_records(process: dict, host: HostFacts) -> list[Record]:
    if "capabilities" not in process:
        return []
    c = object_at(process, "capabilities", "process.capabilities")
    sets = [_cap_mask(c.get(k, []), f"process.capabilities.{k}", host)
            for k in ("bounding", "effective", "permitted", "inheritable", "ambient")]
    return [rec(Rec.CAPS, *sets, host.last_cap)]


def selinux_label(value: Any, field: str, host: HostFacts) -> str | None:
    """The label to apply from `field`, or None: none given, or SELinux is
    off on this host (then the label is ignored, as runc does)."""
    if not value:
        return None
    if not host.selinux_enabled:
        log.debug("config.json: %s %r ignored: SELinux is disabled on this host", field, value)
        return None
    problem = selinux_mod.label_problem(value)
    if problem:
        raise invalid(field, problem)
    if host.selinux_context_known is not None and not host.selinux_context_known(value):
        raise invalid(field, f"{value!r} is not a valid context in the loaded SELinux policy")
    return value


def selinux_records(label: str | None) -> list[Record]:
    """The exec label, set by the child's last step before execve."""
    return [rec(Rec.SELINUX_LABEL, label)] if label else []


def seccomp_records(linux: dict, listener: ListenerState | None = None) -> list[Record]:
    """The filter, plus (SCMP_ACT_NOTIFY) where its notify fd goes and what
    the agent is told about the container: `listener`."""
    section = linux.get("seccomp")
    if not section:
        return []
    if not isinstance(section, dict):
        raise invalid("linux.seccomp", "must be an object")
    filt = seccomp_mod.compile_filter(section)
    out = [rec(Rec.SECCOMP, filt.flags, filt.bpf)]
    if filt.listener_path is not None:
        out.append(listener_record(filt.listener_path, filt.listener_metadata,
                                   listener or ListenerState("", "")))
    return out
