"""RuntimeService pod sandbox RPCs, one module each."""
from __future__ import annotations

from crio_native._proto import api_pb2
from crio_native.context import DaemonContext
from crio_native.cri.chunks import streamed
from crio_native.cri.sandbox import list as list_rpc
from crio_native.cri.sandbox import metrics, remove, run, status, stop, update_resources


def rpcs(ctx: DaemonContext) -> dict:
    return {
        "RunPodSandbox": lambda req, c: run.run_pod_sandbox(ctx, req),
        "StopPodSandbox": lambda req, c: stop.stop_pod_sandbox(ctx, req),
        "RemovePodSandbox": lambda req, c: remove.remove_pod_sandbox(ctx, req),
        "PodSandboxStatus": lambda req, c: status.pod_sandbox_status(ctx, req),
        "ListPodSandbox": lambda req, c: list_rpc.list_pod_sandbox(ctx, req),
        "StreamPodSandboxes": streamed(lambda r: list_rpc.list_pod_sandbox(ctx, r),
                                       api_pb2.ListPodSandboxRequest,
                                       api_pb2.StreamPodSandboxesResponse),
        "UpdatePodSandboxResources":
            lambda req, c: update_resources.update_pod_sandbox_resources(ctx, req),
        "ListMetricDescriptors": lambda req, c: metrics.list_metric_descriptors(ctx, req),
        "ListPodSandboxMetrics": lambda req, c: metrics.list_pod_sandbox_metrics(ctx, req),
        "StreamPodSandboxMetrics": lambda req, c: metrics.stream_pod_sandbox_metrics(ctx, req),
    }
