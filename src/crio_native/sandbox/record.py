"""What the daemon remembers about one pod sandbox, as a JSON record."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crio_native.state.records import JsonRecord

CREATING = "creating"   # half-made: finished or rolled back at restart
READY = "ready"
NOTREADY = "notready"


@dataclass
class SandboxRecord(JsonRecord):
    id: str
    name: str
    namespace: str
    uid: str
    attempt: int
    state: str = CREATING
    created_at: int = 0                       # ns since the epoch
    runtime_handler: str = ""
    hostname: str = ""
    log_directory: str = ""
    cgroup_parent: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    # NamespaceMode values from the request: 0 POD, 1 CONTAINER, 2 NODE, 3 TARGET
    network_mode: int = 0
    pid_mode: int = 0
    ipc_mode: int = 0
    # the pod's user namespace (KEP-127): [container_id, host_id, length] each;
    # empty: the host's.  Its pin is pins["user"].
    userns_uids: list[list[int]] = field(default_factory=list)
    userns_gids: list[list[int]] = field(default_factory=list)
    pins: dict[str, str] = field(default_factory=dict)   # nsfs name -> pin path we own
    infra: bool = False                                   # an infra process holds the PID ns
    sandbox_task: bool = False    # the pod's vm handler runs its sandbox task (runtime/shim/pod.py)
    directory: str = ""                                   # per-pod files under runroot
    shm_path: str = ""                                    # mounted tmpfs, if any
    shm_size: int = 0
    dns: dict[str, list[str]] = field(default_factory=dict)
    port_mappings: list[dict[str, Any]] = field(default_factory=list)
    bandwidth: dict[str, int] = field(default_factory=dict)   # CNI bandwidth capability
    ip_ranges: list[list[dict[str, str]]] = field(default_factory=list)  # CNI ipRanges (pod CIDR)
    selinux_level: str = ""       # the pod's MCS level (SELinux hosts only), e.g. s0:c4,c91
    cgroup_dirs: list[str] = field(default_factory=list)     # the pod cgroup, per hierarchy
    cgroups_made: list[str] = field(default_factory=list)    # the part of it we created
    sysctls: dict[str, str] = field(default_factory=dict)
    network_name: str = ""        # CNI network used for ADD; empty for host network
    network_attached: bool = False
    ips: list[str] = field(default_factory=list)

    @property
    def name_key(self) -> str:
        return reservation_key(self.name, self.namespace, self.uid, self.attempt)

    @property
    def netns_path(self) -> str:
        return self.pins.get("net", "")

    @property
    def host_network(self) -> bool:
        return self.network_mode == 2


def reservation_key(name: str, namespace: str, uid: str, attempt: int) -> str:
    return f"{name}_{namespace}_{uid}_{attempt}"
