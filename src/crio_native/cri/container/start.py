"""StartContainer: only a created container can start."""
from __future__ import annotations

from crio_native._proto import api_pb2
from crio_native.context import DaemonContext, containers_of
from crio_native.cri.container.ids import require_id


def start_container(ctx: DaemonContext, request: api_pb2.StartContainerRequest):
    containers_of(ctx).start(require_id("StartContainer", request.container_id))
    return api_pb2.StartContainerResponse()
