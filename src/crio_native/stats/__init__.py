"""The stats layer behind ContainerStats, ListContainerStats, PodSandboxStats
and ListPodSandboxStats (and their streaming variants): read the host
(cgroup.py, disk.py, network.py), keep the CPU samples (sampler.py), build
the CRI messages (convert.py).  The RPC modules call the two collectors
below with what the records know; nothing here raises for a missing file,
controller or namespace (the field is left unset)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from crio_native._proto import api_pb2
from crio_native.stats.cgroup import CgroupStats, read_cgroup
from crio_native.stats.convert import container_stats_message, pod_sandbox_stats_message
from crio_native.stats.disk import DiskUsage, disk_usage, fs_mountpoint
from crio_native.stats.network import InterfaceStats, interface_stats
from crio_native.stats.sampler import CpuSampler

__all__ = ["CgroupStats", "CpuSampler", "DiskUsage", "InterfaceStats", "collect_container",
           "collect_pod_sandbox", "disk_usage", "fs_mountpoint", "interface_stats",
           "read_cgroup"]


def collect_container(sampler: CpuSampler, id: str, metadata: api_pb2.ContainerMetadata | None,
                      labels: Mapping[str, str], annotations: Mapping[str, str],
                      cgroup_dirs: Iterable[Path] = (),
                      upper_dir: str | os.PathLike[str] | None = None, *,
                      cgroup: CgroupStats | None = None) -> api_pb2.ContainerStats:
    """ContainerStats of one container: its cgroup (no dirs, e.g. a stopped
    container: cpu/memory unset) and its writable layer (`upper_dir`, the
    overlay upper dir; None: unset).  `cgroup`: the group's usage read
    already (ContainerManager.cgroup_stats: from the host, or from a `vm`
    handler's shim), used instead of dirs."""
    dirs = list(cgroup_dirs)
    cg = cgroup if cgroup is not None else read_cgroup(dirs) if dirs else None
    nano = sampler.nano_cores(id, cg.cpu_usage_ns) if cg is not None else None
    usage = disk_usage(upper_dir) if upper_dir is not None else None
    mountpoint = fs_mountpoint(upper_dir) if upper_dir is not None and usage is not None else ""
    return container_stats_message(id, metadata, labels, annotations, cg, nano, usage,
                                   mountpoint)


def collect_pod_sandbox(sampler: CpuSampler, id: str,
                        metadata: api_pb2.PodSandboxMetadata | None,
                        labels: Mapping[str, str], annotations: Mapping[str, str],
                        cgroup_dirs: Iterable[Path] = (),
                        netns_path: str | os.PathLike[str] | None = None,
                        pid: int | None = None,
                        containers: Sequence[api_pb2.ContainerStats] = ()
                        ) -> api_pb2.PodSandboxStats:
    """PodSandboxStats of one pod: the pod cgroup (its dirs), the network
    counters of its namespace (a process in it, `pid`, or its pinned file;
    neither, e.g. host network: network unset) and the containers' stats
    collected beforehand with collect_container.  The sampler key is the
    pod id (container and pod ids never collide)."""
    dirs = list(cgroup_dirs)
    cg = read_cgroup(dirs) if dirs else None
    nano = sampler.nano_cores(id, cg.cpu_usage_ns) if cg is not None else None
    ifaces = interface_stats(netns_path, pid) if (netns_path or pid) else None
    return pod_sandbox_stats_message(id, metadata, labels, annotations, cg, nano, ifaces,
                                     containers)
