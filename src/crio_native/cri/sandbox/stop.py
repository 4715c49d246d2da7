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
    containers = containers_of(ctx)
    in_pod = containers.of_sandbox(record.id)

    def kill_containers() -> None:
        # the kubelet has stopped them gracefully already; what is left is killed
        for container in in_pod:
            containers.stop(container.id, timeout=0, rpc="StopPodSandbox")

    # the kill runs alongside the pod's CNI DEL (sandbox/overlap.py)
    sandboxes_of(ctx).stop(record.id, kill_containers if in_pod else None)
    return api_pb2.StopPodSandboxResponse()
