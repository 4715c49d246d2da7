"""Stats read from the host -> CRI messages.  Only what was read is set: an
absent reading leaves its UInt64Value wrapper (or whole sub-message) unset,
which the kubelet tells apart from a zero."""
from __future__ import annotations

import time
from typing import Mapping, Sequence

from crio_native._proto import api_pb2
from crio_native.stats.cgroup import CgroupStats, Psi
from crio_native.stats.disk import DiskUsage
from crio_native.stats.network import InterfaceStats, default_interface


def _set(msg, field: str, value: int | None) -> None:
    if value is not None:
        getattr(msg, field).value = value


def psi_from_stats(psi: Psi) -> api_pb2.PsiStats:
    out = api_pb2.PsiStats()
    out.Some.Total, out.Some.Avg10 = psi.some_total_ns, psi.some_avg10
    out.Some.Avg60, out.Some.Avg300 = psi.some_avg60, psi.some_avg300
    if psi.full_total_ns is not None:
        out.Full.Total, out.Full.Avg10 = psi.full_total_ns, psi.full_avg10
        out.Full.Avg60, out.Full.Avg300 = psi.full_avg60, psi.full_avg300
    return out


def cpu_from_stats(cg: CgroupStats, nano_cores: int | None) -> api_pb2.CpuUsage | None:
    if cg.cpu_usage_ns is None and cg.cpu_psi is None:
        return None
    out = api_pb2.CpuUsage(timestamp=cg.timestamp_ns)
    _set(out, "usage_core_nano_seconds", cg.cpu_usage_ns)
    _set(out, "usage_nano_cores", nano_cores)
    if cg.cpu_psi is not None:
        out.psi.CopyFrom(psi_from_stats(cg.cpu_psi))
    return out


def memory_from_stats(cg: CgroupStats) -> api_pb2.MemoryUsage | None:
    if cg.memory_usage_bytes is None:
        return None
    out = api_pb2.MemoryUsage(timestamp=cg.timestamp_ns)
    for field, value in (("working_set_bytes", cg.working_set_bytes),
                         ("available_bytes", cg.available_bytes),
                         ("usage_bytes", cg.memory_usage_bytes), ("rss_bytes", cg.rss_bytes),
                         ("page_faults", cg.page_faults),
                         ("major_page_faults", cg.major_page_faults)):
        _set(out, field, value)
    if cg.memory_psi is not None:
        out.psi.CopyFrom(psi_from_stats(cg.memory_psi))
    return out


def swap_from_stats(cg: CgroupStats) -> api_pb2.SwapUsage | None:
    if cg.swap_usage_bytes is None:
        return None
    out = api_pb2.SwapUsage(timestamp=cg.timestamp_ns)
    _set(out, "swap_usage_bytes", cg.swap_usage_bytes)
    _set(out, "swap_available_bytes", cg.swap_available_bytes)
    return out


def io_from_stats(cg: CgroupStats) -> api_pb2.IoUsage | None:
    if cg.io_psi is None:
        return None
    out = api_pb2.IoUsage(timestamp=cg.timestamp_ns)
    out.psi.CopyFrom(psi_from_stats(cg.io_psi))
    return out


def filesystem_from_usage(usage: DiskUsage, mountpoint: str,
                          timestamp_ns: int) -> api_pb2.FilesystemUsage:
    out = api_pb2.FilesystemUsage(timestamp=timestamp_ns)
    out.fs_id.mountpoint = mountpoint
    out.used_bytes.value = usage.used_bytes
    out.inodes_used.value = usage.inodes_used
    return out


def _interface(s: InterfaceStats) -> api_pb2.NetworkInterfaceUsage:
    out = api_pb2.NetworkInterfaceUsage(name=s.name)
    out.rx_bytes.value, out.rx_errors.value = s.rx_bytes, s.rx_errors
    out.tx_bytes.value, out.tx_errors.value = s.tx_bytes, s.tx_errors
    return out


def network_from_stats(interfaces: Sequence[InterfaceStats], timestamp_ns: int,
                       default_name: str = "eth0") -> api_pb2.NetworkUsage:
    """All interfaces but lo in `interfaces` (the kubelet sums them), the
    default one (eth0, else the first) also as default_interface."""
    out = api_pb2.NetworkUsage(timestamp=timestamp_ns)
    default = default_interface(list(interfaces), default_name)
    if default is not None:
        out.default_interface.CopyFrom(_interface(default))
    out.interfaces.extend(_interface(s) for s in interfaces)
    return out


def container_stats_message(id: str, metadata: api_pb2.ContainerMetadata | None,
                            labels: Mapping[str, str], annotations: Mapping[str, str],
                            cg: CgroupStats | None, nano_cores: int | None = None,
                            writable: DiskUsage | None = None, fs_mountpoint: str = "",
                            timestamp_ns: int | None = None) -> api_pb2.ContainerStats:
    """A ContainerStats; `cg` None (no cgroup, or the container is not
    running) leaves cpu/memory/swap/io unset, `writable` None the layer."""
    out = api_pb2.ContainerStats()
    out.attributes.id = id
    if metadata is not None:
        out.attributes.metadata.CopyFrom(metadata)
    out.attributes.labels.update(labels)
    out.attributes.annotations.update(annotations)
    if cg is not None:
        timestamp_ns = cg.timestamp_ns if timestamp_ns is None else timestamp_ns
        for field, msg in (("cpu", cpu_from_stats(cg, nano_cores)),
                           ("memory", memory_from_stats(cg)), ("swap", swap_from_stats(cg)),
                           ("io", io_from_stats(cg))):
            if msg is not None:
                getattr(out, field).CopyFrom(msg)
    if writable is not None:
        ts = timestamp_ns if timestamp_ns is not None else time.time_ns()
        out.writable_layer.CopyFrom(filesystem_from_usage(writable, fs_mountpoint, ts))
    return out


def pod_sandbox_stats_message(id: str, metadata: api_pb2.PodSandboxMetadata | None,
                              labels: Mapping[str, str], annotations: Mapping[str, str],
                              cg: CgroupStats | None, nano_cores: int | None = None,
                              interfaces: Sequence[InterfaceStats] | None = None,
                              containers: Sequence[api_pb2.ContainerStats] = (),
                              timestamp_ns: int | None = None) -> api_pb2.PodSandboxStats:
    """A PodSandboxStats with its linux part: the pod cgroup's cpu, memory,
    io and process count, the netns counters (`interfaces` None: no network
    part, e.g. host network) and the containers' own stats."""
    out = api_pb2.PodSandboxStats()
    out.attributes.id = id
    if metadata is not None:
        out.attributes.metadata.CopyFrom(metadata)
    out.attributes.labels.update(labels)
    out.attributes.annotations.update(annotations)
    ts = timestamp_ns if timestamp_ns is not None else (
        cg.timestamp_ns if cg is not None else time.time_ns())
    linux = out.linux
    linux.SetInParent()
    if cg is not None:
        for field, msg in (("cpu", cpu_from_stats(cg, nano_cores)),
                           ("memory", memory_from_stats(cg)), ("io", io_from_stats(cg))):
            if msg is not None:
                getattr(linux, field).CopyFrom(msg)
        if cg.pids_current is not None:
            linux.process.timestamp = cg.timestamp_ns
            linux.process.process_count.value = cg.pids_current
    if interfaces is not None:
        linux.network.CopyFrom(network_from_stats(interfaces, ts))
    linux.containers.extend(containers)
    return out
