"""linux.resources and linux.cgroupsPath.

The runtime spec's resources are cgroup-v1 shaped (cpu.shares, memory.swap
as memory+swap); runc, crun and the built-in runtime convert them for
cgroup v2 (cpu.weight, memory.swap.max = swap - limit).  We keep those
semantics rather than pre-converting, and pass the request's `unified` map
through as linux.resources.unified, which the runtimes write verbatim on v2.
The converters below are for readers of the v2 files (stats, updates)."""
from __future__ import annotations

import re
from typing import AbstractSet, Any

from crio_native._proto import api_pb2
from crio_native.spec.inputs import RPC, SpecBuild, SpecInputs
from crio_native.errors import InvalidArgument
from crio_native.linux.systemd.names import slice_of_parent

RES = "linux.resources"
# Where CreateContainer's resources sit; other RPCs that check the same
# message pass their own prefix (e.g. "UpdateContainerResources: linux").
CREATE_FIELD = f"{RPC}: config.{RES}"
MIN_SHARES, MAX_SHARES = 2, 262144
MIN_PERIOD, MAX_PERIOD = 1000, 1000000
MIN_QUOTA = 1000
_CPUSET = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")
_PAGE_SIZE = re.compile(r"^\d+(KB|MB|GB|TB|PB)$")
_UNIFIED_KEY = re.compile(r"^[a-z_]+\.[a-z0-9_.]+$")


def swap_max_from_swap(memory_swap: int, memory_limit: int) -> int:
    """cgroup v2 memory.swap.max for v1's memory+swap total."""
    return max(memory_swap - memory_limit, 0)


def _invalid(prefix: str, name: str, reason: str) -> InvalidArgument:
    return InvalidArgument(f"{prefix}.{name}: {reason}")


def _cpu(res: api_pb2.LinuxContainerResources, prefix: str) -> dict[str, Any]:
    cpu: dict[str, Any] = {}
    if res.cpu_shares:
        if not MIN_SHARES <= res.cpu_shares <= MAX_SHARES:
            raise _invalid(prefix, "cpu_shares", f"must be in [{MIN_SHARES}, {MAX_SHARES}], "
                           f"got {res.cpu_shares}")
        cpu["shares"] = res.cpu_shares
    if res.cpu_period:
        if not MIN_PERIOD <= res.cpu_period <= MAX_PERIOD:
            raise _invalid(prefix, "cpu_period", f"must be in [{MIN_PERIOD}, {MAX_PERIOD}] "
                           f"microseconds, got {res.cpu_period}")
        cpu["period"] = res.cpu_period
    if res.cpu_quota and res.cpu_quota != -1:
        if res.cpu_quota < MIN_QUOTA:
            raise _invalid(prefix, "cpu_quota", f"must be -1 (no limit) or at least {MIN_QUOTA} "
                           f"microseconds, got {res.cpu_quota}")
        cpu["quota"] = res.cpu_quota
    for name, key in (("cpuset_cpus", "cpus"), ("cpuset_mems", "mems")):
        value = getattr(res, name)
        if value:
            if not _CPUSET.match(value):
                raise _invalid(prefix, name, f"not a list like 0-3,5: {value!r}")
            cpu[key] = value
    return cpu


def _memory(res: api_pb2.LinuxContainerResources, prefix: str) -> dict[str, Any]:
    """A limit without a swap limit gets swap = limit, i.e. no swap, as
    CRI-O does (Kubernetes' NoSwap); swap must not be below the limit."""
    if res.memory_limit_in_bytes < 0:
        raise _invalid(prefix, "memory_limit_in_bytes", f"must be >= 0, got "
                       f"{res.memory_limit_in_bytes}")
    swap = res.memory_swap_limit_in_bytes
    if swap < -1:
        raise _invalid(prefix, "memory_swap_limit_in_bytes", f"must be >= -1, got {swap}")
    memory: dict[str, Any] = {}
    limit = res.memory_limit_in_bytes
    if limit:
        memory["limit"] = limit
        if swap and swap != -1 and swap < limit:
            raise _invalid(prefix, "memory_swap_limit_in_bytes", f"{swap} is below "
                           f"memory_limit_in_bytes {limit} (it counts memory plus swap)")
        memory["swap"] = swap or limit
    elif swap:
        raise _invalid(prefix, "memory_swap_limit_in_bytes", "needs memory_limit_in_bytes")
    return memory


