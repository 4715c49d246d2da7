"""Slice and scope names as systemd nests them, and the systemd driver's
`slice:prefix:name` cgroupsPath (runc's and crun's format).  Pure: nothing
here asks systemd."""
from __future__ import annotations

import re
from dataclasses import dataclass

from crio_native.errors import InvalidArgument

# systemd's unit name alphabet (unit-name.c: VALID_CHARS)
_UNIT_CHARS = re.compile(r"[A-Za-z0-9:_.\\-]+")
ROOT_SLICE = "-.slice"
DEFAULT_SLICE = "system.slice"


def _check_unit_name(name: str, field: str) -> None:
    if not _UNIT_CHARS.fullmatch(name) or len(name) > 255:
        raise InvalidArgument(f"{field}: {name!r} is not a valid systemd unit name "
                              "(letters, digits and ':_.\\-' only, at most 255)")


def expand_slice(name: str, field: str = "slice") -> str:
    """The cgroup path systemd gives slice `name`: each dash opens a level,
    so kubepods-burstable-pod1.slice lives at
    /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice
    ("-.slice", the root slice, is "/")."""
    if name == ROOT_SLICE:
        return "/"
    _check_unit_name(name, field)
    stem = name.removesuffix(".slice")
    if stem == name or not stem or stem.startswith("-") or stem.endswith("-") \
            or "--" in stem:
        raise InvalidArgument(f"{field}: {name!r} is not a slice name like "
                              "kubepods-burstable.slice")
    path, prefix = "", ""
    for part in stem.split("-"):
        prefix = f"{prefix}-{part}" if prefix else part
        path += f"/{prefix}.slice"
    return path


def slice_of_parent(parent: str, field: str) -> str:
    """The slice a pod's cgroup_parent names under the systemd driver: the
    bare name (kubepods-besteffort-pod<uid>.slice) or, as the kubelet's
    systemd driver sends it, the slice's full cgroup path
    (/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice).
    Empty: system.slice, as runc and CRI-O default."""
    if not parent:
        return DEFAULT_SLICE
    if "/" not in parent:
        expand_slice(parent, field)
        return parent
    parts = [p for p in parent.split("/") if p]
    if not parent.startswith("/") or not parts:
        raise InvalidArgument(f"{field}: {parent!r}: want a slice name or its absolute "
                              "cgroup path")
    name = parts[-1]
    if expand_slice(name, field) != "/" + "/".join(parts):
        raise InvalidArgument(f"{field}: {parent!r} is not where systemd puts {name} "
                              f"({expand_slice(name, field)})")
    return name


@dataclass(frozen=True)
class SystemdPath:
    """A `slice:prefix:name` cgroupsPath: the scope unit `prefix-name.scope`
    in `slice`, and the cgroup path systemd gives that scope."""
    slice: str
    unit: str

    @property
    def cgroup(self) -> str:
        return f"{expand_slice(self.slice).rstrip('/')}/{self.unit}"


def is_systemd_path(cgroups_path: str) -> bool:
    return ":" in cgroups_path


def parse_cgroups_path(cgroups_path: str,
                       field: str = "config.json: linux.cgroupsPath") -> SystemdPath:
    """`slice:prefix:name` as runc's systemd driver reads it: an empty slice
    is system.slice, the unit is `prefix-name.scope` (`name.scope` without a
    prefix)."""
    parts = cgroups_path.split(":")
    if len(parts) != 3 or not parts[2]:
        raise InvalidArgument(f"{field}: {cgroups_path!r}: the systemd cgroup driver wants "
                              "slice:prefix:name (e.g. kubepods-pod1.slice:crio:ID)")
    slice_, prefix, name = parts
    slice_ = slice_ or DEFAULT_SLICE
    expand_slice(slice_, field)
    if name.endswith(".slice"):
        raise InvalidArgument(f"{field}: {cgroups_path!r}: a container needs a scope, "
                              f"not the slice {name}")
    unit = f"{prefix}-{name}.scope" if prefix else f"{name}.scope"
    _check_unit_name(unit, field)
    return SystemdPath(slice_, unit)
