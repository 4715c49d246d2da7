"""exec_output.collect_exec_output, the ExecSync output loop of every
runtime handler, on plain pipes: the exec's end comes on its own fd, then the
output is drained until end of file, a quiet moment or _DRAIN_MAX."""
from __future__ import annotations

import os
import threading
import time

import pytest

from crio_native.runtime import exec_output


class Pipes:
    """Pipes made for a test; `close` one end early, the rest at teardown."""

    def __init__(self):
        self.open: set[int] = set()

    def __call__(self) -> tuple[int, int]:
        r, w = os.pipe2(os.O_CLOEXEC)
        self.open.update((r, w))
        return r, w

    def close(self, fd: int) -> None:
        self.open.remove(fd)
        os.close(fd)


@pytest.fixture
def pipes():
    made = Pipes()
    yield made
    for fd in made.open:
        os.close(fd)


def later(delay: float, fn) -> None:
    threading.Timer(delay, fn).start()


def test_output_then_end_then_eof(pipes):
    (out_r, out_w), (err_r, err_w), (end_r, end_w) = pipes(), pipes(), pipes()

    def finish():
        os.write(out_w, b"out")
        os.write(err_w, b"err")
        os.write(end_w, b"x")
        pipes.close(out_w)
        pipes.close(err_w)

    later(0.05, finish)
    began = time.monotonic()
    (out, err), timed_out = exec_output.collect_exec_output([out_r, err_r], end_r, None)
    assert (out, err, timed_out) == (b"out", b"err", False)
    assert time.monotonic() - began < 1.5      # EOF ends the drain, not a timer


def test_deadline_before_the_end(pipes):
    (out_r, out_w), (err_r, _), (end_r, _) = pipes(), pipes(), pipes()
    os.write(out_w, b"partial")
    began = time.monotonic()
    (out, err), timed_out = exec_output.collect_exec_output([out_r, err_r], end_r,
                                                          time.monotonic() + 0.3)
    assert (out, err, timed_out) == (b"partial", b"", True)
    assert 0.25 < time.monotonic() - began < 2


def test_a_quiet_holder_after_the_end(pipes):
    """A background child keeps the pipes open: the end plus a quiet
    _DRAIN_IDLE is enough."""
    (out_r, out_w), (err_r, _), (end_r, end_w) = pipes(), pipes(), pipes()
    os.write(out_w, b"before")
    os.write(end_w, b"x")
    began = time.monotonic()
    (out, _), timed_out = exec_output.collect_exec_output([out_r, err_r], end_r,
                                                        time.monotonic() + 30)
    assert (out, timed_out) == (b"before", False)
    assert time.monotonic() - began < 1.5


def test_a_chatty_holder_is_cut_at_drain_max(pipes, monkeypatch):
    monkeypatch.setattr(exec_output, "_DRAIN_MAX", 0.4)
    (out_r, out_w), (err_r, _), (end_r, end_w) = pipes(), pipes(), pipes()
    stop = threading.Event()

    def chatter():
        while not stop.is_set():
            os.write(out_w, b".")
            time.sleep(0.02)

    writer = threading.Thread(target=chatter)
    writer.start()
    try:
        os.write(end_w, b"x")
        began = time.monotonic()
        (out, _), timed_out = exec_output.collect_exec_output([out_r, err_r], end_r, None)
        took = time.monotonic() - began
    finally:
        stop.set()
        writer.join()
    assert not timed_out and out.strip(b".") == b""
    assert 0.35 < took < 2


def test_output_is_capped_per_fd(pipes):
    (out_r, out_w), (err_r, err_w), (end_r, end_w) = pipes(), pipes(), pipes()
    os.write(out_w, b"a" * 100)
    os.write(err_w, b"b" * 5)
    pipes.close(out_w)
    pipes.close(err_w)
    os.write(end_w, b"x")
    (out, err), _ = exec_output.collect_exec_output([out_r, err_r], end_r, None, limit=10)
    assert (out, err) == (b"a" * 10, b"b" * 5)


def test_closed_output_does_not_end_the_wait(pipes):
    """A process that closes its stdout and stderr and runs on is still
    running: the deadline, not the end of file, ends the wait."""
    (out_r, out_w), (err_r, err_w), (end_r, _) = pipes(), pipes(), pipes()
    pipes.close(out_w)
    pipes.close(err_w)
    began = time.monotonic()
    _, timed_out = exec_output.collect_exec_output([out_r, err_r], end_r, time.monotonic() + 0.3)
    assert timed_out and 0.25 < time.monotonic() - began < 2
