"""PodSandboxStatus: NOT_FOUND for an unknown id.  With verbose=true (crictl
inspectp; the kubelet never asks for it) the pod's CNI attachment is also
CHECKed and the verdict reported under info["networkCheck"]."""
from __future__ import annotations

import time

from crio_native._proto import api_pb2
from crio_native.context import DaemonContext, sandboxes_of
from crio_native.cri.sandbox import convert
from crio_native.errors import InvalidArgument


def pod_container_statuses(manager, sandbox_id: str) -> list:
    # imported here: the container RPC package imports this one
    from crio_native.cri.container.convert import pod_container_statuses as statuses

    return statuses(manager, sandbox_id)


def pod_sandbox_status(ctx: DaemonContext, request: api_pb2.PodSandboxStatusRequest):
    if not request.pod_sandbox_id:
        raise InvalidArgument("PodSandboxStatus: pod_sandbox_id: must not be empty")
    record = sandboxes_of(ctx).store.get(request.pod_sandbox_id, "PodSandboxStatus")
    response = api_pb2.PodSandboxStatusResponse(
        status=convert.status(record), timestamp=time.time_ns(),
        containers_statuses=pod_container_statuses(ctx.containers, record.id))
    if request.verbose:
        response.info.update(convert.verbose_info(record))
        response.info["networkCheck"] = sandboxes_of(ctx).check_network(record.id)
    return response
