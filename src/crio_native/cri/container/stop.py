"""StopContainer: the stop signal, then SIGKILL after `timeout` seconds.
Stopping an exited container succeeds, and so does an unknown id, as the
CRI requires (the kubelet retries a stop of a container already removed)."""
from __future__ import annotations

import contextlib

from crio_native._proto import api_pb2
from crio_native.context import DaemonContext, containers_of
from crio_native.cri.container.ids import require_id
from crio_native.errors import NotFound


def stop_container(ctx: DaemonContext, request: api_pb2.StopContainerRequest):
    container_id = require_id("StopContainer", request.container_id)
    with contextlib.suppress(NotFound):    # unknown, or removed meanwhile
        containers_of(ctx).stop(container_id, request.timeout)
    return api_pb2.StopContainerResponse()
