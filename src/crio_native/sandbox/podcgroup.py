"""The pod cgroup: the requested cgroup_parent (cgroupfs driver), made when it
is missing and given the pod's resources plus its overhead where the host
has the controllers.  Kubelets make their pod cgroups themselves, so usually
the group exists and only limits the sandbox asked for are written; a group
we made is removed with the pod.  Like every group the runtime touches, it
must lie at or below the cgroup root (runtime.cgroup_root)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from crio_native._proto import api_pb2
from crio_native.config import Config
from crio_native.errors import CrioNativeError, InvalidArgument
from crio_native.linux import cgroups
from crio_native.runtime.builtin.container import resolve_cgroup_root
from crio_native.sandbox.record import SandboxRecord
from crio_native.spec.resources import oci_resources

FIELD = "RunPodSandbox: config.linux.cgroup_parent"


def pod_resources(linux: api_pb2.LinuxPodSandboxConfig) -> dict[str, Any]:
    """OCI linux.resources for the pod cgroup: the pod's resources with the
    sandbox overhead added to its cpu quota and memory limit."""
    total = api_pb2.LinuxContainerResources()
    total.CopyFrom(linux.resources)
    over = linux.overhead
    if total.memory_limit_in_bytes and over.memory_limit_in_bytes:
        total.memory_limit_in_bytes += over.memory_limit_in_bytes
    if total.cpu_quota > 0 and over.cpu_quota > 0:
        total.cpu_quota += over.cpu_quota
    try:
        parts = oci_resources(total)
    except InvalidArgument as e:
        raise InvalidArgument(str(e).replace("CreateContainer: config.linux.resources",
                                             "RunPodSandbox: config.linux.resources")) from None
    return {key: value for key, value in parts if value}


def create_pod_cgroup(record: SandboxRecord, linux: api_pb2.LinuxPodSandboxConfig,
                      config: Config) -> None:
    """Make (or reuse) the pod cgroup and write its limits; records the dirs
    in `record.cgroup_dirs` and what was made in `record.cgroups_made`."""
    parent = record.cgroup_parent
    if not parent or config.runtime.cgroup_manager != "cgroupfs":
        return
    try:
        plan = cgroups.plan_cgroups(parent, pod_resources(linux),
                                    root=resolve_cgroup_root(config.runtime.cgroup_root or None))
    except CrioNativeError as e:
        raise type(e)(f"{FIELD}: {parent!r}: {e}") from None
    made = cgroups.create(plan)
    record.cgroup_dirs = [str(d) for d in plan.dirs]
    record.cgroups_made = [str(d) for d in made]


def remove_pod_cgroup(record: SandboxRecord) -> None:
    """Remove the groups this pod made (deepest first); a kubelet's own pod
    cgroup is left to the kubelet."""
    cgroups.remove([Path(d) for d in record.cgroups_made])
    record.cgroups_made = []
