"""The rootfs records: the root, the mount tree in config.json's order (a
`cgroup` mount made as runc makes it), the device nodes, the default
symlinks, readonly and masked paths, and a read-only root last.  The rootfs
is read so that a mount destination cannot escape it and a bind source's
kind (file or directory) is known."""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from crio_native.linux import selinux as selinux_mod
from crio_native.linux.cgroups import CgroupPlan
from crio_native.linux.mounts import (DEFAULT_DEVICES, DEVICE_TYPES, MS_BIND, MS_RDONLY, MS_REC,
                                      PROPAGATION, Device, MountOptions, default_symlinks,
                                      parse_mount_options)
from crio_native.runtime.builtin.plan_fields import abs_path, array_at, invalid, object_at, u32
from crio_native.runtime.builtin.plan_namespaces import joined_user_namespace
from crio_native.runtime.builtin.records import (LABEL_MAX, MOUNT_BIND, MOUNT_DEST_FILE,
                                                 MOUNT_FS, MOUNT_IDMAP, MOUNT_LABEL_XATTR,
                                                 MOUNT_RRO, Rec, Record, rec)

FS_TYPES = {"tmpfs", "proc", "sysfs", "devpts", "mqueue", "cgroup2", "bind", "none"}
# Labelled by setxattr on their root rather than a context= option (runc's
# label.SetFileLabel): a pod's containers sharing an IPC namespace mount one
# mqueue superblock again, and a second context= on it would fail.
XATTR_LABEL_TYPES = {"mqueue"}


def has_cgroup_mount(spec: dict) -> bool:
    return any(isinstance(m, dict) and m.get("type") == "cgroup" for m in spec.get("mounts") or [])


def root_path(spec: dict, bundle: Path) -> Path:
    root = object_at(spec, "root", "root")
    path = root.get("path")
    if not isinstance(path, str) or not path:
        raise invalid("root.path", "missing")
    full = (Path(bundle) / path).resolve()
    if not full.is_dir():
        raise invalid("root.path", f"{full} is not a directory")
    return full


def check_inside(rootfs: Path, dest: str, field: str) -> None:
    """Walk `dest` inside `rootfs` the way the container will see it and
    refuse one whose symlinks climb above the root.  (The C side resolves with
    RESOLVE_IN_ROOT anyway; this turns an escape attempt into a clear error.)"""
    depth: list[str] = []
    todo, hops = [p for p in dest.split("/") if p], 0
    while todo:
        part = todo.pop(0)
        if part == ".":
            continue
        if part == "..":
            if not depth:
                raise invalid(field, f"{dest!r} resolves outside the container root")
            depth.pop()
            continue
        here = rootfs.joinpath(*depth, part)
        if not here.is_symlink():
            depth.append(part)
            continue
        hops += 1
        if hops > 40:
            raise invalid(field, f"{dest!r}: too many levels of symbolic links")
        target = os.readlink(here)
        if target.startswith("/"):
            depth = []
        todo[:0] = [p for p in target.split("/") if p]


