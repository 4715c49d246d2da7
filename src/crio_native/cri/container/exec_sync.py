"""ExecSync: run a command in a running container and answer its output and
exit code.  At the timeout the process is killed and the call fails with
DEADLINE_EXCEEDED, which the kubelet turns into a failed probe; the same
when the call's own deadline passes, and a call the client cancels kills
its command too."""
from __future__ import annotations

from crio_native._proto import api_pb2
from crio_native.context import DaemonContext, containers_of
from crio_native.cri.container.ids import require_id
from crio_native.cri.wire import Call
from crio_native.errors import InvalidArgument

# The kubelet's largest: a probe's timeoutSeconds is an int32.  CRI-O's
# conmon takes the timeout as a C int too and fails above it.
MAX_TIMEOUT_SECONDS = 2**31 - 1


def check_timeout(timeout: int) -> None:
    """Seconds, 0 for none; a negative or larger-than-int32 one is refused
    (no client means it, and nothing could wait that long)."""
    if timeout < 0:
        raise InvalidArgument(f"ExecSync: timeout: must not be negative, got {timeout}")
    if timeout > MAX_TIMEOUT_SECONDS:
        raise InvalidArgument(f"ExecSync: timeout: {timeout} s is more than "
                              f"{MAX_TIMEOUT_SECONDS} s, the longest a probe can ask "
                              "(0 means no timeout)")


def exec_sync(ctx: DaemonContext, request: api_pb2.ExecSyncRequest, call: Call):
    container_id = require_id("ExecSync", request.container_id)
    if not request.cmd:
        raise InvalidArgument("ExecSync: cmd: must not be empty")
    check_timeout(request.timeout)
    # the client's cancel (RST_STREAM, its connection closed) and its
    # deadline end the command too, as CRI-O and containerd run the exec
    # under the call's context: a client that gives up must not leave the
    # command running and this worker taken until the request's timeout
    with call.cancellation() as cancel:
        result = containers_of(ctx).exec_sync(container_id, list(request.cmd),
                                              request.timeout, cancel)
    return api_pb2.ExecSyncResponse(stdout=result.stdout, stderr=result.stderr,
                                    exit_code=result.exit_code)
