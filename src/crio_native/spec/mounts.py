"""mounts[], root and the masked / read-only /proc paths.

Order matters to every OCI runtime (mounts are made in array order): the
kernel filesystems first as runc and containerd list them, then the pod's
files, then the request's mounts sorted so a parent comes before its
children, then image volumes not already covered."""
from __future__ import annotations

import hashlib
import os
from typing import Any

from crio_native._proto import api_pb2
from crio_native.spec.inputs import SpecBuild, SpecInputs, invalid

SC = "linux.security_context"
TMPFS_SIZE = "size=65536k"

# What containerd and CRI-O both mask and make read-only for an unprivileged
# container (powercap since the PLATYPUS side channel, CVE-2020-8694).
DEFAULT_MASKED_PATHS = [
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
]
DEFAULT_READONLY_PATHS = [
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
]

KERNEL_MOUNTS = frozenset(("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys",
                           "/sys/fs/cgroup"))
POD_FILES = ("/etc/hostname", "/etc/resolv.conf", "/etc/hosts")

PROPAGATION = {
    api_pb2.PROPAGATION_PRIVATE: "rprivate",
    api_pb2.PROPAGATION_HOST_TO_CONTAINER: "rslave",
    api_pb2.PROPAGATION_BIDIRECTIONAL: "rshared",
}


def _mount(dest: str, fstype: str, source: str, options: list[str]) -> dict[str, Any]:
    return {"destination": dest, "type": fstype, "source": source, "options": options}


