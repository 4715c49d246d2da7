"""OCI linux.resources for a pod's cgroup (runtime/pod_cgroup.py): the
pod's resources with the sandbox overhead added to its cpu quota and memory
limit."""
from __future__ import annotations

from typing import Any

from crio_native._proto import api_pb2
from crio_native.spec.resources import oci_resources


def pod_resources(linux: api_pb2.LinuxPodSandboxConfig) -> dict[str, Any]:
    total = api_pb2.LinuxContainerResources()
    total.CopyFrom(linux.resources)
    over = linux.overhead
    if total.memory_limit_in_bytes and over.memory_limit_in_bytes:
        total.memory_limit_in_bytes += over.memory_limit_in_bytes
    if total.cpu_quota > 0 and over.cpu_quota > 0:
        total.cpu_quota += over.cpu_quota
    parts = oci_resources(total, field_prefix="RunPodSandbox: config.linux.resources")
    return {key: value for key, value in parts if value}
