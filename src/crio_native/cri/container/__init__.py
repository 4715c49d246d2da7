"""RuntimeService container RPCs, one module each."""
from __future__ import annotations

from crio_native._proto import api_pb2
from crio_native.context import DaemonContext
from crio_native.cri.chunks import streamed
from crio_native.cri.container import (create, events, exec_sync, logs, remove, start, stats,
                                       status, stop, streaming_rpcs, update)
from crio_native.cri.container import list as list_rpc


def rpcs(ctx: DaemonContext) -> dict:
    return {
        "CreateContainer": lambda req, c: create.create_container(ctx, req),
        "StartContainer": lambda req, c: start.start_container(ctx, req),
        "StopContainer": lambda req, c: stop.stop_container(ctx, req),
        "RemoveContainer": lambda req, c: remove.remove_container(ctx, req),
        "ListContainers": lambda req, c: list_rpc.list_containers(ctx, req),
        "ContainerStatus": lambda req, c: status.container_status(ctx, req),
        "UpdateContainerResources": lambda req, c: update.update_container_resources(ctx, req),
        "ReopenContainerLog": lambda req, c: logs.reopen_container_log(ctx, req),
        "ExecSync": lambda req, c: exec_sync.exec_sync(ctx, req, c),
        "Exec": lambda req, c: streaming_rpcs.exec_(ctx, req),
        "Attach": lambda req, c: streaming_rpcs.attach(ctx, req),
        "PortForward": lambda req, c: streaming_rpcs.port_forward(ctx, req),
        "GetContainerEvents": lambda req, c: events.get_container_events(ctx, req, c),
        "ContainerStats": lambda req, c: stats.container_stats(ctx, req),
        "ListContainerStats": lambda req, c: stats.list_container_stats(ctx, req),
        "PodSandboxStats": lambda req, c: stats.pod_sandbox_stats(ctx, req),
        "ListPodSandboxStats": lambda req, c: stats.list_pod_sandbox_stats(ctx, req),
        "StreamContainers": streamed(lambda r: list_rpc.list_containers(ctx, r),
                                     api_pb2.ListContainersRequest,
                                     api_pb2.StreamContainersResponse),
        "StreamContainerStats": streamed(lambda r: stats.list_container_stats(ctx, r),
                                         api_pb2.ListContainerStatsRequest,
                                         api_pb2.StreamContainerStatsResponse),
        "StreamPodSandboxStats": streamed(lambda r: stats.list_pod_sandbox_stats(ctx, r),
                                          api_pb2.ListPodSandboxStatsRequest,
                                          api_pb2.StreamPodSandboxStatsResponse),
    }
