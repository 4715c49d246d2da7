"""RemovePodSandbox: stops the pod first if needed; an unknown id succeeds."""
from __future__ import annotations

from crio_native._proto import api_pb2
from crio_native.context import DaemonContext
from crio_native.errors import InvalidArgument


def remove_pod_sandbox(ctx: DaemonContext, request: api_pb2.RemovePodSandboxRequest):
    if not request.pod_sandbox_id:
        raise InvalidArgument("RemovePodSandbox: pod_sandbox_id: must not be empty")
    ctx.sandboxes.remove(request.pod_sandbox_id)
    return api_pb2.RemovePodSandboxResponse()