def _hugepages(res: api_pb2.LinuxContainerResources, prefix: str,
               sizes: AbstractSet[str] | None) -> list[dict[str, Any]]:
    """The limits, less a 0 limit for a size not in `sizes`: the kubelet
    sends one per page size the node has, 0 where the pod asks none, and a
    runtime that cannot limit that size (no hugetlb controller it can use,
    as on a hybrid host with hugetlb only in cgroup v2) would refuse the
    container for it.  A non-zero limit stays, for the runtime to refuse."""
    out = []
    for i, hp in enumerate(res.hugepage_limits):
        if not _PAGE_SIZE.match(hp.page_size):
            raise _invalid(prefix, f"hugepage_limits[{i}].page_size",
                           f"want a size like 2MB or 1GB, got {hp.page_size!r}")
        if hp.limit == 0 and sizes is not None and hp.page_size not in sizes:
            continue
        out.append({"pageSize": hp.page_size, "limit": hp.limit})
    return out


def _unified(res: api_pb2.LinuxContainerResources, prefix: str) -> dict[str, str]:
    for key, value in res.unified.items():
        if not _UNIFIED_KEY.match(key) or key.startswith("cgroup."):
            raise _invalid(prefix, f"unified[{key!r}]", "not a cgroup v2 controller file")
        if "\n" in value:
            raise _invalid(prefix, f"unified[{key!r}]", "value must be one line")
    return dict(sorted(res.unified.items()))


def oci_resources(res: api_pb2.LinuxContainerResources, *,
                  field_prefix: str = CREATE_FIELD,
                  hugepage_sizes: AbstractSet[str] | None = None) -> list[tuple[str, Any]]:
    """The OCI linux.resources entries for CRI resources, each possibly empty.
    An InvalidArgument names the field as `<field_prefix>.<name>`, e.g.
    "CreateContainer: config.linux.resources.cpu_shares".  `hugepage_sizes`:
    the page sizes the host can limit (None: all), see _hugepages."""
    return [("cpu", _cpu(res, field_prefix)), ("memory", _memory(res, field_prefix)),
            ("hugepageLimits", _hugepages(res, field_prefix, hugepage_sizes)),
            ("unified", _unified(res, field_prefix))]


def with_resources(build: SpecBuild, inputs: SpecInputs) -> None:
    for key, value in oci_resources(inputs.config.linux.resources,
                                    hugepage_sizes=inputs.hugepage_sizes):
        if value:
            build.resources[key] = value
        else:
            build.resources.pop(key, None)


def cgroups_path(manager: str, parent: str, container_id: str) -> str:
    """CRI-O's naming: cgroupfs <parent>/crio-<id>; systemd <slice>:crio:<id>,
    the slice given by name or, as the kubelet's systemd driver sends it, by
    its full cgroup path.
    Without a cgroup_parent the path is relative, so the runtime places the
    group below its cgroup root (runtime.cgroup_root) instead of at the top
    of the hierarchy, which it may not own."""
    if manager == "systemd":
        return f"{slice_of_parent(parent, f'{RPC}: pod cgroup_parent')}:crio:{container_id}"
    if parent and not parent.startswith("/"):
        raise InvalidArgument(f"{RPC}: pod cgroup_parent {parent!r}: the cgroupfs manager "
                              "wants an absolute path")
    if not parent or parent == "/":
        return f"crio-{container_id}"
    return f"{parent.rstrip('/')}/crio-{container_id}"


def with_cgroups_path(build: SpecBuild, inputs: SpecInputs) -> None:
    build.linux["cgroupsPath"] = cgroups_path(inputs.daemon.runtime.cgroup_manager,
                                              inputs.sandbox.cgroup_parent, inputs.container_id)
