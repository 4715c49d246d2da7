"""Everything CreateContainer makes before the runtime runs: the spec inputs
gathered from the request, the pod and the image; the OCI bundle; the log
file's directory.  Pure where it can be (inputs_for), thin I/O elsewhere."""
from __future__ import annotations

import errno
import json
import os
import socket
from pathlib import Path
from typing import Any, Callable

from crio_native._proto import api_pb2
from crio_native.config import Config
from crio_native.container.record import ContainerRecord
from crio_native.errors import FailedPrecondition, InvalidArgument
from crio_native.linux import apparmor, capabilities
from crio_native.linux.cgroups import hugetlb
from crio_native.sandbox.record import SandboxRecord
from crio_native.spec import devices
from crio_native.spec import selinux as selinux_spec
from crio_native.spec.builder import build_container_spec
from crio_native.spec.inputs import SpecBuild, SpecInputs
from crio_native.state.files import atomic_write_json

RPC = "CreateContainer"
TARGET = 3   # NamespaceMode TARGET


def check_config(config: api_pb2.ContainerConfig) -> None:
    if not config.metadata.name:
        raise InvalidArgument(f"{RPC}: config.metadata.name: must not be empty")
    if not config.image.image:
        raise InvalidArgument(f"{RPC}: config.image.image: must not be empty")


def inputs_for(record: ContainerRecord, config: api_pb2.ContainerConfig,
               sandbox: SandboxRecord, image_config: dict[str, Any], daemon: Config, *,
               supports_rro: bool, target_pid: Callable[[str], int],
               landlock_abi: int = 0) -> SpecInputs:
    from crio_native._native import selinux

    privileged = config.linux.security_context.privileged
    target_ns = ""
    opts = config.linux.security_context.namespace_options
    if opts.pid == TARGET:
        if not opts.target_id:
            raise InvalidArgument(f"{RPC}: config.linux.security_context.namespace_options."
                                  "target_id: must name a container for PID mode TARGET")
        target_ns = f"/proc/{target_pid(opts.target_id)}/ns/pid"
    return SpecInputs(
        container_id=record.id, config=config, sandbox=sandbox, image_config=image_config,
        rootfs=record.rootfs, daemon=daemon, image_name=record.image_ref,
        image_id=record.image_id, node_hostname=socket.gethostname(),
        selinux_enabled=selinux.enabled(), supports_rro=supports_rro,
        host_devices=devices.host_devices() if privileged else (),
        lookup_device=devices.lookup_device, host_path_exists=os.path.exists,
        target_pid_namespace=target_ns, volume_dir=os.path.join(record.directory, "volumes"),
        selinux_level=sandbox.selinux_level,
        machine=os.uname().machine,
        host_capabilities=capabilities.names_in_mask(capabilities.bounding_caps())
        if privileged else None,
        hugepage_sizes=hugetlb.host_enforceable_page_sizes(),
        landlock_abi=landlock_abi, **apparmor_inputs())


def apparmor_inputs() -> dict[str, Any]:
    """SpecInputs' AppArmor facts; crio-native-default is loaded first (for
    RuntimeDefault) where AppArmor is on."""
    if not apparmor.enabled():
        return {"apparmor_enabled": False}
    try:
        apparmor.ensure_default_loaded()
    except RuntimeError as e:
        raise FailedPrecondition(f"{RPC}: {e}") from None
    return {"apparmor_enabled": True, "apparmor_profiles": set(apparmor.loaded_profiles())}


def rootfs_mount_label(config: api_pb2.ContainerConfig, sandbox: SandboxRecord) -> str:
    """The SELinux label the container's rootfs is mounted with: its mount
    label, known before the spec is built; "" where SELinux is off."""
    from crio_native._native import selinux

    if not selinux.enabled():
        return ""
    return selinux_spec.container_mount_label(
        config.linux.security_context.selinux_options, sandbox.selinux_level)


