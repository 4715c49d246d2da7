"""ExecSync's output, shared by every runtime handler: the loop that reads
the exec'd process's stdout and stderr until it has ended and they are
drained, with the caller's deadline (and its cancellation: the client gave
up) applying until the end, and the answer to an exec that ran past that
deadline."""
from __future__ import annotations

import os
import selectors
import time
from typing import Sequence

from crio_native.cancellation import Cancellation, earliest

EXEC_OUTPUT_LIMIT = 16 * 1024 * 1024  # per stream, as CRI-O's maxExecSyncSize
_DRAIN_IDLE = 0.1     # after the exec process ended: stop once output is quiet this long
_DRAIN_MAX = 2.0      # ... or after this long (a background child may hold the pipes)
# The longest single wait: epoll takes its timeout as a C int of milliseconds
# (about 24.8 days), and Python raises OverflowError beyond it.  A longer
# ExecSync timeout (the kubelet may send up to 2**31-1 s) waits in steps.
_MAX_WAIT = 86400.0

# As CRI-O (internal/oci/runtime_oci.go ExecSyncContainer, conmon's
# TimedOutMessage): a timed-out ExecSync answers exit code -1 and this text
# on stderr rather than an error, since the kubelet's prober turns an error
# into an Unknown result instead of a failed probe (cri-o PR 3065/3231).
EXEC_TIMEOUT_EXIT_CODE = -1
EXEC_TIMED_OUT_MESSAGE = b"command timed out"

_CANCEL = object()    # the selector key's data of the cancellation's fd


def collect_exec_output(fds: Sequence[int], exited_fd: int, deadline: float | None, *,
                        limit: int = EXEC_OUTPUT_LIMIT,
                        cancel: Cancellation | None = None) -> tuple[list[bytes], bool]:
    """ExecSync's output, for the OCI and the shim handlers: read `fds`
    (stdout, stderr) until the exec has ended (`exited_fd` readable: a
    pidfd, or a pipe a waiter writes to), then on until they reach end of
    file, or stay quiet _DRAIN_IDLE, or _DRAIN_MAX has passed since the end
    (a background child may hold them open forever).  At most `limit` bytes
    are kept per fd.
    Returns the output per fd and whether `deadline`, or `cancel`'s
    deadline, passed or `cancel` was cancelled before the end (the output
    so far comes with it); the caller then kills the exec."""
    deadline = earliest(deadline, cancel)
    bufs = {fd: bytearray() for fd in fds}
    exited_at: float | None = None
    with selectors.DefaultSelector() as sel:
        for fd in fds:
            sel.register(fd, selectors.EVENT_READ)
        sel.register(exited_fd, selectors.EVENT_READ)
        cancel_fd = -1 if cancel is None else cancel.fileno()
        if cancel_fd >= 0:
            sel.register(cancel_fd, selectors.EVENT_READ, _CANCEL)
        while True:
            now = time.monotonic()
            if exited_at is None:
                if (deadline is not None and now >= deadline) or (
                        cancel is not None and cancel.cancelled):
                    return [bytes(bufs[fd]) for fd in fds], True
                wait = None if deadline is None else min(deadline - now, _MAX_WAIT)
            elif not sel.get_map() or now - exited_at >= _DRAIN_MAX:
                break
            else:
                wait = _DRAIN_IDLE
            ready = sel.select(wait)
            if not ready and exited_at is not None:
                break
            for key, _ in ready:
                if key.data is _CANCEL:
                    continue           # seen at the top of the loop
                if key.fd == exited_fd:
                    exited_at = time.monotonic()
                    sel.unregister(exited_fd)
                    if cancel_fd >= 0:
                        # ended: a cancel no longer kills anything, and the
                        # drain (bounded anyway) waits for the pipes alone
                        sel.unregister(cancel_fd)
                        cancel_fd = -1
                    continue
                try:
                    chunk = os.read(key.fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    sel.unregister(key.fd)
                    continue
                buf = bufs[key.fd]
                if len(buf) < limit:
                    buf += chunk[:limit - len(buf)]
    return [bytes(bufs[fd]) for fd in fds], False
