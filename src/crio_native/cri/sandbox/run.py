"""RunPodSandbox."""
from __future__ import annotations

from crio_native._proto import api_pb2
from crio_native.context import DaemonContext, sandboxes_of
from crio_native.cri.sandbox.check import check_pod_config
from crio_native.errors import InvalidArgument


def run_pod_sandbox(ctx: DaemonContext, request: api_pb2.RunPodSandboxRequest):
    if not request.HasField("config"):
        raise InvalidArgument("RunPodSandbox: config: is required")
    check_pod_config(request.config)
    sandbox_id = sandboxes_of(ctx).run(request, pod_cidr=ctx.pod_cidr)
    return api_pb2.RunPodSandboxResponse(pod_sandbox_id=sandbox_id)