def build_spec(inputs: SpecInputs) -> SpecBuild:
    return build_container_spec(inputs)


# Relabelling these would take the host's own files away from its services.
PROTECTED_FROM_RELABEL = frozenset({"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib",
                                    "/lib64", "/proc", "/root", "/run", "/sbin", "/sys",
                                    "/tmp", "/usr", "/var"})


def relabel_host_paths(build: SpecBuild, selinux_enabled: bool) -> None:
    """Host paths of mounts that asked for selinux_relabel get the
    container's file label (only on an SELinux host)."""
    if not selinux_enabled or not build.relabel:
        return
    from crio_native.linux.selinux import relabel

    label = build.linux.get("mountLabel", "")
    for path in build.relabel:
        if os.path.normpath(path) in PROTECTED_FROM_RELABEL:
            raise InvalidArgument(f"{RPC}: config.mounts: refusing to relabel {path} "
                                  "(selinux_relabel on a system directory)")
        relabel(path, label)


def write_bundle(record: ContainerRecord, build: SpecBuild) -> None:
    """config.json in the bundle dir, plus the empty dirs image VOLUMEs get."""
    for d in build.volume_dirs:
        os.makedirs(d, mode=0o755, exist_ok=True)
    Path(record.bundle).mkdir(mode=0o700, exist_ok=True)
    # not fsynced: the bundle is under the runroot, gone after a reboot, and
    # the page cache keeps it through a daemon crash
    atomic_write_json(Path(record.bundle) / "config.json", build.spec, mode=0o600,
                      durable=False)


# errnos that say the path itself cannot be (the request's fault), not the host
_BAD_PATH_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.ENOENT, errno.ENOTDIR, errno.ELOOP,
                              errno.EINVAL, errno.EEXIST})


def prepare_log(path: str) -> None:
    """The kubelet makes the pod's log directory; a container's log_path may
    add a subdirectory of its own.  A directory that cannot be made there
    (the pod's log_directory in /proc, a file in the way) is the request's
    log path at fault, named as such."""
    if not path:
        return
    try:
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    except OSError as e:
        kind = InvalidArgument if e.errno in _BAD_PATH_ERRNOS else FailedPrecondition
        raise kind(f"{RPC}: config.log_path: cannot make the directory of {path!r}: "
                   f"{e.strerror}") from e


def cri_mounts(config: api_pb2.ContainerConfig) -> list[dict[str, Any]]:
    """The request's mounts as ContainerStatus reports them."""
    out = []
    for m in config.mounts:
        out.append({"container_path": m.container_path, "host_path": m.host_path,
                    "readonly": m.readonly, "selinux_relabel": m.selinux_relabel,
                    "propagation": m.propagation,
                    "recursive_read_only": m.recursive_read_only})
    return out


def requested_image(image: api_pb2.ImageSpec) -> dict[str, Any]:
    """The record's fields for config.image, as ContainerStatus reports it."""
    return {"image": image.image, "user_image": image.user_specified_image,
            "image_annotations": dict(image.annotations)}


def image_config_of(images, image_record) -> dict[str, Any]:
    return json.loads(images.store.content.get(image_record.config_digest))


def image_annotations_of(images, image_record) -> dict[str, str]:
    """The image manifest's annotations (string values only)."""
    if not image_record.manifest_digest:
        return {}
    try:
        manifest = json.loads(images.store.content.get(image_record.manifest_digest))
    except (OSError, ValueError):
        return {}
    raw = manifest.get("annotations") if isinstance(manifest, dict) else None
    if not isinstance(raw, dict):
        return {}
    return {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, str)}


def process_for_exec(spec: dict[str, Any], cmd: list[str]) -> dict[str, Any]:
    """An exec'd process runs as the container's own: same user, env, cwd,
    capabilities, no_new_privs and labels; only the command differs."""
    process = dict(spec.get("process") or {})
    process["args"] = list(cmd)
    process["terminal"] = False
    process.pop("consoleSize", None)
    return process
