"""StopPodSandbox: idempotent; an unknown id succeeds, as the CRI requires."""
from __future__ import annotations

from crio_native._proto import api_pb2
from crio_native.context import DaemonContext
from crio_native.errors import InvalidArgument


def stop_pod_sandbox(ctx: DaemonContext, request: api_pb2.StopPodSandboxRequest):
    if not request.pod_sandbox_id:
        raise InvalidArgument("StopPodSandbox: pod_sandbox_id: must not be empty")
    record = ctx.sandboxes.store.find(request.pod_sandbox_id)
    if record is None:
        return api_pb2.StopPodSandboxResponse()
    # the kubelet has stopped them gracefully already; what is left is killed
    for container in ctx.containers.of_sandbox(record.id):
        ctx.containers.stop(container.id, timeout=0, rpc="StopPodSandbox")
    ctx.sandboxes.stop(record.id)
    return api_pb2.StopPodSandboxResponse()
