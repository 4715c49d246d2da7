"""StopContainer: the stop signal, then SIGKILL after `timeout` seconds.
Stopping an exited container succeeds; an unknown id is NOT_FOUND."""
from __future__ import annotations

from crio_native._proto import api_pb2
from crio_native.context import DaemonContext, containers_of
from crio_native.cri.container.ids import require_id


def stop_container(ctx: DaemonContext, request: api_pb2.StopContainerRequest):
    containers_of(ctx).stop(require_id("StopContainer", request.container_id), request.timeout)
    return api_pb2.StopContainerResponse()
