"""OCI `linux.resources.network` as cgroup file writes, in the shape
cgroups.resource_files uses: (field, controller, v1 file, v2 file, value).

Both knobs belong to cgroup v1 controllers that v2 never got (v2 leaves
packet classification to eBPF and netfilter's cgroup match):

- `classID` -> net_cls.classid, the class id tc and netfilter see on the
  group's packets (0xAAAABBBB is tc handle AAAA:BBBB);
- `priorities` -> net_prio.ifpriomap, one "IFNAME PRIO" line per write; the
  kernel looks the interface up in the host's initial network namespace
  (ENODEV when it has none by that name).

The v2 file is empty: only a mounted v1 hierarchy with the controller can
enforce them, and cgroups.plan_cgroups turns its absence into an error
naming the field.  runc writes the same files with the same values."""
from __future__ import annotations

from typing import Any

from crio_native.errors import InvalidArgument

Entry = tuple[str, str, str, str, str]
# controllers only cgroup v1 has: a v1 hierarchy holding just these (or a
# named one) may sit next to a cgroup v2 root (see cgroups.pure_v2)
V1_ONLY = frozenset({"net_cls", "net_prio"})
# IFNAMSIZ is 16, the NUL included
IFNAME_MAX = 15
U32_MAX = 0xFFFFFFFF


def _invalid(field: str, reason: str) -> InvalidArgument:
    return InvalidArgument(f"config.json: linux.resources.{field}: {reason}")


def _u32(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U32_MAX:
        raise _invalid(field, f"must be an integer in 0..{U32_MAX}, not {value!r}")
    return value


def _ifname(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value or len(value.encode()) > IFNAME_MAX \
            or value in (".", "..") or any(c.isspace() or c in "/:" for c in value):
        raise _invalid(field, f"must be a network interface name ({IFNAME_MAX} bytes at most, "
                       f"no spaces, '/' or ':'), not {value!r}")
    return value


def network_files(network: Any) -> list[Entry]:
    if not network:
        return []
    if not isinstance(network, dict):
        raise _invalid("network", "must be an object")
    out: list[Entry] = []
    if network.get("classID") is not None:
        classid = _u32(network["classID"], "network.classID")
        out.append(("network.classID", "net_cls", "net_cls.classid", "", str(classid)))
    priorities = network.get("priorities") or []
    if not isinstance(priorities, list):
        raise _invalid("network.priorities", "must be an array")
    for i, entry in enumerate(priorities):
        field = f"network.priorities[{i}]"
        if not isinstance(entry, dict):
            raise _invalid(field, "must be an object with name and priority")
        name = _ifname(entry.get("name"), f"{field}.name")
        prio = _u32(entry.get("priority"), f"{field}.priority")
        out.append((field, "net_prio", "net_prio.ifpriomap", "", f"{name} {prio}"))
    return out