def cgroup_mount_records(dest: str, opts: MountOptions, cgroups: CgroupPlan,
                         new_ns: set[str], mount_label: str | None = None
                         ) -> tuple[list[Record], list[Record]]:
    """A `cgroup` mount, as runc makes it: on a pure v2 host cgroup2 itself
    (rooted at the container's group with a cgroup namespace, at the host's
    root without one), or a bind of the container's group in a user namespace
    without a cgroup namespace (cgroup2 cannot be mounted there); elsewhere a
    tmpfs holding a bind of the container's group in each v1 hierarchy, plus
    symlinks for co-mounted controllers (cpu -> cpu,cpuacct); that tmpfs
    gets the mount label, as runc's does.
    Returns (mount records, symlink records)."""
    flags = opts.flags & ~(MS_BIND | MS_REC)
    v2 = [d for _name, d, version in cgroups.views if version == 2]
    if len(cgroups.views) == 1 and v2:
        if "cgroup" in new_ns or "user" not in new_ns:
            return [rec(Rec.MOUNT, flags, opts.propagation, MOUNT_FS, "cgroup2", dest,
                        "cgroup2", "")], []
        return [rec(Rec.MOUNT, flags | MS_BIND | MS_REC, opts.propagation, MOUNT_BIND,
                    str(v2[0]), dest, "", "")], []
    mounts = [rec(Rec.MOUNT, flags & ~MS_RDONLY, 0, MOUNT_FS, "tmpfs", dest, "tmpfs",
                  selinux_mod.mount_data_with_label("tmpfs", "mode=755", mount_label))]
    links = []
    for name, d, version in cgroups.views:
        if version == 2:
            continue  # runc leaves a hybrid host's unified hierarchy out too
        mounts.append(rec(Rec.MOUNT, flags | MS_BIND | MS_REC, opts.propagation, MOUNT_BIND,
                          str(d), f"{dest}/{name}", "", ""))
        if "," in name:
            links += [rec(Rec.SYMLINK, name, f"{dest}/{part}") for part in name.split(",")]
    return mounts, links


def _maps(value: Any, field: str) -> list[tuple[int, int, int]]:
    if not isinstance(value, list):
        raise invalid(field, "must be an array")
    out = []
    for j, m in enumerate(value):
        if not isinstance(m, dict):
            raise invalid(f"{field}[{j}]", "must be an object")
        out.append((u32(m.get("containerID"), f"{field}[{j}].containerID"),
                    u32(m.get("hostID"), f"{field}[{j}].hostID"),
                    u32(m.get("size"), f"{field}[{j}].size")))
    return out


def to_host_id(container_id: int, maps: list[tuple[int, int, int]]) -> int:
    """`container_id` as the host sees it through a user namespace's maps."""
    for inside, outside, size in maps:
        if inside <= container_id < inside + size:
            return outside + container_id - inside
    return container_id


def _idmap_kind(m: dict, field: str, linux: dict, is_bind: bool) -> int:
    """MOUNT_IDMAP for a mount with id maps: a bind, idmapped through the
    user namespace the container joins (the pod's, KEP-127), whose maps
    must be the mount's.  A new user namespace is entered at clone, before
    any mount, so its idmapped mounts cannot be made: refused."""
    if "uidMappings" not in m and "gidMappings" not in m:
        return 0
    if not is_bind:
        raise invalid(f"{field}.uidMappings", "idmapped mounts must be binds")
    if not joined_user_namespace(linux):
        raise invalid(f"{field}.uidMappings", "the built-in runtime makes idmapped mounts "
                      "through a joined user namespace (linux.namespaces user with a path)")
    for key in ("uidMappings", "gidMappings"):
        mine = _maps(m.get(key, []), f"{field}.{key}")
        theirs = _maps(linux.get(key, []), f"linux.{key}")
        if mine != theirs:
            raise invalid(f"{field}.{key}", f"{mine} differ from linux.{key} {theirs}: "
                          "only the user namespace's own mapping is supported")
    return MOUNT_IDMAP


def check_idmappable(source: str, field: str, linux: dict, recursive: bool) -> None:
    """A bind source whose filesystem cannot be idmapped (procfs, sysfs, most
    network and FUSE filesystems, anything before its kernel learnt it) is
    refused here, naming the mount, rather than failing in the child: tried
    on the real source with the real namespace, a detached copy that is
    dropped at once.  (Chowning the volume instead would change the host's
    files under the pod's feet.)"""
    userns = next((ns["path"] for ns in linux.get("namespaces") or []
                   if isinstance(ns, dict) and ns.get("type") == "user" and ns.get("path")), "")
    if not os.path.exists(userns):
        return      # not on this host (a plan built for inspection)
    from crio_native._native import mount as native

    try:
        os.close(native.idmapped_tree(source, userns, recursive))
    except OSError as e:
        raise invalid(f"{field}.source", f"{source} cannot be an idmapped mount (its "
                      "filesystem, or one mounted below it, does not support idmapped "
                      f"mounts), which a pod with a user namespace needs for its "
                      f"volumes: {e.strerror}") from None


