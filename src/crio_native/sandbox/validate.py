"""Checks on a RunPodSandbox request before anything is made.  Each error
names the request field, as INVALID_ARGUMENT."""
from __future__ import annotations

import ipaddress
import re

from crio_native.errors import InvalidArgument

MIB = 1024 * 1024
DEFAULT_SHM_SIZE = 64 * MIB
MAX_SHM_SIZE = 64 * 1024 * MIB          # beyond this a request is a mistake
SHM_SIZE_ANNOTATION = "io.kubernetes.cri-o.ShmSize"
_QUANTITY = re.compile(r"^(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_QUANTITY_UNITS = {None: 1, "k": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4,
                   "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}
_DNS_OPTION = re.compile(r"^[A-Za-z0-9_-]+(:[0-9]+)?$")
_HOSTNAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", re.IGNORECASE)
_SYSCTL = re.compile(r"^[a-z0-9_]+([./][a-z0-9_-]+)+$")

# Namespaced sysctls (the kernel scopes them to a namespace the pod owns),
# by the namespace they live in.
IPC_SYSCTLS = ("kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
               "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem")
IPC_SYSCTL_PREFIXES = ("fs.mqueue.",)
NET_SYSCTL_PREFIXES = ("net.",)

RPC = "RunPodSandbox"


def field_error(path: str, reason: str) -> InvalidArgument:
    return InvalidArgument(f"{RPC}: config.{path}: {reason}")


def check_metadata(config) -> None:
    if not config.HasField("metadata"):
        raise field_error("metadata", "is required")
    for name in ("name", "namespace", "uid"):
        if not getattr(config.metadata, name):
            raise field_error(f"metadata.{name}", "must not be empty")


def check_hostname(hostname: str) -> None:
    if hostname and (len(hostname) > 64 or not _HOSTNAME.match(hostname)):
        raise field_error("hostname", f"not a valid hostname: {hostname!r}")


def check_dns(dns) -> dict[str, list[str]]:
    for i, server in enumerate(dns.servers):
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise field_error(f"dns_config.servers[{i}]",
                              f"not an IP address: {server!r}") from None
    for i, search in enumerate(dns.searches):
        if not search or any(c.isspace() for c in search):
            raise field_error(f"dns_config.searches[{i}]", f"not a search domain: {search!r}")
    for i, option in enumerate(dns.options):
        if not _DNS_OPTION.match(option):
            raise field_error(f"dns_config.options[{i}]", f"not a resolv.conf option: {option!r}")
    return {"servers": list(dns.servers), "searches": list(dns.searches),
            "options": list(dns.options)}


def sysctl_namespace(name: str) -> str | None:
    """'ipc', 'net', or None for a sysctl that is not namespaced."""
    if name in IPC_SYSCTLS or name.startswith(IPC_SYSCTL_PREFIXES):
        return "ipc"
    if name.startswith(NET_SYSCTL_PREFIXES):
        return "net"
    return None


def check_sysctls(sysctls: dict[str, str], host_network: bool, host_ipc: bool) -> dict[str, str]:
    out = {}
    for raw_name, value in sysctls.items():
        name = raw_name.replace("/", ".")
        key = f"linux.sysctls[{raw_name!r}]"
        if not _SYSCTL.match(name):
            raise field_error(key, "not a sysctl name")
        where = sysctl_namespace(name)
        if where is None:
            raise field_error(key, "not a namespaced sysctl; it would change the whole node")
        if where == "net" and host_network:
            raise field_error(key, "network sysctls need the pod's own network namespace")
        if where == "ipc" and host_ipc:
            raise field_error(key, "IPC sysctls need the pod's own IPC namespace")
        if "\n" in value or not value:
            raise field_error(key, f"bad value {value!r}")
        out[name] = value
    return out


def parse_quantity(text: str) -> int:
    match = _QUANTITY.match(text.strip())
    if not match:
        raise ValueError(text)
    return int(match.group(1)) * _QUANTITY_UNITS[match.group(2)]


def quantity_annotation(annotations: dict[str, str], name: str, upper: int,
                        example: str, bounds: str) -> int | None:
    """A positive size or rate from annotation `name`, at most `upper`; None if absent."""
    text = annotations.get(name)
    if text is None:
        return None
    key = f"annotations[{name!r}]"
    try:
        value = parse_quantity(text)
    except ValueError:
        raise field_error(key, f"not a quantity like {example}: {text!r}") from None
    if not 0 < value <= upper:
        raise field_error(key, f"{text} is outside {bounds}")
    return value


def shm_size(annotations: dict[str, str]) -> int:
    size = quantity_annotation(annotations, SHM_SIZE_ANNOTATION, MAX_SHM_SIZE, "64Mi",
                               "1 byte .. 64Gi")
    return DEFAULT_SHM_SIZE if size is None else size


INGRESS_ANNOTATION = "kubernetes.io/ingress-bandwidth"
EGRESS_ANNOTATION = "kubernetes.io/egress-bandwidth"
# Burst the kubelet's bandwidth annotations carry no value for: effectively unlimited,
# so the rate alone shapes traffic.
BANDWIDTH_BURST_BITS = 2**31 - 1
MAX_BANDWIDTH_BPS = 10**15  # 1 Pbit/s: anything larger is a typo


def bandwidth(annotations: dict[str, str]) -> dict[str, int]:
    """The CNI `bandwidth` capability from the kubelet's pod annotations."""
    out = {}
    for annotation, direction in ((INGRESS_ANNOTATION, "ingress"), (EGRESS_ANNOTATION, "egress")):
        rate = quantity_annotation(annotations, annotation, MAX_BANDWIDTH_BPS, "10M",
                                   "1 bit/s .. 1P bit/s")
        if rate is not None:
            out[f"{direction}Rate"] = rate
            out[f"{direction}Burst"] = BANDWIDTH_BURST_BITS
    return out


def check_port_mappings(mappings) -> list[dict]:
    out = []
    protocols = {0: "tcp", 1: "udp", 2: "sctp"}
    for i, pm in enumerate(mappings):
        if not 0 < pm.container_port <= 65535:
            raise field_error(f"port_mappings[{i}].container_port", "must be 1-65535")
        if not 0 <= pm.host_port <= 65535:
            raise field_error(f"port_mappings[{i}].host_port", "must be 0-65535")
        if pm.host_ip:
            try:
                ipaddress.ip_address(pm.host_ip)
            except ValueError:
                raise field_error(f"port_mappings[{i}].host_ip", "not an IP address") from None
        if pm.host_port:
            out.append({"hostPort": pm.host_port, "containerPort": pm.container_port,
                        "protocol": protocols.get(pm.protocol, "tcp"), "hostIP": pm.host_ip})
    return out


# ---- user namespaces (KEP-127) -------------------------------------------------

USERNS_FIELD = "linux.security_context.namespace_options.userns_options"
IdMap = tuple[int, int, int]        # (container_id, host_id, length)
MODE_NAMES = {0: "POD", 1: "CONTAINER", 2: "NODE", 3: "TARGET"}


def check_userns(userns, rpc: str = RPC) -> tuple[list[IdMap], list[IdMap]] | None:
    """The id maps of a user namespace request, or None for the host's.

    What the kubelet sends: mode NODE without mappings (hostUsers: true), or
    mode POD with one uid and one gid mapping of container id 0 (a 65536-long
    range at a multiple of 65536).  Everything else is refused, naming the
    field: CONTAINER and TARGET (no per-container user namespaces), mappings
    on NODE, more or fewer than one mapping, a range that leaves the
    container's root unmapped or runs past 2^32."""
    def err(path: str, reason: str) -> InvalidArgument:
        return InvalidArgument(f"{rpc}: config.{USERNS_FIELD}.{path}: {reason}")

    mode = userns.mode
    if mode == 2:
        for key in ("uids", "gids"):
            if len(getattr(userns, key)):
                raise err(key, "mappings are only for mode POD (mode NODE uses the host's "
                               "user namespace)")
        return None
    if mode != 0:
        raise err("mode", f"mode {MODE_NAMES.get(mode, mode)} is not supported: a user "
                          "namespace is the pod's (POD) or the host's (NODE)")
    maps = []
    for key in ("uids", "gids"):
        got = list(getattr(userns, key))
        if len(got) != 1:
            raise err(key, f"mode POD needs exactly one mapping, got {len(got)}")
        m = got[0]
        if m.container_id != 0:
            raise err(f"{key}[0].container_id",
                      f"the mapping must start at container id 0, got {m.container_id}")
        if m.length == 0:
            raise err(f"{key}[0].length", "must be at least 1")
        if m.host_id + m.length > 1 << 32:
            raise err(f"{key}[0].length", f"host ids {m.host_id}+{m.length} run past 2^32")
        maps.append([(m.container_id, m.host_id, m.length)])
    return maps[0], maps[1]


def id_map_text(maps: list[IdMap] | list[list[int]]) -> str:
    """/proc/PID/uid_map's format."""
    return "".join(f"{c} {h} {n}\n" for c, h, n in maps)
