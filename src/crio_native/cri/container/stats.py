"""ContainerStats, ListContainerStats, PodSandboxStats, ListPodSandboxStats:
cpu and memory from the cgroup files that exist on this host (or, for a
`vm` handler's container, from its shim's Task/Stats: kata's cgroups are
in its VM), the writable layer from the overlay upper dir, pod network
counters from its netns.
Exited containers report their writable layer only."""
from __future__ import annotations

from pathlib import Path

from crio_native._proto import api_pb2
from crio_native.container.record import RUNNING, ContainerRecord
from crio_native.context import DaemonContext, containers_of, sandboxes_of
from crio_native.cri.container import convert
from crio_native.cri.container.ids import require_id
from crio_native.cri.container.list import visible
from crio_native.cri.sandbox import convert as sandbox_convert
from crio_native.errors import InvalidArgument
from crio_native.sandbox.record import CREATING as SANDBOX_CREATING
from crio_native.sandbox.record import SandboxRecord
from crio_native.stats import collect_container, collect_pod_sandbox


def _labels_match(labels: dict[str, str], selector) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def container_stats_of(ctx: DaemonContext, record: ContainerRecord) -> api_pb2.ContainerStats:
    running = record.state == RUNNING
    upper = Path(record.rootfs).parent / "upper" if record.rootfs else None
    return collect_container(
        containers_of(ctx).sampler, record.id, convert.metadata(record), record.labels,
        record.annotations, upper_dir=upper,
        cgroup=containers_of(ctx).cgroup_stats(record) if running else None)


def pod_stats_of(ctx: DaemonContext, record: SandboxRecord) -> api_pb2.PodSandboxStats:
    containers = [container_stats_of(ctx, c) for c in
                  map(containers_of(ctx).refresh, containers_of(ctx).of_sandbox(record.id))
                  if c.state == RUNNING]
    netns = None if record.host_network else (record.netns_path or None)
    return collect_pod_sandbox(containers_of(ctx).sampler, record.id,
                               sandbox_convert.metadata(record), record.labels,
                               record.annotations, pod_cgroup_dirs(ctx, record),
                               netns_path=netns, containers=containers)


def pod_cgroup_dirs(ctx: DaemonContext, record: SandboxRecord) -> list[Path]:
    """The pod cgroup (runtime/pod_cgroup.py) in each hierarchy; none for a
    pod without cgroup_parent: pod-level cpu/memory stay unset then."""
    return [Path(d) for d in record.cgroup_dirs if Path(d).is_dir()]


def container_stats(ctx: DaemonContext, request: api_pb2.ContainerStatsRequest):
    container_id = require_id("ContainerStats", request.container_id)
    containers = containers_of(ctx)
    record = containers.refresh(containers.store.get(container_id, "ContainerStats"))
    return api_pb2.ContainerStatsResponse(stats=container_stats_of(ctx, record))


def list_container_stats(ctx: DaemonContext, request: api_pb2.ListContainerStatsRequest):
    flt = request.filter
    records = [r for r in visible(ctx)
               if (not flt.id or r.id.startswith(flt.id))
               and (not flt.pod_sandbox_id or r.sandbox_id.startswith(flt.pod_sandbox_id))
               and _labels_match(r.labels, flt.label_selector)]
    return api_pb2.ListContainerStatsResponse(stats=[container_stats_of(ctx, r)
                                                     for r in records])


def pod_sandbox_stats(ctx: DaemonContext, request: api_pb2.PodSandboxStatsRequest):
    if not request.pod_sandbox_id:
        raise InvalidArgument("PodSandboxStats: pod_sandbox_id: must not be empty")
    record = sandboxes_of(ctx).store.get(request.pod_sandbox_id, "PodSandboxStats")
    return api_pb2.PodSandboxStatsResponse(stats=pod_stats_of(ctx, record))


def list_pod_sandbox_stats(ctx: DaemonContext, request: api_pb2.ListPodSandboxStatsRequest):
    flt = request.filter
    records = sorted((r for r in sandboxes_of(ctx).store.all()
                      if r.state != SANDBOX_CREATING
                      and (not flt.id or r.id.startswith(flt.id))
                      and _labels_match(r.labels, flt.label_selector)),
                     key=lambda r: r.created_at)
    return api_pb2.ListPodSandboxStatsResponse(stats=[pod_stats_of(ctx, r) for r in records])
