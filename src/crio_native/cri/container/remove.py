"""RemoveContainer: idempotent; a running container is killed first."""
from __future__ import annotations

from crio_native._proto import api_pb2
from crio_native.context import DaemonContext, containers_of
from crio_native.cri.container.ids import require_id


def remove_container(ctx: DaemonContext, request: api_pb2.RemoveContainerRequest):
    containers_of(ctx).remove(require_id("RemoveContainer", request.container_id))
    return api_pb2.RemoveContainerResponse()
