"""The privilege records: the capability sets, the SELinux exec label
(applied only where SELinux is on, and checked against the loaded policy),
the AppArmor exec profile (only where AppArmor is on), the Landlock ruleset
of a policy the CRI layer allowed, and the seccomp filter with, for
SCMP_ACT_NOTIFY, where its listener fd goes.  (no_new_privs is one flag, in
plan_process's order.)"""
from __future__ import annotations

import logging
from typing import Any

from crio_native.errors import FailedPrecondition
from crio_native.linux import capabilities as caps_mod
from crio_native.linux import landlock as landlock_mod
from crio_native.linux import seccomp as seccomp_mod
from crio_native.linux import selinux as selinux_mod
from crio_native.runtime.builtin.plan_fields import invalid, object_at
from crio_native.runtime.builtin.plan_host import HostFacts
from crio_native.runtime.builtin.records import Rec, Record, rec
from crio_native.runtime.builtin.seccomp_listener import ListenerState, listener_record
from crio_native.spec import landlock as landlock_spec

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


def apparmor_records(profile: Any, host: HostFacts) -> list[Record]:
    """process.apparmorProfile, entered at execve.  Ignored where AppArmor
    is off on the host (the CRI layer never asks for one there, and
    refuses a Localhost profile itself)."""
    if not profile:
        return []
    if not isinstance(profile, str) or "\0" in profile or "\n" in profile:
        raise invalid("process.apparmorProfile", f"not an AppArmor profile name: {profile!r}")
    if not host.apparmor_enabled:
        log.debug("config.json: process.apparmorProfile %r ignored: AppArmor is disabled on "
                  "this host", profile)
        return []
    return [rec(Rec.APPARMOR, profile)]


def landlock_records(spec: dict, process: dict, host: HostFacts) -> list[Record]:
    """The Landlock ruleset of annotation org.crio-native.landlock (see
    spec/landlock.py): every right of the kernel's best ABI is handled, the
    policy's paths and ports are the only grants.  landlock_restrict_self
    needs no_new_privs unless the process keeps CAP_SYS_ADMIN: a policy on
    a process without it sets no_new_privs (as Landlock's own sandboxer)."""
    text = (spec.get("annotations") or {}).get(landlock_spec.SPEC_ANNOTATION)
    if text is None:
        return []
    field = f'annotations["{landlock_spec.SPEC_ANNOTATION}"]'
    if not isinstance(text, str):
        raise invalid(field, "must be a string")
    try:
        policy = landlock_spec.parse_policy(text)
    except landlock_spec.PolicyError as e:
        raise invalid(field, str(e)) from None
    abi = host.landlock_abi
    if abi < 1:
        if policy.required:
            raise FailedPrecondition(f"config.json: {field}: the Landlock policy is required "
                                     "but this kernel has no Landlock")
        log.warning("config.json: %s ignored: this kernel has no Landlock", field)
        return []
    fs, net = landlock_mod.fs_handled(abi), landlock_mod.net_handled(abi)
    out = [rec(Rec.LANDLOCK, abi, fs, net, landlock_mod.scoped(abi))]
    out += [rec(Rec.LANDLOCK_PATH, landlock_mod.FS_READ, p) for p in policy.read_only]
    out += [rec(Rec.LANDLOCK_PATH, fs, p) for p in policy.read_write]
    if net:
        out += [rec(Rec.LANDLOCK_PORT, landlock_mod.NET_BIND_TCP, p) for p in policy.tcp_bind]
        out += [rec(Rec.LANDLOCK_PORT, landlock_mod.NET_CONNECT_TCP, p)
                for p in policy.tcp_connect]
    effective = (process.get("capabilities") or {}).get("effective") or []
    if not process.get("noNewPrivileges") and "CAP_SYS_ADMIN" not in effective:
        log.info("config.json: %s: no_new_privs set for the Landlock policy", field)
        out.append(rec(Rec.NO_NEW_PRIVS))
    return out
