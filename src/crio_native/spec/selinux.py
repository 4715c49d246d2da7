"""process.selinuxLabel and linux.mountLabel, only when SELinux is enabled.

Defaults follow container-selinux (the policy CRI-O and Podman use):
processes run as system_u:system_r:container_t, their files are
system_u:object_r:container_file_t, both at the pod's MCS level so pods
cannot read each other's files.  Each SELinuxOption field the request sets
replaces its part of the process label; a level replaces the pod's level in
both labels.  Privileged containers run as spc_t (unconfined) unless the
request names a type.  The same file label goes on what the daemon mounts
and writes itself: the container's overlay rootfs (container_mount_label),
the pod's /dev/shm and its hostname, hosts and resolv.conf (file_label at
the pod's level)."""
from __future__ import annotations

import re

from crio_native.spec.inputs import SpecBuild, SpecInputs, invalid

PROCESS_USER, PROCESS_ROLE, PROCESS_TYPE = "system_u", "system_r", "container_t"
FILE_USER, FILE_ROLE, FILE_TYPE = "system_u", "object_r", "container_file_t"
PRIVILEGED_TYPE = "spc_t"
DEFAULT_LEVEL = "s0"
FIELD = "linux.security_context.selinux_options"
_PART = re.compile(r"^[A-Za-z0-9_.-]+$")
_LEVEL = re.compile(r"^s\d+(-s\d+)?(:c\d+([.,]c\d+)*)?$")


def level_problem(level: str) -> str | None:
    """Why `level` is not an MLS/MCS level, or None.  A level also ends up
    inside a `context="..."` mount option, so nothing else may pass."""
    return None if _LEVEL.fullmatch(level) else f"not an MLS/MCS level: {level!r}"


def _check(opts) -> None:
    for name in ("user", "role", "type"):
        value = getattr(opts, name)
        if value and not _PART.fullmatch(value):
            raise invalid(f"{FIELD}.{name}", f"not an SELinux identifier: {value!r}")
    problem = level_problem(opts.level) if opts.level else None
    if problem:
        raise invalid(f"{FIELD}.level", problem)


def file_label(level: str) -> str:
    """The file label at `level`: what a pod's or container's files and
    mounts carry."""
    return ":".join((FILE_USER, FILE_ROLE, FILE_TYPE, level or DEFAULT_LEVEL))


def container_mount_label(opts, pod_level: str) -> str:
    """The mount label of a container whose request has SELinuxOptions
    `opts`, in a pod at `pod_level`: before the spec is built, the daemon
    mounts the container's rootfs with it."""
    _check(opts)
    return file_label(opts.level or pod_level)


def labels(inputs: SpecInputs) -> tuple[str, str]:
    """(process label, mount label)."""
    opts = inputs.security.selinux_options
    _check(opts)
    level = opts.level or inputs.selinux_level or DEFAULT_LEVEL
    default_type = PRIVILEGED_TYPE if inputs.privileged else PROCESS_TYPE
    process = ":".join((opts.user or PROCESS_USER, opts.role or PROCESS_ROLE,
                        opts.type or default_type, level))
    return process, file_label(level)


def with_selinux(build: SpecBuild, inputs: SpecInputs) -> None:
    if not inputs.selinux_enabled:
        build.process.pop("selinuxLabel", None)
        build.linux.pop("mountLabel", None)
        return
    process, mount = labels(inputs)
    build.process["selinuxLabel"] = process
    build.linux["mountLabel"] = mount
