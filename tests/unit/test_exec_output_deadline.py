"""exec_output.collect_exec_output with the longest ExecSync timeouts the
edge lets through (issue 17): a deadline weeks or decades away waits in
steps epoll can take, instead of OverflowError (answered INTERNAL)."""
from __future__ import annotations

import os
import threading
import time

import pytest

from crio_native.runtime import exec_output

MAX_TIMEOUT_SECONDS = 2**31 - 1    # the edge's largest ExecSync timeout (an int32)


@pytest.mark.parametrize("seconds", [30 * 86400, MAX_TIMEOUT_SECONDS])
def test_far_deadline_waits_for_the_end(seconds):
    (out_r, out_w), (end_r, end_w) = os.pipe2(os.O_CLOEXEC), os.pipe2(os.O_CLOEXEC)
    try:
        def finish():
            os.write(out_w, b"done")
            os.close(out_w)
            os.write(end_w, b"x")

        threading.Timer(0.1, finish).start()
        began = time.monotonic()
        (out,), timed_out = exec_output.collect_exec_output(
            [out_r], end_r, time.monotonic() + seconds)
        assert (out, timed_out) == (b"done", False)
        assert time.monotonic() - began < 5
    finally:
        for fd in (out_r, end_r, end_w):
            os.close(fd)
