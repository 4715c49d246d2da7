"""A call's cancellation from the wire to the exec loop (no root): the
Cancellation token itself, collect_exec_output ending its wait on it, and
cri/wire's Call.cancellation() cancelled by RST_STREAM, by the connection's
end and by the grpc-timeout deadline, with the worker free again after
each.  The daemon with real containers: tests/e2e/test_exec_sync_cancel.py."""
from __future__ import annotations

import os
import select
import threading
import time

import pytest
from h2.errors import ErrorCodes

from crio_native._proto import api_pb2
from crio_native.cancellation import Cancellation, earliest
from crio_native.cri import edge
from crio_native.cri.wire import Call, Server, StatusCode
from crio_native.runtime import exec_output
from tests.h2client import RawClient, grpc_message

EXEC_SYNC = "/runtime.v1.RuntimeService/ExecSync"
VERSION = "/runtime.v1.RuntimeService/Version"


def readable(fd: int, timeout: float = 0.0) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


def wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# ---- the token ----------------------------------------------------------------

def test_fd_turns_readable_on_cancel_made_before_or_after():
    with Cancellation() as early:
        fd = early.fileno()
        assert not readable(fd) and not early.done()
        threading.Timer(0.05, early.cancel).start()
        assert readable(fd, 10) and early.cancelled and early.done()
    with Cancellation() as late:
        late.cancel()
        late.cancel()                  # twice is once
        assert readable(late.fileno())


def test_deadline_is_not_a_cancel():
    with Cancellation(time.monotonic() - 1) as past:
        assert past.expired() and past.done() and not past.cancelled
        assert not readable(past.fileno())
    assert not Cancellation().expired()


def test_cancel_after_close_does_nothing_and_fileno_refuses():
    cancel = Cancellation()
    fd = cancel.fileno()
    cancel.close()
    cancel.cancel()                    # a call's callback that runs after the handler
    with pytest.raises(OSError):
        os.fstat(fd)                   # closed, and nothing wrote to a reused number
    with pytest.raises(ValueError):
        cancel.fileno()


def test_earliest():
    assert earliest(None, None) is None
    assert earliest(5.0, None) == 5.0
    assert earliest(None, Cancellation(3.0)) == 3.0
    assert earliest(5.0, Cancellation(3.0)) == 3.0
    assert earliest(2.0, Cancellation(3.0)) == 2.0
    assert earliest(2.0, Cancellation()) == 2.0


# ---- the exec loop ---------------------------------------------------------------

@pytest.fixture
def exec_pipes():
    """(output read end, output write end, end read end, end write end)."""
    (out_r, out_w), (end_r, end_w) = os.pipe2(os.O_CLOEXEC), os.pipe2(os.O_CLOEXEC)
    yield out_r, out_w, end_r, end_w
    for fd in (out_r, out_w, end_r, end_w):
        try:
            os.close(fd)
        except OSError:
            pass


def test_cancel_ends_the_wait_with_the_output_so_far(exec_pipes):
    out_r, out_w, end_r, _ = exec_pipes
    os.write(out_w, b"partial")
    with Cancellation() as cancel:
        threading.Timer(0.1, cancel.cancel).start()
        (out,), stopped = exec_output.collect_exec_output([out_r], end_r, None, cancel=cancel)
    assert (out, stopped) == (b"partial", True)


def test_the_calls_deadline_ends_the_wait_before_the_own_one(exec_pipes):
    out_r, _, end_r, _ = exec_pipes
    with Cancellation(time.monotonic() + 0.1) as cancel:
        (out,), stopped = exec_output.collect_exec_output(
            [out_r], end_r, time.monotonic() + 3600, cancel=cancel)
    assert (out, stopped) == (b"", True) and cancel.expired() and not cancel.cancelled


