"""StopPodSandbox: idempotent; an unknown id succeeds, as the CRI requires."""
from __future__ import annotations

from crio_native._proto import api_pb2
from crio_native.context import DaemonContext, containers_of, sandboxes_of
from crio_native.errors import InvalidArgument


def stop_pod_sandbox(ctx: DaemonContext, request: api_pb2.StopPodSandboxRequest):
    if not request.pod_sandbox_id:
        raise InvalidArgument("StopPodSandbox: pod_sandbox_id: must not be empty")
    record = sandboxes_of(ctx).store.find(request.pod_sandbox_id)
    if record is None:
        return api_pb2.StopPodSandboxResponse()
    # the kubelet has stopped them gracefully already; what is left is killed
    for container in containers_of(ctx).of_sandbox(record.id):
        containers_of(ctx).stop(container.id, timeout=0, rpc="StopPodSandbox")
    sandboxes_of(ctx).stop(record.id)
    return api_pb2.StopPodSandboxResponse()
