"""One call's context: what the CRI handlers use of a gRPC servicer
context (time_remaining, abort, add_callback, is_active,
invocation_metadata, code, details), over one HTTP/2 stream; and
cancellation(), the call's end and deadline for code that waits on an fd."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Generator, NoReturn

from crio_native.cancellation import Cancellation
from crio_native.cri.wire.status import StatusCode

log = logging.getLogger("crio_native.cri.wire")

Behavior = Callable[[Any, "Call"], Any]


@dataclass(frozen=True)
class Method:
    """A method of a service: how its messages convert and what answers it
    (a function for a unary method, a generator function for a
    server-streaming one)."""
    deserialize: Callable[[bytes], Any]
    serialize: Callable[[Any], bytes]
    behavior: Behavior
    streaming: bool


@dataclass(frozen=True)
class Service:
    full_name: str                 # "runtime.v1.RuntimeService"
    methods: dict[str, Method]     # by method name


class Aborted(Exception):
    """Raised by Call.abort: unwinds the handler; the call ends with the code."""


class Call:
    """The context of one call.  Ended by the server (its answer sent) or by
    the peer (RST_STREAM, the connection closed, the deadline passed):
    is_active() turns False and the callbacks run, once."""

    def __init__(self, path: str, deadline: float | None,
                 metadata: tuple[tuple[str, str], ...]):
        self.path = path
        self.deadline = deadline            # time.monotonic() clock
        self.metadata = metadata
        self._code: StatusCode | None = None
        self._details: str | None = None
        self._lock = threading.Lock()
        self._ended = False
        self.cancelled = False
        self._callbacks: list[Callable[[], None]] = []

    # ---- what handlers use -----------------------------------------------

    def time_remaining(self) -> float | None:
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    def is_active(self) -> bool:
        return not self._ended and (self.deadline is None or time.monotonic() < self.deadline)

    def add_callback(self, callback: Callable[[], None]) -> bool:
        """Run `callback` when the call ends; False (not run) if it has ended."""
        with self._lock:
            if self._ended:
                return False
            self._callbacks.append(callback)
            return True

    def cancellation(self) -> Cancellation:
        """What code below the edge waits on (cancellation.py): cancelled
        when the peer ends the call (RST_STREAM, the connection closed) or
        at once if it has, with the call's deadline.  The caller closes it."""
        cancel = Cancellation(self.deadline)
        if not self.add_callback(cancel.cancel):
            cancel.cancel()
        return cancel

    def abort(self, code: StatusCode, details: str) -> NoReturn:
        self._code, self._details = StatusCode(code), details
        raise Aborted(details)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata

    def code(self) -> StatusCode | None:
        return self._code

    def details(self) -> str | None:
        return self._details

    def set_code(self, code: StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    # ---- the server's side -------------------------------------------------

    def end(self, cancelled: bool = False) -> None:
        """The call is over; run the callbacks (once)."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
            self.cancelled = cancelled
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # noqa: BLE001 - one bad callback must not stop the others
                log.exception("call callback failed", extra={"fields": {"method": self.path}})

    @property
    def ended(self) -> bool:
        return self._ended


def responses(method: Method, request: Any, call: Call) -> Generator[Any, None, None]:
    """The answers of a call: one for a unary method, each yielded one for a
    streaming one."""
    if method.streaming:
        yield from method.behavior(request, call)
    else:
        yield method.behavior(request, call)
