"""ReopenContainerLog: the kubelet renamed the log file; the monitor opens a
new one at the same path."""
from __future__ import annotations

from crio_native._proto import api_pb2
from crio_native.context import DaemonContext, containers_of
from crio_native.cri.container.ids import require_id


def reopen_container_log(ctx: DaemonContext, request: api_pb2.ReopenContainerLogRequest):
    containers_of(ctx).reopen_log(require_id("ReopenContainerLog", request.container_id))
    return api_pb2.ReopenContainerLogResponse()