ID_OPTION_TYPES = {"tmpfs", "devpts"}


def host_id_options(fstype: str, data: str, linux: dict) -> str:
    """uid=/gid= of a tmpfs or devpts are the container's ids: in a joined
    user namespace the host's root mounts them, so they are translated
    through its maps, and a tmpfs without them is owned by the container's
    root, as it would be had the container mounted it itself."""
    if fstype not in ID_OPTION_TYPES or not joined_user_namespace(linux):
        return data
    uids = _maps(linux.get("uidMappings", []), "linux.uidMappings")
    gids = _maps(linux.get("gidMappings", []), "linux.gidMappings")
    parts = [p for p in data.split(",") if p]
    seen = set()
    for n, part in enumerate(parts):
        key, eq, value = part.partition("=")
        if eq and key in ("uid", "gid") and value.isdigit():
            seen.add(key)
            parts[n] = f"{key}={to_host_id(int(value), uids if key == 'uid' else gids)}"
    if fstype == "tmpfs":
        for key, maps in (("uid", uids), ("gid", gids)):
            if key not in seen:
                parts.append(f"{key}={to_host_id(0, maps)}")
    return ",".join(parts)


def mount_record(m: Any, i: int, bundle: Path, rootfs: Path,
                 mount_label: str | None = None, linux: dict | None = None) -> Record:
    field = f"mounts[{i}]"
    if not isinstance(m, dict):
        raise invalid(field, "must be an object")
    dest = abs_path(m.get("destination"), f"{field}.destination")
    check_inside(rootfs, dest, f"{field}.destination")
    fstype = m.get("type") or "none"
    if fstype not in FS_TYPES:
        raise invalid(f"{field}.type", f"unsupported filesystem type {fstype!r}")
    opts = parse_mount_options(array_at(m, "options", f"{field}.options"))
    source = m.get("source") or fstype
    kind = MOUNT_FS
    if opts.is_bind or fstype == "bind":
        kind = MOUNT_BIND
        src = Path(bundle) / source
        if not src.exists():
            raise invalid(f"{field}.source", f"{src}: no such file or directory")
        source = str(src.resolve())
        if not src.is_dir():
            kind |= MOUNT_DEST_FILE
        fstype = ""
    if opts.recursive_ro:
        kind |= MOUNT_RRO
    kind |= _idmap_kind(m, field, linux or {}, bool(kind & MOUNT_BIND))
    if kind & MOUNT_IDMAP:
        check_idmappable(source, field, linux or {}, bool(opts.flags & MS_REC))
    data = host_id_options(fstype, opts.data, linux or {})
    if kind == MOUNT_FS:
        data = selinux_mod.mount_data_with_label(fstype, data, mount_label)
        if mount_label and fstype in XATTR_LABEL_TYPES and "context=" not in data:
            kind |= MOUNT_LABEL_XATTR
    return rec(Rec.MOUNT, opts.flags, opts.propagation, kind, source, dest, fstype, data)


