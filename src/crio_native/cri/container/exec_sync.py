"""ExecSync: run a command in a running container and answer its output and
exit code.  At the timeout the process is killed and the call fails with
DEADLINE_EXCEEDED, which the kubelet turns into a failed probe."""
from __future__ import annotations

from crio_native._proto import api_pb2
from crio_native.context import DaemonContext, containers_of
from crio_native.cri.container.ids import require_id
from crio_native.errors import InvalidArgument


def exec_sync(ctx: DaemonContext, request: api_pb2.ExecSyncRequest):
    container_id = require_id("ExecSync", request.container_id)
    if not request.cmd:
        raise InvalidArgument("ExecSync: cmd: must not be empty")
    if request.timeout < 0:
        raise InvalidArgument(f"ExecSync: timeout: must not be negative, got {request.timeout}")
    result = containers_of(ctx).exec_sync(container_id, list(request.cmd), request.timeout)
    return api_pb2.ExecSyncResponse(stdout=result.stdout, stderr=result.stderr,
                                    exit_code=result.exit_code)
