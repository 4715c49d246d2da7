"""CreateContainer: NOT_FOUND for an unknown pod, FAILED_PRECONDITION for a
pod that is not ready, the same id for a retry, ALREADY_EXISTS otherwise."""
from __future__ import annotations

from crio_native._proto import api_pb2
from crio_native.context import DaemonContext, containers_of
from crio_native.cri.container.check import check_container_config
from crio_native.errors import InvalidArgument


def create_container(ctx: DaemonContext, request: api_pb2.CreateContainerRequest):
    if not request.pod_sandbox_id:
        raise InvalidArgument("CreateContainer: pod_sandbox_id: must not be empty")
    if not request.HasField("config"):
        raise InvalidArgument("CreateContainer: config: must be set")
    check_container_config(request.config)
    container_id = containers_of(ctx).create(request)
    return api_pb2.CreateContainerResponse(container_id=container_id)
