"""The configuration schema: one dataclass per TOML section, each able to
validate itself.  Every key has an embedded default, so no file is needed.

Sections follow CRI-O's crio.conf where a CRI-O user would look for a key;
names that differ are documented in docs/config.md."""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from crio_native.errors import ConfigError

MIB = 1024 * 1024
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_HANDLER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SYSCTL_NAME = re.compile(r"^[a-z0-9_][a-z0-9_./-]*$")

# Linux capability names this runtime knows (as in capability.h, 5.x/6.x kernels).
KNOWN_CAPABILITIES = frozenset(
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP "
    "LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK "
    "IPC_OWNER SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN "
    "SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE "
    "AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND "
    "AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE".split()
)

# CRI-O's default capability set for containers that ask for nothing else.
DEFAULT_CAPABILITIES = [
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "SETGID", "SETUID", "SETPCAP",
    "NET_BIND_SERVICE", "KILL",
]


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration ("90s", "5m", "1h30m", "0"); ValueError if bad."""
    if text.strip() == "0":
        return 0.0
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"not a duration like 30s, 5m or 1h30m: {text!r}")
    return total


def require_absolute(key: str, value: str, allow_empty: bool = False) -> None:
    if allow_empty and value == "":
        return
    if not value.startswith("/"):
        raise ConfigError(key, f"must be an absolute path (got {value!r})")


def require_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(key, f"must be one of {', '.join(choices)} (got {value!r})")


def require_port(key: str, value: int) -> None:
    if not 0 <= value <= 65535:
        raise ConfigError(key, f"must be a port number 0-65535 (got {value})")


def require_duration(key: str, value: str) -> None:
    try:
        parse_duration(value)
    except ValueError as e:
        raise ConfigError(key, str(e)) from None


def require_address(key: str, value: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ConfigError(key, f"must be an IP address (got {value!r})") from None


@dataclass
class ApiConfig:
    listen: str = "/run/crio-native/crio-native.sock"
    stream_address: str = "127.0.0.1"
    stream_port: int = 0
    stream_idle_timeout: str = "4h"
    stream_tls_cert: str = ""
    stream_tls_key: str = ""
    grpc_max_send_msg_size: int = 80 * MIB
    grpc_max_recv_msg_size: int = 80 * MIB

    def validate(self) -> None:
        require_absolute("api.listen", self.listen)
        require_address("api.stream_address", self.stream_address)
        require_port("api.stream_port", self.stream_port)
        require_duration("api.stream_idle_timeout", self.stream_idle_timeout)
        require_absolute("api.stream_tls_cert", self.stream_tls_cert, allow_empty=True)
        require_absolute("api.stream_tls_key", self.stream_tls_key, allow_empty=True)
        if bool(self.stream_tls_cert) != bool(self.stream_tls_key):
            raise ConfigError("api.stream_tls_cert",
                              "stream_tls_cert and stream_tls_key go together")
        for key in ("grpc_max_send_msg_size", "grpc_max_recv_msg_size"):
            if getattr(self, key) < 16 * MIB:
                raise ConfigError(f"api.{key}", f"must be at least {16 * MIB} bytes (16 MiB)")


@dataclass
class RuntimeHandlerConfig:
    """One RuntimeClass handler.  runtime_type: builtin (the compiled runtime
    inside the daemon), oci (an OCI runtime CLI such as runc or crun) or vm
    (a shim v2 runtime such as kata)."""

    runtime_type: str = "oci"
    runtime_path: str = ""
    runtime_root: str = ""
    # Annotation prefixes this handler honours (as CRI-O's allowed_annotations):
    # a pod annotation that switches on a runtime feature is acted on only
    # when its key starts with one of these; otherwise it is logged and ignored.
    allowed_annotations: list[str] = field(default_factory=list)

    def validate(self, name: str) -> None:
        key = f"runtime.runtimes.{name}"
        if not _HANDLER_NAME.match(name):
            raise ConfigError(key, "handler names use letters, digits, '_', '.' and '-'")
        require_choice(f"{key}.runtime_type", self.runtime_type, ("builtin", "oci", "vm"))
        require_absolute(f"{key}.runtime_path", self.runtime_path, allow_empty=True)
        require_absolute(f"{key}.runtime_root", self.runtime_root, allow_empty=True)
        if self.runtime_type == "builtin" and self.runtime_path:
            raise ConfigError(f"{key}.runtime_path", "the builtin runtime takes no runtime_path")
        for i, prefix in enumerate(self.allowed_annotations):
            if not isinstance(prefix, str) or not prefix.strip():
                raise ConfigError(f"{key}.allowed_annotations[{i}]",
                                  "must be a non-empty annotation key or prefix")


def default_runtimes() -> dict[str, RuntimeHandlerConfig]:
    return {
        "builtin": RuntimeHandlerConfig(runtime_type="builtin"),
        "runc": RuntimeHandlerConfig(runtime_type="oci", runtime_path="/usr/sbin/runc"),
        "crun": RuntimeHandlerConfig(runtime_type="oci", runtime_path="/usr/bin/crun"),
    }


@dataclass
class RuntimeConfig:
    default_runtime: str = "builtin"
    runtimes: dict[str, RuntimeHandlerConfig] = field(default_factory=default_runtimes)
    cgroup_manager: str = "cgroupfs"
    # Container cgroups go at or below this cgroup; "" = the daemon's own.
    cgroup_root: str = ""
    default_capabilities: list[str] = field(default_factory=lambda: list(DEFAULT_CAPABILITIES))
    default_sysctls: list[str] = field(default_factory=list)
    seccomp_profile: str = ""
    # A container whose request sets no seccomp profile at all runs
    # unconfined, as with CRI-O 1.36's defaults; true gives it RuntimeDefault
    # (the name older CRI-O releases used for that choice).
    seccomp_use_default_when_empty: bool = False
    # CRI-O's key: the seccomp profile (a JSON file) of privileged
    # containers, which otherwise run unconfined whatever they ask for.
    privileged_seccomp_profile: str = ""
    # Where the seccomp recorder (pod annotation
    # seccomp-recorder.crio-native.io/<container> = NAME) writes NAME.json:
    # the kubelet's Localhost profile directory, so a recorded profile can be
    # used at once as localhost_ref <root>/NAME.json.
    seccomp_profile_root: str = "/var/lib/kubelet/seccomp"
    # Every syscall a container's seccomp profile denies or logs is logged
    # (rate-limited per container) and counted, attributed to its pod,
    # container and image (the daemon becomes the filter's notify agent).
    seccomp_audit: bool = False
    # The node's Ed25519 key that signs each started container's attestation
    # record (PEM, PKCS#8); made at first start.  "" = <root>/attestation/node.key.
    attestation_key: str = ""

    def validate(self) -> None:
        require_absolute("runtime.attestation_key", self.attestation_key, allow_empty=True)
        for name, handler in self.runtimes.items():
            handler.validate(name)
        if self.default_runtime not in self.runtimes:
            raise ConfigError(
                "runtime.default_runtime",
                f"no handler {self.default_runtime!r} in runtime.runtimes "
                f"(have: {', '.join(sorted(self.runtimes))})",
            )
        require_choice("runtime.cgroup_manager", self.cgroup_manager, ("cgroupfs", "systemd"))
        require_absolute("runtime.cgroup_root", self.cgroup_root, allow_empty=True)
        if ".." in self.cgroup_root.split("/"):
            raise ConfigError("runtime.cgroup_root",
                              f"must not contain '..' (got {self.cgroup_root!r})")
        for cap in self.default_capabilities:
            if cap.upper().removeprefix("CAP_") not in KNOWN_CAPABILITIES:
                raise ConfigError("runtime.default_capabilities", f"unknown capability {cap!r}")
        for entry in self.default_sysctls:
            name, sep, _ = entry.partition("=")
            if not sep or not _SYSCTL_NAME.match(name.strip()):
                raise ConfigError("runtime.default_sysctls", f"want name=value, got {entry!r}")
        require_absolute("runtime.seccomp_profile", self.seccomp_profile, allow_empty=True)
        require_absolute("runtime.privileged_seccomp_profile", self.privileged_seccomp_profile,
                         allow_empty=True)
        require_absolute("runtime.seccomp_profile_root", self.seccomp_profile_root)


@dataclass
class ImageConfig:
    pause_image: str = "registry.k8s.io/pause:3.10"
    pause_command: str = "/pause"
    registries_conf: str = "/etc/containers/registries.conf"
    registries_conf_dir: str = "/etc/containers/registries.conf.d"
    signature_policy: str = "/etc/containers/policy.json"
    insecure_registries: list[str] = field(default_factory=list)
    mirrors: dict[str, list[str]] = field(default_factory=dict)
    pinned_images: list[str] = field(default_factory=list)
    pull_progress_timeout: str = "5m"
    max_concurrent_downloads: int = 3
    # syncfs(2) each unpacked layer before it is committed, so a power cut
    # never leaves a committed layer with empty files (containerd's
    # image_pull_with_sync_fs); off like theirs: it costs a disk flush per layer.
    sync_layers: bool = False
    # Per-registry TLS material: <dir>/<host[:port]>/*.crt (CAs), *.cert + *.key (client).
    registry_certs_dir: str = "/etc/containers/certs.d"
    # Credentials in the containers-auth.json(5) format, used when the CRI sends none.
    auth_file: str = ""

    def validate(self) -> None:
        if not self.pause_image:
            raise ConfigError("image.pause_image", "must name an image")
        require_absolute("image.registry_certs_dir", self.registry_certs_dir)
        require_absolute("image.auth_file", self.auth_file, allow_empty=True)
        require_absolute("image.registries_conf", self.registries_conf)
        require_absolute("image.registries_conf_dir", self.registries_conf_dir)
        require_absolute("image.signature_policy", self.signature_policy)
        require_duration("image.pull_progress_timeout", self.pull_progress_timeout)
        if not 1 <= self.max_concurrent_downloads <= 64:
            raise ConfigError("image.max_concurrent_downloads", "must be between 1 and 64")
        for prefix, locations in self.mirrors.items():
            if not locations:
                raise ConfigError(f"image.mirrors.{prefix}", "needs at least one mirror location")


@dataclass
class NetworkConfig:
    network_dir: str = "/etc/cni/net.d"
    plugin_dirs: list[str] = field(default_factory=lambda: ["/opt/cni/bin", "/usr/lib/cni"])
    cni_default_network: str = ""
    # Put the packaged bridge network into network_dir at start-up when it holds
    # no network config at all (network/default_network.py), as CRI-O's packages do.
    install_default_network: bool = True

    def validate(self) -> None:
        require_absolute("network.network_dir", self.network_dir)
        if not self.plugin_dirs:
            raise ConfigError("network.plugin_dirs", "needs at least one directory")
        for d in self.plugin_dirs:
            require_absolute("network.plugin_dirs", d)


# CRI-O's included_pod_metrics groups
POD_METRIC_GROUPS = ("cpu", "memory", "network", "disk", "process", "hugetlb", "oom")


@dataclass
class MetricsConfig:
    enable_metrics: bool = False
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9090
    # TLS for the endpoint: both or neither (PEM files)
    metrics_cert: str = ""
    metrics_key: str = ""
    # metric groups ListPodSandboxMetrics reports (CRI-O's [crio.stats] key,
    # empty by default as there); see docs/metrics.md
    included_pod_metrics: list[str] = field(default_factory=list)
    # also serve the endpoint on this unix socket (CRI-O's key); "" for none
    metrics_socket: str = ""

    def validate(self) -> None:
        require_absolute("metrics.metrics_socket", self.metrics_socket, allow_empty=True)
        for i, group in enumerate(self.included_pod_metrics):
            require_choice(f"metrics.included_pod_metrics[{i}]", group, POD_METRIC_GROUPS)
        require_address("metrics.metrics_host", self.metrics_host)
        require_port("metrics.metrics_port", self.metrics_port)
        require_absolute("metrics.metrics_cert", self.metrics_cert, allow_empty=True)
        require_absolute("metrics.metrics_key", self.metrics_key, allow_empty=True)
        if bool(self.metrics_cert) != bool(self.metrics_key):
            raise ConfigError("metrics.metrics_key" if self.metrics_cert else
                              "metrics.metrics_cert",
                              "TLS needs both metrics_cert and metrics_key")


@dataclass
class TracingConfig:
    """OpenTelemetry spans of the CRI calls, exported over OTLP/gRPC
    (CRI-O's [crio.tracing] keys and defaults; docs/tracing.md)."""

    enable_tracing: bool = False
    tracing_endpoint: str = "127.0.0.1:4317"
    # of each million traces the kubelet did not sample, how many we start;
    # a call whose traceparent is sampled is always traced (parent-based)
    tracing_sampling_rate_per_million: int = 0

    def validate(self) -> None:
        host, sep, port = self.tracing_endpoint.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError("tracing.tracing_endpoint",
                              f"want host:port, got {self.tracing_endpoint!r}")
        if not 0 <= self.tracing_sampling_rate_per_million <= 1_000_000:
            raise ConfigError("tracing.tracing_sampling_rate_per_million",
                              f"must be 0..1000000 (got "
                              f"{self.tracing_sampling_rate_per_million})")


@dataclass
class PolicyConfig:
    """The final-spec policy gate (docs/policy.md): globs of YAML rule files,
    compiled at start-up; none by default."""

    files: list[str] = field(default_factory=list)

    def validate(self) -> None:
        for i, pattern in enumerate(self.files):
            require_absolute(f"policy.files[{i}]", pattern)


@dataclass
class Config:
    root: str = "/var/lib/crio-native"
    runroot: str = "/run/crio-native"
    log_dir: str = "/var/log/crio-native/pods"
    log_level: str = "info"
    log_format: str = "text"
    # CRI-O's version files: one in the runroot (gone after a reboot), one
    # under the root (kept; another major.minor there tells an upgrade).
    # Empty: <runroot>/version and <root>/version (state/boot.py).
    version_file: str = ""
    version_file_persist: str = ""
    api: ApiConfig = field(default_factory=ApiConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    tracing: TracingConfig = field(default_factory=TracingConfig)

    def validate(self) -> None:
        require_absolute("root", self.root)
        require_absolute("runroot", self.runroot)
        require_absolute("log_dir", self.log_dir)
        require_absolute("version_file", self.version_file, allow_empty=True)
        require_absolute("version_file_persist", self.version_file_persist, allow_empty=True)
        require_choice("log_level", self.log_level, ("debug", "info", "warning", "error"))
        require_choice("log_format", self.log_format, ("text", "json"))
        for section in (self.api, self.runtime, self.image, self.network, self.metrics,
                        self.policy, self.tracing):
            section.validate()
