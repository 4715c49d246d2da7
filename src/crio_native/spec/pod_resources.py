"""OCI linux.resources for a pod's cgroup (runtime/pod_cgroup.py): the
pod's resources with the sandbox overhead added to its cpu quota and memory
limit."""
from __future__ import annotations

from typing import Any

from crio_native._proto import api_pb2
from crio_native.errors import InvalidArgument
from crio_native.spec.resources import oci_resources

FIELD = "RunPodSandbox: config.linux"
INT64_MAX = 2**63 - 1


def _with_overhead(name: str, value: int, overhead: int) -> int:
    """`value` plus the overhead's share of it, which must stay an int64
    (protobuf refuses anything larger with ValueError)."""
    total = value + overhead
    if total > INT64_MAX:
        raise InvalidArgument(f"{FIELD}.overhead.{name}: {overhead} added to "
                              f"resources.{name} {value} is more than {INT64_MAX}")
    return total


def pod_resources(linux: api_pb2.LinuxPodSandboxConfig) -> dict[str, Any]:
    total = api_pb2.LinuxContainerResources()
    total.CopyFrom(linux.resources)
    over = linux.overhead
    if total.memory_limit_in_bytes and over.memory_limit_in_bytes:
        total.memory_limit_in_bytes = _with_overhead(
            "memory_limit_in_bytes", total.memory_limit_in_bytes, over.memory_limit_in_bytes)
    if total.cpu_quota > 0 and over.cpu_quota > 0:
        total.cpu_quota = _with_overhead("cpu_quota", total.cpu_quota, over.cpu_quota)
    parts = oci_resources(total, field_prefix=f"{FIELD}.resources")
    return {key: value for key, value in parts if value}
