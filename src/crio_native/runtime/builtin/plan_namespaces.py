"""The namespace records: which namespaces the container gets new and which
it joins, its user namespace's id maps, and what is set inside them
(hostname, domainname, sysctls), each refused unless the container has its
own namespace for it."""
from __future__ import annotations

from crio_native.runtime.builtin.plan_fields import abs_path, array_at, invalid, u32
from crio_native.runtime.builtin.records import Rec, Record, rec

NAMESPACES = {
    "mount": 0x00020000, "cgroup": 0x02000000, "uts": 0x04000000, "ipc": 0x08000000,
    "user": 0x10000000, "pid": 0x20000000, "network": 0x40000000, "time": 0x00000080,
}
NS_PROC_FILES = {"mount": "mnt", "network": "net", "pid": "pid", "ipc": "ipc", "uts": "uts",
                 "user": "user", "cgroup": "cgroup", "time": "time"}


def namespace_records(linux: dict) -> tuple[list[Record], set[str]]:
    flags, joins, seen = 0, [], set()
    for i, ns in enumerate(array_at(linux, "namespaces", "linux.namespaces")):
        field = f"linux.namespaces[{i}]"
        kind = ns.get("type") if isinstance(ns, dict) else None
        if kind not in NAMESPACES:
            raise invalid(f"{field}.type", f"unknown namespace type {kind!r}")
        if kind in seen:
            raise invalid(f"{field}.type", f"namespace {kind!r} listed twice")
        seen.add(kind)
        if ns.get("path"):
            joins.append((kind, abs_path(ns["path"], f"{field}.path")))
        else:
            flags |= NAMESPACES[kind]
    # A joined user namespace is entered last, in the child, once the mounts
    # are made (crn_proc_join_userns): its record goes first all the same.
    joins.sort(key=lambda j: j[0] != "user")
    records = [rec(Rec.NS_NEW, flags)]
    records += [rec(Rec.NS_JOIN, NAMESPACES[k], p) for k, p in joins]
    new = {k for k, bit in NAMESPACES.items() if flags & bit}
    return records, new


def joined_user_namespace(linux: dict) -> bool:
    return any(isinstance(ns, dict) and ns.get("type") == "user" and ns.get("path")
               for ns in linux.get("namespaces") or [])


def id_map_records(linux: dict, new_ns: set[str]) -> list[Record]:
    """The maps the parent writes for a new user namespace.  A joined one
    has its maps already; any given with it only describe it (the idmapped
    mounts, plan_rootfs) and are not written."""
    out: list[Record] = []
    if "user" not in new_ns and joined_user_namespace(linux):
        return out
    for which, key in ((0, "uidMappings"), (1, "gidMappings")):
        for i, m in enumerate(array_at(linux, key, f"linux.{key}")):
            field = f"linux.{key}[{i}]"
            if "user" not in new_ns:
                raise invalid(field, "id mappings need a new user namespace")
            if not isinstance(m, dict):
                raise invalid(field, "must be an object")
            out.append(rec(Rec.ID_MAP, which, u32(m.get("containerID"), f"{field}.containerID"),
                           u32(m.get("hostID"), f"{field}.hostID"),
                           u32(m.get("size"), f"{field}.size")))
    return out


def hostname_records(spec: dict, new_ns: set[str]) -> list[Record]:
    out = []
    for key, kind in (("hostname", Rec.HOSTNAME), ("domainname", Rec.DOMAINNAME)):
        value = spec.get(key)
        if not value:
            continue
        if not isinstance(value, str):
            raise invalid(key, "must be a string")
        if "uts" not in new_ns:
            raise invalid(key, f"cannot set the {key} without a new uts namespace")
        out.append(rec(kind, value))
    return out


IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
               "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}


def _sysctl_namespace(key: str) -> str | None:
    """The namespace that makes `key` the container's own, as runc decides."""
    if key in IPC_SYSCTLS or key.startswith("fs.mqueue."):
        return "ipc"
    if key.startswith("net."):
        return "network"
    if key in ("kernel.hostname", "kernel.domainname"):
        return "uts"
    return None


def sysctl_records(linux: dict, new_ns: set[str]) -> list[Record]:
    sysctls = linux.get("sysctl") or {}
    if not isinstance(sysctls, dict):
        raise invalid("linux.sysctl", "must be an object")
    out = []
    for key, value in sysctls.items():
        field = f"linux.sysctl.{key}"
        if not isinstance(value, str):
            raise invalid(field, "value must be a string")
        parts = key.split(".")
        if not all(parts) or any(p in ("..", ".") or "/" in p for p in parts):
            raise invalid(field, "not a sysctl name")
        ns = _sysctl_namespace(key)
        if ns is None or ns not in new_ns:
            raise invalid(field, f"sysctl {key!r} is not in a separate kernel namespace of "
                                 "the container")
        out.append(rec(Rec.SYSCTL, "/".join(parts), value))
    return out
