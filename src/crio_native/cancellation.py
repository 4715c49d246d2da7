"""When the caller of an operation has given up: a deadline, and a cancel
that any thread may call.  Code that waits in select/epoll registers
fileno(), which turns readable once cancelled, and waits no longer than
the deadline.  The gRPC edge makes one per call that needs it
(cri/wire Call.cancellation: cancelled by RST_STREAM or the connection's
end, with the call's grpc-timeout as its deadline); below the edge nothing
knows gRPC, as Go code takes a context."""
from __future__ import annotations

import os
import threading
import time
from typing import Any


class Cancellation:
    """cancel() from any thread; `deadline` on the time.monotonic() clock
    (None: none).  fileno() makes its eventfd at the first use (most calls
    end before anyone waits); close() releases it, and a cancel() after
    close() does nothing."""

    def __init__(self, deadline: float | None = None):
        self.deadline = deadline
        self._lock = threading.Lock()
        self._cancelled = False
        self._fd = -1
        self._closed = False

    def cancel(self) -> None:
        with self._lock:
            if self._cancelled:
                return
            self._cancelled = True
            if self._fd >= 0:
                os.eventfd_write(self._fd, 1)

    @property
    def cancelled(self) -> bool:
        """cancel() was called (the deadline does not count)."""
        return self._cancelled

    def expired(self) -> bool:
        """The deadline has passed."""
        return self.deadline is not None and time.monotonic() >= self.deadline

    def done(self) -> bool:
        """Cancelled, or past the deadline: the caller no longer waits."""
        return self._cancelled or self.expired()

    def fileno(self) -> int:
        """An fd that is readable once cancel() has been called (before or
        after this call); valid until close()."""
        with self._lock:
            if self._closed:
                raise ValueError("fileno() of a closed Cancellation")
            if self._fd < 0:
                self._fd = os.eventfd(1 if self._cancelled else 0,
                                      os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            return self._fd

    def close(self) -> None:
        with self._lock:
            self._closed = True
            fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> "Cancellation":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def earliest(deadline: float | None, cancel: Cancellation | None) -> float | None:
    """The sooner of `deadline` and the cancellation's (None: neither)."""
    other = None if cancel is None else cancel.deadline
    if deadline is None:
        return other
    return deadline if other is None else min(deadline, other)