def default_mounts(privileged: bool) -> list[dict[str, Any]]:
    """The kernel filesystems every container has; sysfs and the cgroup
    mount turn writable for a privileged container, as in containerd."""
    rw = "rw" if privileged else "ro"
    return [
        _mount("/proc", "proc", "proc", ["nosuid", "noexec", "nodev"]),
        _mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", TMPFS_SIZE]),
        _mount("/dev/pts", "devpts", "devpts",
               ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
        _mount("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
        _mount("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", rw]),
        _mount("/sys/fs/cgroup", "cgroup", "cgroup",
               ["nosuid", "noexec", "nodev", "relatime", rw]),
    ]


def shm_mount(inputs: SpecInputs) -> dict[str, Any]:
    """The pod's /dev/shm tmpfs when it has one, the host's for a host-IPC
    pod (containerd's choice), else a private tmpfs."""
    pod = inputs.sandbox
    if pod.shm_path:
        return _mount("/dev/shm", "bind", pod.shm_path, ["rbind", "rprivate", "rw"])
    if pod.ipc_mode == api_pb2.NODE:
        return _mount("/dev/shm", "bind", "/dev/shm", ["rbind", "rprivate", "rw"])
    return _mount("/dev/shm", "tmpfs", "shm",
                  ["nosuid", "noexec", "nodev", "mode=1777", TMPFS_SIZE])


def with_default_mounts(build: SpecBuild, inputs: SpecInputs) -> None:
    mounts = default_mounts(inputs.privileged)
    mounts.insert(3, shm_mount(inputs))      # after devpts, where runc lists it
    build.spec["mounts"] = mounts


def _requested(inputs: SpecInputs) -> set[str]:
    return {os.path.normpath(m.container_path) for m in inputs.config.mounts if m.container_path}


def with_pod_files(build: SpecBuild, inputs: SpecInputs) -> None:
    """/etc/hostname, /etc/resolv.conf and /etc/hosts from the pod directory,
    read-only with a read-only rootfs, unless the request mounts them."""
    if not inputs.sandbox.directory:
        return
    mode = "ro" if inputs.security.readonly_rootfs else "rw"
    taken = _requested(inputs)
    for dest in POD_FILES:
        if dest in taken:
            continue
        source = os.path.join(inputs.sandbox.directory, os.path.basename(dest))
        build.spec["mounts"].append(_mount(dest, "bind", source, ["rbind", "rprivate", mode]))


def _depth(path: str) -> int:
    return len([p for p in path.split("/") if p])


def _drop_mount(mounts: list[dict[str, Any]], dest: str) -> None:
    mounts[:] = [m for m in mounts if os.path.normpath(m["destination"]) != dest]


def request_mount(m: api_pb2.Mount, i: int, inputs: SpecInputs) -> dict[str, Any]:
    field = f"mounts[{i}]"
    dest, src = m.container_path, m.host_path
    if not dest.startswith("/"):
        raise invalid(f"{field}.container_path", f"must be an absolute path, got {dest!r}")
    if m.HasField("image") and m.image.image:
        raise invalid(f"{field}.image", "image volume mounts are not supported")
    check_mount_mappings(m, field, inputs)
    if not src.startswith("/"):
        raise invalid(f"{field}.host_path", f"must be an absolute path, got {src!r}")
    if not inputs.host_path_exists(src):
        raise invalid(f"{field}.host_path", f"{src}: no such file or directory")
    if m.propagation not in PROPAGATION:
        raise invalid(f"{field}.propagation", f"unknown propagation {m.propagation}")
    options = ["rbind", PROPAGATION[m.propagation], "ro" if m.readonly else "rw"]
    if m.recursive_read_only:
        check_rro(m, field, inputs)
        options.append("rro")
    return _mount(os.path.normpath(dest), "bind", os.path.normpath(src), options)


def check_mount_mappings(m: api_pb2.Mount, field: str, inputs: SpecInputs) -> None:
    """A mount's own id maps: every bind of a pod with a user namespace is
    idmapped through that namespace (namespaces.with_user_namespace), so
    maps given here must be the pod's; other idmaps are not supported."""
    for key, pods in (("uidMappings", inputs.sandbox.userns_uids),
                      ("gidMappings", inputs.sandbox.userns_gids)):
        mine = [[x.container_id, x.host_id, x.length] for x in getattr(m, key)]
        if not mine:
            continue
        if not pods:
            raise invalid(f"{field}.{key}", "idmapped mounts need a pod with a user namespace")
        if mine != [list(p) for p in pods]:
            raise invalid(f"{field}.{key}", f"{mine} differ from the pod's user namespace "
                                            f"mappings {pods}: only those are supported")


def check_rro(m: api_pb2.Mount, field: str, inputs: SpecInputs) -> None:
    """The CRI's conditions for recursive read-only mounts."""
    if not m.readonly:
        raise invalid(f"{field}.recursive_read_only", "needs readonly to be true")
    if m.propagation != api_pb2.PROPAGATION_PRIVATE:
        raise invalid(f"{field}.recursive_read_only", "needs propagation PROPAGATION_PRIVATE")
    if not inputs.supports_rro:
        raise invalid(f"{field}.recursive_read_only",
                      "the runtime handler does not support recursive read-only mounts")


def with_request_mounts(build: SpecBuild, inputs: SpecInputs) -> None:
    """Host-path binds; one replaces a default mount at the same place (a
    pod's own /dev/shm, say).  Sorted by depth so /a is mounted before /a/b;
    the sort is stable so equal depths keep the request's order."""
    seen: set[str] = set()
    made = []
    for i, m in enumerate(inputs.config.mounts):
        mount = request_mount(m, i, inputs)
        if mount["destination"] in seen:
            raise invalid(f"mounts[{i}].container_path",
                          f"{mount['destination']} is mounted twice")
        seen.add(mount["destination"])
        made.append(mount)
        if m.selinux_relabel:
            build.relabel.append(mount["source"])
        _propagate_rootfs(build, m.propagation)
    for mount in made:
        _drop_mount(build.spec["mounts"], mount["destination"])
    build.spec["mounts"] += made
    order_mounts(build)


def order_mounts(build: SpecBuild) -> None:
    """Kernel filesystems first in their fixed order, then everything else
    by depth, so a request mount on /etc cannot hide the pod's /etc/hosts;
    stable, so equal depths keep the order they were added in."""
    mounts = build.spec["mounts"]
    head = 0
    while head < len(mounts) and mounts[head]["destination"] in KERNEL_MOUNTS:
        head += 1
    mounts[head:] = sorted(mounts[head:], key=lambda x: _depth(x["destination"]))


def _propagate_rootfs(build: SpecBuild, propagation: int) -> None:
    """A slave or shared bind needs a rootfs that is not private, else the
    runtime's pivot makes it private again (containerd does the same)."""
    if propagation == api_pb2.PROPAGATION_BIDIRECTIONAL:
        build.linux["rootfsPropagation"] = "rshared"
    elif (propagation == api_pb2.PROPAGATION_HOST_TO_CONTAINER
          and build.linux.get("rootfsPropagation") != "rshared"):
        build.linux["rootfsPropagation"] = "rslave"


def volume_source(volume_dir: str, dest: str) -> str:
    digest = hashlib.sha256(dest.encode()).hexdigest()[:16]
    return os.path.join(volume_dir, digest)


def with_image_volumes(build: SpecBuild, inputs: SpecInputs) -> None:
    """Image VOLUMEs as empty directories owned by this container (CRI-O's
    default image_volumes=mkdir, without copying the image's content as
    containerd does).  Skipped when no volume_dir is given or something
    already mounts there."""
    volumes = inputs.image.get("Volumes")
    if not inputs.volume_dir or not isinstance(volumes, dict):
        return
    taken = {os.path.normpath(m["destination"]) for m in build.spec["mounts"]}
    for dest in sorted(volumes, key=_depth):
        if not isinstance(dest, str) or not dest.startswith("/"):
            continue
        dest = os.path.normpath(dest)
        if dest in taken:
            continue
        source = volume_source(inputs.volume_dir, dest)
        build.volume_dirs.append(source)
        build.spec["mounts"].append(_mount(dest, "bind", source, ["rbind", "rprivate", "rw"]))
    order_mounts(build)


def with_root(build: SpecBuild, inputs: SpecInputs) -> None:
    build.spec["root"] = {"path": inputs.rootfs,
                          "readonly": bool(inputs.security.readonly_rootfs)}


def _paths(values, field_path: str) -> list[str]:
    for i, p in enumerate(values):
        if not p.startswith("/"):
            raise invalid(f"{field_path}[{i}]", f"must be an absolute path, got {p!r}")
    return list(values)


def with_masked_paths(build: SpecBuild, inputs: SpecInputs) -> None:
    """Defaults unless the request lists its own; none when privileged.  An
    empty list in the request cannot be told from an absent one in proto3,
    so it means "the defaults" (procMount Unmasked needs a privileged pod or
    user namespaces in Kubernetes anyway)."""
    sc = inputs.security
    masked = _paths(sc.masked_paths, f"{SC}.masked_paths")
    readonly = _paths(sc.readonly_paths, f"{SC}.readonly_paths")
    if inputs.privileged:
        build.linux.pop("maskedPaths", None)
        build.linux.pop("readonlyPaths", None)
        return
    build.linux["maskedPaths"] = masked or list(DEFAULT_MASKED_PATHS)
    build.linux["readonlyPaths"] = readonly or list(DEFAULT_READONLY_PATHS)