def rootfs_records(spec: dict, bundle: Path, barrier: str | None, new_ns: set[str],
                   cgroups: CgroupPlan | None = None,
                   mount_label: str | None = None, no_pivot: bool = False) -> list[Record]:
    """The mount tree.  `no_pivot` (runc's --no-pivot): the rootfs is moved
    onto / and chrooted into instead of pivot_root; `mount_label` also goes
    to the tmpfs over masked directories and (by setxattr) to mqueue."""
    rootfs = root_path(spec, bundle)
    linux = object_at(spec, "linux", "linux")
    out = [rec(Rec.ROOTFS, str(rootfs))]
    if no_pivot:
        out.append(rec(Rec.NO_PIVOT))
    if mount_label:
        if len(mount_label.encode()) > LABEL_MAX:
            raise invalid("linux.mountLabel", f"longer than {LABEL_MAX} bytes")
        out.append(rec(Rec.MOUNT_LABEL, mount_label))
    prop = linux.get("rootfsPropagation")
    if prop:
        if prop not in PROPAGATION:
            raise invalid("linux.rootfsPropagation", f"unknown propagation {prop!r}")
        out.append(rec(Rec.ROOT_PROPAGATION, PROPAGATION[prop]))
    if barrier:
        out.append(rec(Rec.BARRIER, barrier))
    mounts = array_at(spec, "mounts", "mounts")
    links: list[Record] = []
    for i, m in enumerate(mounts):
        if isinstance(m, dict) and m.get("type") == "cgroup":
            dest = abs_path(m.get("destination"), f"mounts[{i}].destination")
            check_inside(rootfs, dest, f"mounts[{i}].destination")
            if cgroups is None:
                raise invalid(f"mounts[{i}]", "a cgroup mount needs the container's cgroups")
            opts = parse_mount_options(array_at(m, "options", f"mounts[{i}].options"))
            more, more_links = cgroup_mount_records(dest, opts, cgroups, new_ns, mount_label)
            out += more
            links += more_links
        else:
            out.append(mount_record(m, i, bundle, rootfs, mount_label, linux))
    out += device_records(linux, userns="user" in new_ns) + links
    has_devpts = any(isinstance(m, dict) and m.get("type") == "devpts"
                     and m.get("destination") == "/dev/pts" for m in mounts)
    out += [rec(Rec.SYMLINK, t, link) for t, link in default_symlinks(has_devpts)]
    for key, kind in (("readonlyPaths", Rec.READONLY_PATH), ("maskedPaths", Rec.MASK)):
        for i, p in enumerate(array_at(linux, key, f"linux.{key}")):
            out.append(rec(kind, abs_path(p, f"linux.{key}[{i}]")))
    if object_at(spec, "root", "root").get("readonly"):
        out.append(rec(Rec.ROOT_READONLY))
    return out


def device_records(linux: dict, userns: bool = False) -> list[Record]:
    devices = {d.path: d for d in DEFAULT_DEVICES}
    for i, d in enumerate(array_at(linux, "devices", "linux.devices")):
        field = f"linux.devices[{i}]"
        if not isinstance(d, dict) or d.get("type") not in DEVICE_TYPES:
            raise invalid(f"{field}.type", f"must be one of c, u, b, p, got "
                          f"{d.get('type') if isinstance(d, dict) else d!r}")
        path = abs_path(d.get("path"), f"{field}.path")
        mode = d.get("fileMode", 0o666)
        devices[path] = Device(path,
                               DEVICE_TYPES[d["type"]] | (u32(mode, f"{field}.fileMode") & 0o7777),
                               u32(d.get("major", 0), f"{field}.major"),
                               u32(d.get("minor", 0), f"{field}.minor"),
                               u32(d.get("uid", 0), f"{field}.uid"),
                               u32(d.get("gid", 0), f"{field}.gid"))
    if userns:
        # mknod is refused in a user namespace: bind the host's node instead.
        return [rec(Rec.MOUNT, MS_BIND, 0, MOUNT_BIND | MOUNT_DEST_FILE, d.path, d.path, "", "")
                for d in devices.values()]
    if joined_user_namespace(linux):
        # made by the host's root before the user namespace is entered: owned
        # by the ids the container's uid/gid are on the host
        uids = _maps(linux.get("uidMappings", []), "linux.uidMappings")
        gids = _maps(linux.get("gidMappings", []), "linux.gidMappings")
        devices = {p: replace(d, uid=to_host_id(d.uid, uids), gid=to_host_id(d.gid, gids))
                   for p, d in devices.items()}
    return [rec(Rec.DEVICE, d.mode, d.major, d.minor, d.uid, d.gid, d.path)
            for d in devices.values()]
