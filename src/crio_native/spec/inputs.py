"""What a container spec is built from, and what building it produces.

Every `with_*` option takes `(build, inputs)`: it reads the immutable
SpecInputs and edits `build.spec` (the OCI config.json dict) or records a side
output on `build`.  Anything that would touch the host (stat a device, list
/dev, read a CDI directory) comes in as data or as a small callable, so the
options stay pure and each can be table-tested on its own."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import AbstractSet, Any, Callable, Sequence

from crio_native._proto import api_pb2
from crio_native.config.sections import Config
from crio_native.errors import InvalidArgument
from crio_native.sandbox.record import SandboxRecord

RPC = "CreateContainer"
# Written to the spec as 1.1.0: nothing we emit is newer than runtime-spec
# 1.1 (rro, idmap fields), and Debian 12's crun 1.8 refuses "1.2.0" with
# "unknown version specified" while accepting any 1.0.x/1.1.x.
OCI_VERSION = "1.1.0"


@dataclass(frozen=True)
class DeviceNode:
    """A device node as the OCI spec describes it (linux.devices[])."""

    path: str
    type: str          # c, b, u or p
    major: int
    minor: int
    file_mode: int = 0o666
    uid: int = 0
    gid: int = 0

    def to_oci(self, path: str | None = None) -> dict[str, Any]:
        return {"path": path or self.path, "type": self.type, "major": self.major,
                "minor": self.minor, "fileMode": self.file_mode, "uid": self.uid, "gid": self.gid}


# host path -> the device nodes found there (one for a node, many for a
# directory); [] when the path holds no device.
DeviceLookup = Callable[[str], list[DeviceNode]]


def no_devices(_path: str) -> list[DeviceNode]:
    return []


def always_exists(_path: str) -> bool:
    return True


@dataclass
class SpecInputs:
    """Everything CreateContainer's spec depends on.  `config` is the request's
    ContainerConfig; `image_config` the image's OCI config document (the whole
    JSON or just its "config" object); `rootfs` the container's root directory
    on the host, read for /etc/passwd and /etc/group only."""

    container_id: str
    config: api_pb2.ContainerConfig
    sandbox: SandboxRecord
    image_config: dict[str, Any]
    rootfs: str
    daemon: Config = field(default_factory=Config)
    image_name: str = ""            # the image as ImageService reports it
    image_id: str = ""
    # Host facts, looked up by the caller:
    node_hostname: str = ""         # HOSTNAME for host-network pods
    selinux_enabled: bool = False
    selinux_level: str = ""         # the pod's MCS level, e.g. "s0:c12,c34"
    supports_rro: bool = True       # the runtime takes the "rro" mount option
    host_devices: Sequence[DeviceNode] = ()   # what a privileged container gets
    lookup_device: DeviceLookup = no_devices
    host_path_exists: Callable[[str], bool] = always_exists
    cdi_dirs: Sequence[str] = ("/etc/cdi", "/var/run/cdi")
    pod_pid_namespace: str = ""     # PID mode POD: the pod's pid namespace path
    target_pid_namespace: str = ""  # PID mode TARGET: the target container's
    volume_dir: str = ""            # where image VOLUMEs get their empty dirs
    default_ulimits: Sequence[str] = ()   # "nofile=1024:4096", CRI-O's syntax
    machine: str = ""               # uname -m for the seccomp architectures
    # What a privileged container may get: the daemon's own bounding set
    # (a capability the daemon lacks cannot be granted); None = every one.
    host_capabilities: Sequence[str] | None = None
    # The huge page sizes the container's cgroups can limit ("2MB", "1GB"):
    # the kubelet's 0 limits for other sizes are left out.  None keeps all.
    hugepage_sizes: AbstractSet[str] | None = None
    # The image manifest's annotations (a seccomp profile may come from one),
    # and the fetcher of a seccomp profile OCI artifact by reference (None:
    # none can be fetched).
    image_annotations: dict[str, str] = field(default_factory=dict)
    seccomp_artifact: Callable[[str], bytes] | None = None
    # AppArmor on this host, and the profiles loaded (None: not known).
    apparmor_enabled: bool = False
    apparmor_profiles: AbstractSet[str] | None = None
    # The Landlock ABI the pod's handler applies (0: it cannot apply Landlock).
    landlock_abi: int = 0

    @property
    def security(self) -> api_pb2.LinuxContainerSecurityContext:
        return self.config.linux.security_context

    @property
    def privileged(self) -> bool:
        return self.config.linux.security_context.privileged

    @property
    def image(self) -> dict[str, Any]:
        """The image config's "config" object (Env, Entrypoint, Cmd, ...)."""
        inner = self.image_config.get("config")
        if isinstance(inner, dict):
            return inner
        return self.image_config if "config" not in self.image_config else {}


@dataclass
class SpecBuild:
    """The spec under construction plus what the caller must act on."""

    spec: dict[str, Any]
    relabel: list[str] = field(default_factory=list)      # host paths to relabel
    volume_dirs: list[str] = field(default_factory=list)  # empty dirs to create
    log_path: str = ""
    stop_signal: str = "SIGTERM"
    stdin: bool = False
    stdin_once: bool = False

    @property
    def process(self) -> dict[str, Any]:
        return self.spec.setdefault("process", {})

    @property
    def linux(self) -> dict[str, Any]:
        return self.spec.setdefault("linux", {})

    @property
    def resources(self) -> dict[str, Any]:
        return self.linux.setdefault("resources", {})


Option = Callable[[SpecBuild, SpecInputs], None]


def invalid(field_path: str, reason: str) -> InvalidArgument:
    """InvalidArgument naming the request field, e.g. config.mounts[2].host_path."""
    return InvalidArgument(f"{RPC}: config.{field_path}: {reason}")


def new_build() -> SpecBuild:
    return SpecBuild(spec={"ociVersion": OCI_VERSION, "process": {}, "root": {},
                           "mounts": [], "linux": {}})
