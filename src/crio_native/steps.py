"""Where each CRI call is: the named steps it has passed, with their times.

The steps are the failpoints' names (failpoints.CATALOGUE): every
multi-step operation already marks each step boundary with
`failpoints.hit(name)`, which also reports here.  The edge opens a trace
per RunPodSandbox/CreateContainer/... call (`tracing(rpc, key)`); a step
reached in that call's thread is appended to it.  With no trace open (any
other thread, any other RPC) `reached` costs one context-variable read.

What it is for:
- per-step durations, observed into the metrics histogram
  `..._operation_step_duration_seconds{step}` (the time from the previous
  step, or from the call's start, to this one), which `make bench` reads
  to say where a pod start spends its time (issue 21);
- stalled-request diagnostics (issue 19, CRI-O's
  resources_stalled_at_stage): a retry of a RunPodSandbox or
  CreateContainer that is still being made names the step the first call
  has passed and for how long (`stalled_note`)."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Iterator

START = "start"


@dataclass
class Trace:
    """One call's steps: (name, monotonic time) in the order passed."""

    rpc: str
    key: str
    started: float = field(default_factory=time.monotonic)
    steps: list[tuple[str, float]] = field(default_factory=list)
    deadline: float | None = None     # the client's, on the monotonic clock

    def reached(self, name: str) -> None:
        self.steps.append((name, time.monotonic()))

    def last(self) -> tuple[str, float]:
        """The last step passed (START before any) and when."""
        return self.steps[-1] if self.steps else (START, self.started)

    def durations(self) -> list[tuple[str, float]]:
        """(step, seconds since the previous step or the start) for each step."""
        out, before = [], self.started
        for name, at in self.steps:
            out.append((name, at - before))
            before = at
        return out


_current: ContextVar[Trace | None] = ContextVar("crio_native_step_trace", default=None)
_lock = threading.Lock()
_open: dict[int, Trace] = {}


def reached(name: str) -> None:
    """The current call (if traced) has passed step `name`."""
    trace = _current.get()
    if trace is not None:
        trace.reached(name)


# a retry answers this long before its client's deadline, so the client
# gets our message rather than its own DEADLINE_EXCEEDED
DEADLINE_MARGIN = 1.0


def wait_budget(longest: float) -> float:
    """How long the current call may wait for another one: `longest`, or
    less when the client's deadline comes sooner (minus DEADLINE_MARGIN)."""
    trace = _current.get()
    if trace is None or trace.deadline is None:
        return longest
    return max(0.0, min(longest, trace.deadline - DEADLINE_MARGIN - time.monotonic()))


@contextmanager
def tracing(rpc: str, key: str, time_remaining: float | None = None) -> Iterator[Trace]:
    """Trace the steps of this call in this thread; `key` names what the
    call makes (a pod's or a container's metadata), so a retry finds it;
    `time_remaining` is the client's deadline (seconds from now), if any."""
    trace = Trace(rpc, key)
    if time_remaining is not None:
        trace.deadline = trace.started + time_remaining
    token = _current.set(trace)
    with _lock:
        _open[id(trace)] = trace
    try:
        yield trace
    finally:
        with _lock:
            _open.pop(id(trace), None)
        _current.reset(token)


def in_progress(rpc: str, key: str, but: Trace | None = None) -> Trace | None:
    """The oldest open trace of `rpc` for `key`, other than `but`."""
    with _lock:
        found = [t for t in _open.values() if t.rpc == rpc and t.key == key and t is not but]
    return min(found, key=lambda t: t.started) if found else None


def stalled_note(first: Trace, now: float | None = None) -> str:
    """What a retry is told about the call it is waiting for."""
    now = time.monotonic() if now is None else now
    step, at = first.last()
    where = "has not passed its first step" if step == START else f"passed step {step!r}"
    return (f"the first request, started {now - first.started:.1f} s ago, is still in progress: "
            f"it {where} {now - at:.1f} s ago and is stalled at the next one")
