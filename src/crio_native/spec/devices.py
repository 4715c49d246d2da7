"""linux.devices and the device cgroup rules: the request's devices, and
every host device for a privileged container.  The host is only looked at
through SpecInputs.lookup_device / host_devices; the impure helpers here are
what the daemon passes in."""
from __future__ import annotations

import os
import stat
from typing import Any

from crio_native.spec.inputs import DeviceNode, SpecBuild, SpecInputs, invalid

_TYPES = {stat.S_IFCHR: "c", stat.S_IFBLK: "b", stat.S_IFIFO: "p"}


def node_from_stat(path: str, st: os.stat_result) -> DeviceNode | None:
    kind = _TYPES.get(stat.S_IFMT(st.st_mode))
    if kind is None:
        return None
    major, minor = (os.major(st.st_rdev), os.minor(st.st_rdev)) if kind != "p" else (0, 0)
    return DeviceNode(path, kind, major, minor, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)


def lookup_device(path: str) -> list[DeviceNode]:
    """The node at `path`, or every node below it when it is a directory."""
    try:
        st = os.stat(path)
    except OSError:
        return []
    if not stat.S_ISDIR(st.st_mode):
        node = node_from_stat(path, st)
        return [node] if node else []
    out = []
    for top, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(top, name)
            try:
                node = node_from_stat(full, os.lstat(full))
            except OSError:
                continue
            if node:
                out.append(node)
    return out


def host_devices(root: str = "/dev") -> list[DeviceNode]:
    """What a privileged container gets: the host's /dev, minus the pty
    master and the devpts instance, which the container has its own of."""
    skip = (os.path.join(root, "pts"), os.path.join(root, "ptmx"), os.path.join(root, "console"))
    return [n for n in lookup_device(root)
            if not any(n.path == s or n.path.startswith(s + "/") for s in skip)]


def check_permissions(perms: str, field_path: str) -> str:
    perms = perms or "rwm"
    if any(c not in "rwm" for c in perms) or len(set(perms)) != len(perms):
        raise invalid(field_path, f"want a combination of r, w and m, got {perms!r}")
    return perms


def cgroup_rule(node: DeviceNode, access: str) -> dict[str, Any]:
    return {"allow": True, "type": node.type if node.type != "u" else "c",
            "major": node.major, "minor": node.minor, "access": access}


def add_device(build: SpecBuild, node: DeviceNode, container_path: str, access: str) -> None:
    devices = build.linux.setdefault("devices", [])
    devices[:] = [d for d in devices if d["path"] != container_path]
    devices.append(node.to_oci(container_path))
    build.resources.setdefault("devices", []).append(cgroup_rule(node, access))


def with_device_cgroup(build: SpecBuild, inputs: SpecInputs) -> None:
    """Deny everything by default; the runtime adds its standard devices
    (null, zero, full, tty, random, urandom, pts) itself."""
    access = [{"allow": inputs.privileged, "access": "rwm"}]
    build.resources["devices"] = access + build.resources.get("devices", [])


def with_privileged_devices(build: SpecBuild, inputs: SpecInputs) -> None:
    if not inputs.privileged:
        return
    for node in inputs.host_devices:
        add_device(build, node, node.path, "rwm")


def _container_path(node: DeviceNode, host_root: str, container_path: str) -> str:
    if node.path == host_root:
        return container_path
    return os.path.join(container_path, os.path.relpath(node.path, host_root))


def with_devices(build: SpecBuild, inputs: SpecInputs) -> None:
    """Each request device by its host path; a directory brings every node
    below it (containerd's behaviour), mapped under container_path."""
    for i, dev in enumerate(inputs.config.devices):
        field = f"devices[{i}]"
        host = dev.host_path
        if not host.startswith("/"):
            raise invalid(f"{field}.host_path", f"must be an absolute path, got {host!r}")
        target = dev.container_path or host
        if not target.startswith("/"):
            raise invalid(f"{field}.container_path", f"must be an absolute path, got {target!r}")
        access = check_permissions(dev.permissions, f"{field}.permissions")
        nodes = inputs.lookup_device(host)
        if not nodes:
            raise invalid(f"{field}.host_path", f"{host}: no such device")
        for node in nodes:
            add_device(build, node, _container_path(node, host, os.path.normpath(target)), access)
