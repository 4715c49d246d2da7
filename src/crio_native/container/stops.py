"""Stops in progress, one per container, shared by every call that wants the
container stopped: StopContainer, RemoveContainer (CRI: a running container
is removed by force) and StopPodSandbox.

A call never waits behind another stop: it joins the one in progress.  A
nearer deadline (the kubelet shortening a grace period to 0) moves the
SIGKILL forward for every caller; a farther one waits for the nearer one and
never extends it.  All callers sleep on one condition, woken by the exit
(ContainerManager._record_exit, which the ExitWatcher reaches through a
pidfd of the monitor) or by a deadline moved forward; the first caller
awake past the deadline sends the SIGKILL, and every caller returns once the
exit is recorded."""
from __future__ import annotations

import math
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator


class PendingStop:
    """One container's stop, alive while some call waits for it."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.kill_at = math.inf                 # time.monotonic() of the SIGKILL
        self.signalled = False                  # the stop signal has been sent
        self.killed_at: float | None = None     # time.monotonic() of the last SIGKILL
        self.exited = False                     # the exit is recorded
        self.callers = 0

    def hasten(self, kill_at: float) -> bool:
        """The SIGKILL goes at `kill_at` if that is sooner than planned
        (never later); True if the plan changed."""
        with self.cond:
            if kill_at >= self.kill_at:
                return False
            self.kill_at = kill_at
            self.cond.notify_all()
            return True

    def claim_signal(self) -> bool:
        """True for the one caller that is to send the stop signal."""
        with self.cond:
            first, self.signalled = not self.signalled, True
            return first

    def claim_kill(self, joined: float) -> bool:
        """True for the caller that is to send SIGKILL now: none was sent
        since it joined (a caller that joined after a SIGKILL that did not
        take sends its own)."""
        with self.cond:
            if self.killed_at is not None and self.killed_at >= joined:
                return False
            self.killed_at = time.monotonic()
            return True

    def kill_deadline(self, grace: float) -> float:
        with self.cond:
            return (self.killed_at if self.killed_at is not None else time.monotonic()) + grace

    def wait(self, deadline: Callable[[], float]) -> bool:
        """Sleep until the exit is recorded (True) or until `deadline()`,
        read again at every wake-up, has passed (False)."""
        with self.cond:
            while not self.exited:
                left = deadline() - time.monotonic()
                if left <= 0:
                    return False
                # a CRI timeout may be any int64; a lock's wait is not
                self.cond.wait(min(left, threading.TIMEOUT_MAX))
            return True

    def mark_exited(self) -> None:
        with self.cond:
            self.exited = True
            self.cond.notify_all()


class StopTable:
    """The stops in progress, by container id."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._pending: dict[str, PendingStop] = {}

    @contextmanager
    def join(self, container_id: str) -> Iterator[PendingStop]:
        """The container's stop in progress (a new one if there is none),
        held until the block ends; the last caller out forgets it."""
        with self.lock:
            pending = self._pending.setdefault(container_id, PendingStop())
            pending.callers += 1
        try:
            yield pending
        finally:
            with self.lock:
                pending.callers -= 1
                if pending.callers == 0 and self._pending.get(container_id) is pending:
                    del self._pending[container_id]

    def pending(self, container_id: str) -> PendingStop | None:
        with self.lock:
            return self._pending.get(container_id)

    def exited(self, container_id: str) -> None:
        """The container's exit is recorded: every caller waiting returns."""
        pending = self.pending(container_id)
        if pending is not None:
            pending.mark_exited()
