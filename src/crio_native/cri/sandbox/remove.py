"""RemovePodSandbox: stops the pod first if needed; an unknown id succeeds."""
from __future__ import annotations

from crio_native._proto import api_pb2
from crio_native.context import DaemonContext, containers_of, sandboxes_of
from crio_native.errors import InvalidArgument


def remove_pod_sandbox(ctx: DaemonContext, request: api_pb2.RemovePodSandboxRequest):
    if not request.pod_sandbox_id:
        raise InvalidArgument("RemovePodSandbox: pod_sandbox_id: must not be empty")
    record = sandboxes_of(ctx).store.find(request.pod_sandbox_id)
    if record is None:
        return api_pb2.RemovePodSandboxResponse()
    for container in containers_of(ctx).of_sandbox(record.id):
        containers_of(ctx).remove(container.id)
    sandboxes_of(ctx).remove(record.id)
    return api_pb2.RemovePodSandboxResponse()