def test_a_cancel_after_the_end_changes_nothing(exec_pipes):
    out_r, out_w, end_r, end_w = exec_pipes
    with Cancellation() as cancel:
        def finish():
            os.write(out_w, b"all")
            os.write(end_w, b"x")
            cancel.cancel()            # the client leaves just as it ends
            os.close(out_w)

        threading.Timer(0.05, finish).start()
        (out,), stopped = exec_output.collect_exec_output([out_r], end_r, None, cancel=cancel)
    assert (out, stopped) == (b"all", False)


# ---- the wire: a call's cancellation ------------------------------------------------

class Waiter:
    """An ExecSync handler that waits on its call's cancellation as the
    exec loop does, and says why it stopped waiting."""

    def __init__(self):
        self.started = threading.Semaphore(0)
        self.seen: list[str] = []

    def exec_sync(self, request, call):
        with call.cancellation() as cancel:
            self.started.release()
            wait = 30.0 if cancel.deadline is None else max(0.0, cancel.deadline
                                                            - time.monotonic())
            select.select([cancel], [], [], min(wait, 30.0))
            self.seen.append("cancelled" if cancel.cancelled else
                             "expired" if cancel.expired() else "neither")
        return api_pb2.ExecSyncResponse(exit_code=0)

    def version(self, request, call):
        return api_pb2.VersionResponse(runtime_name="cancel-test")


@pytest.fixture
def served(tmp_path):
    waiter = Waiter()
    server = Server([edge.service_handler("RuntimeService", {
        "ExecSync": waiter.exec_sync, "Version": waiter.version})],
        max_workers=2, max_send=1 << 20, max_recv=1 << 20)
    path = str(tmp_path / "cri.sock")
    server.bind(path)
    server.start()
    try:
        yield server, path, waiter
    finally:
        server.stop(0)


def exec_body() -> bytes:
    return grpc_message(api_pb2.ExecSyncRequest(container_id="c", cmd=["sleep", "1000"])
                        .SerializeToString())


def test_reset_stream_cancels_and_frees_the_workers(served):
    """As many waiting calls as workers: a further call waits; the client
    resets them, each handler sees the cancel, and the workers serve again."""
    server, path, waiter = served
    with RawClient(path) as client:
        sids = [client.start(EXEC_SYNC, exec_body()) for _ in range(2)]
        for _ in sids:
            assert waiter.started.acquire(timeout=10)
        assert server.running_calls == 2
        version = client.start(VERSION, grpc_message(b""))
        client.quiet_for(0.3)
        assert not client.answers[version].ended       # no worker was free
        for sid in sids:
            client.h2.reset_stream(sid, ErrorCodes.CANCEL)
        client.flush()
        client.read(lambda: client.answers[version].ended)
        assert client.answers[version].code == StatusCode.OK
        assert wait_for(lambda: server.running_calls == 0)
        assert waiter.seen == ["cancelled", "cancelled"]
        assert not any(client.answers[s].ended for s in sids)   # nothing sent after a reset


def test_closed_connection_cancels(served):
    server, path, waiter = served
    client = RawClient(path)
    client.start(EXEC_SYNC, exec_body())
    assert waiter.started.acquire(timeout=10)
    client.close()
    assert wait_for(lambda: server.running_calls == 0)
    assert waiter.seen == ["cancelled"]


def test_grpc_timeout_ends_the_wait_and_answers_deadline_exceeded(served):
    """No RST_STREAM: the server's own view of the deadline ends the wait."""
    server, path, waiter = served
    with RawClient(path) as client:
        answer = client.call(EXEC_SYNC, exec_body(), extra=(("grpc-timeout", "200m"),))
    assert answer.code == StatusCode.DEADLINE_EXCEEDED
    assert waiter.seen == ["expired"]
    assert wait_for(lambda: server.running_calls == 0)


def test_cancellation_of_an_ended_call_is_cancelled_at_once():
    call = Call("/runtime.v1.RuntimeService/ExecSync", time.monotonic() + 60, ())
    with call.cancellation() as live:
        assert not live.done() and live.deadline == call.deadline
    call.end()                          # runs the closed token's cancel: harmless
    with call.cancellation() as late:
        assert late.cancelled and readable(late.fileno())
