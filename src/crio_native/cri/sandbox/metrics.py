"""ListMetricDescriptors, ListPodSandboxMetrics and StreamPodSandboxMetrics:
the cAdvisor-style metrics a kubelet with PodAndContainerStatsFromCRI asks
the runtime for (stats/metric_families.py names them, stats/pod_metrics.py
reads them).  `[metrics] included_pod_metrics` picks the groups, as CRI-O's
key does.  Per pod: the network counters of its namespace (label values:
pod id, "POD", ""); per running container: the other groups, read from its
cgroup, its processes and its root filesystem (label values: container id,
its name, its image)."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Iterator, Sequence

from crio_native._proto import api_pb2
from crio_native.container.record import RUNNING, ContainerRecord
from crio_native.context import DaemonContext, containers_of, sandboxes_of
from crio_native.cri.chunks import chunked
from crio_native.sandbox.record import CREATING, READY, SandboxRecord
from crio_native.stats.metric_families import BY_NAME, families_of
from crio_native.stats.network import interface_stats
from crio_native.stats.pod_metrics import (ContainerSource, Sample, container_samples,
                                           network_samples)

log = logging.getLogger(__name__)


def _groups(ctx: DaemonContext) -> list[str]:
    return list(ctx.config.metrics.included_pod_metrics)


def list_metric_descriptors(ctx: DaemonContext, _request=None
                            ) -> api_pb2.ListMetricDescriptorsResponse:
    return api_pb2.ListMetricDescriptorsResponse(
        descriptors=[f.descriptor() for f in families_of(_groups(ctx))])


def _metrics(samples: Sequence[Sample], base: tuple[str, str, str],
             timestamp_ns: int) -> list[api_pb2.Metric]:
    out = []
    for name, labels, value in samples:
        m = api_pb2.Metric(name=name, timestamp=timestamp_ns, metric_type=BY_NAME[name].type,
                           label_values=[*base, *labels])
        m.value.value = value
        out.append(m)
    return out


def _container_source(ctx: DaemonContext, record: ContainerRecord) -> ContainerSource:
    upper = str(Path(record.rootfs).parent / "upper") if record.rootfs else ""
    return ContainerSource(cgroup_dirs=tuple(Path(d) for d in record.cgroup_dirs),
                           cgroup=containers_of(ctx).cgroup_stats(record),
                           rootfs=record.rootfs, upper_dir=upper, pid=record.pid)


def _container_metrics(ctx: DaemonContext, groups: list[str],
                       record: ContainerRecord) -> api_pb2.ContainerMetrics:
    samples = container_samples(groups, _container_source(ctx, record))
    image = record.user_image or record.image
    return api_pb2.ContainerMetrics(container_id=record.id, metrics=_metrics(
        samples, (record.id, record.name, image), time.time_ns()))


def pod_metrics_of(ctx: DaemonContext, groups: list[str],
                   record: SandboxRecord) -> api_pb2.PodSandboxMetrics:
    out = api_pb2.PodSandboxMetrics(pod_sandbox_id=record.id)
    if "network" in groups and record.state == READY and not record.host_network \
            and record.netns_path:
        ifaces = interface_stats(record.netns_path)
        if ifaces is not None:
            out.metrics.extend(_metrics(network_samples(ifaces), (record.id, "POD", ""),
                                        time.time_ns()))
    containers = containers_of(ctx)
    for c in map(containers.refresh, containers.of_sandbox(record.id)):
        if c.state == RUNNING:
            out.container_metrics.append(_container_metrics(ctx, groups, c))
    return out


def list_pod_sandbox_metrics(ctx: DaemonContext, _request=None
                             ) -> api_pb2.ListPodSandboxMetricsResponse:
    groups = _groups(ctx)
    records = sorted((r for r in sandboxes_of(ctx).store.all() if r.state != CREATING),
                     key=lambda r: r.created_at)
    return api_pb2.ListPodSandboxMetricsResponse(
        pod_metrics=[pod_metrics_of(ctx, groups, r) for r in records])


def stream_pod_sandbox_metrics(ctx: DaemonContext, _request=None
                               ) -> Iterator[api_pb2.StreamPodSandboxMetricsResponse]:
    items = list_pod_sandbox_metrics(ctx).pod_metrics
    return chunked(items, lambda chunk: api_pb2.StreamPodSandboxMetricsResponse(
        pod_sandbox_metrics=chunk))
