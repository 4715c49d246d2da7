"""crio-native-shim-relay (src/_native/shimrelay/) run as the real binary
against a fake shim: the fake ttrpc server of tests/fixtures/fake_ttrpc.py,
answering Task/Wait as each test needs.
The relay's stdin/stdout/stderr are pipes of the test, standing in for the
monitor's.  What a real shim adds (containerd-shim-runc-v2 driving a
container) is in test_shim_handler.py.  No root needed."""
from __future__ import annotations

import contextlib
import errno
import os
import select
import subprocess
import threading
import time
from pathlib import Path

import pytest
from google.protobuf import timestamp_pb2

from crio_native._proto.shim.v2 import task_pb2
from crio_native.monitor.paths import shim_relay_binary
from crio_native.runtime.shim.task import SERVICE
from crio_native.runtime.shim.ttrpc import TYPE_REQUEST, TYPE_RESPONSE, encode_frame
from tests.fixtures.fake_ttrpc import HANGUP, FakeTtrpcServer, Raw, response

RELAY = shim_relay_binary()
GRACE = 2.0          # the relay's SHIM_LOST_GRACE
DRAIN_MAX = 2.0
MESSAGE_PREFIX = b"crio-native shim relay: Wait for task-1: "


def wait_answer(exit_status: int = 0, code: int = 0, message: str = "") -> bytes:
    """A ttrpc.Response to Wait: the exit status, or a non-OK status."""
    if code:
        return response(code=code, message=message)
    return response(task_pb2.WaitResponse(
        exit_status=exit_status,
        exited_at=timestamp_pb2.Timestamp(seconds=1700000000, nanos=5)).SerializeToString())


class Env:
    """A test's shims, relays and FIFOs, all ended at teardown."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.address = tmp / "shim.sock"
        self.shims: list[FakeTtrpcServer] = []
        self.relays: list[subprocess.Popen] = []
        self.release = threading.Event()     # lets held Wait calls answer
        self.fds: list[int] = []

    def shim(self, handler, *, address: str | None = None,
             byte_by_byte: bool = False) -> FakeTtrpcServer:
        s = FakeTtrpcServer(address or self.address, handler, byte_by_byte=byte_by_byte)
        self.shims.append(s)
        return s

    def held(self, exit_status: int = 0):
        """A handler that waits for `release` (the task runs until then)."""
        def handler(call):
            self.release.wait(30)
            return wait_answer(exit_status)
        return handler

    def fifo(self, name: str) -> Path:
        path = self.tmp / name
        os.mkfifo(path, 0o600)
        return path

    def relay(self, *extra: str, stdin=subprocess.DEVNULL, address: str | None = None,
              task_id: str = "task-1") -> subprocess.Popen:
        p = subprocess.Popen([str(RELAY), "--address", address or f"unix://{self.address}",
                              "--id", task_id, *extra],
                             stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.relays.append(p)
        return p

    def writer(self, path: Path) -> int:
        """The shim's end of an output FIFO, once the relay reads it."""
        deadline = time.monotonic() + 5
        while True:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as e:
                if e.errno != errno.ENXIO or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
                continue
            os.set_blocking(fd, True)
            self.fds.append(fd)
            return fd

    def close_fd(self, fd: int) -> None:
        self.fds.remove(fd)
        os.close(fd)

    def cleanup(self):
        self.release.set()
        for p in self.relays:
            if p.poll() is None:
                p.kill()
            finish(p)
        for s in self.shims:
            s.close()
        for fd in self.fds:
            os.close(fd)


@pytest.fixture
def env(tmp_path):
    assert RELAY.exists(), f"{RELAY} is not built (make build)"
    e = Env(tmp_path)
    yield e
    e.cleanup()


def wait_call(shim: FakeTtrpcServer, method: str = "Wait", timeout: float = 5):
    """The first call of `method` the shim has read, once it has one."""
    deadline = time.monotonic() + timeout
    while not (calls := [c for c in shim.calls if c.request.method == method]):
        assert time.monotonic() < deadline, f"no {method} call"
        time.sleep(0.01)
    return calls[0]


def finish(p: subprocess.Popen, timeout: float = 10) -> tuple[int, bytes, bytes]:
    if p.stdin is not None and p.stdin.closed:
        p.stdin = None        # else communicate() would flush it
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


def read_some(fd: int, timeout: float) -> bytes:
    r, _, _ = select.select([fd], [], [], timeout)
    return os.read(fd, 65536) if r else b""


def read_until(fd: int, want: int, timeout: float = 5) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        got += read_some(fd, deadline - time.monotonic())
    return got


# ---- the exit status from Wait ---------------------------------------------------------

@pytest.mark.parametrize("status, code", [(0, 0), (3, 3), (137, 137), (255, 255),
                                          (256, 255), (2**32 - 1, 255)])
def test_exits_with_the_task_status(env, status, code):
    shim = env.shim(lambda call: wait_answer(status))
    assert finish(env.relay()) == (code, b"", b"")
    assert len(shim.calls) == 1


def test_wait_request_envelope(env):
    shim = env.shim(lambda call: wait_answer(0))
    assert finish(env.relay(task_id="ctr-abc"))[0] == 0
    [call] = shim.calls
    assert (call.stream_id, call.frame_type) == (1, TYPE_REQUEST)
    request = call.request
    assert (request.service, request.method, request.timeout_nano) == (SERVICE, "Wait", 0)
    assert not request.metadata
    wait = task_pb2.WaitRequest.FromString(request.payload)
    assert (wait.id, wait.exec_id) == ("ctr-abc", "")


def test_not_found_is_retried_until_the_task_appears(env):
    shim = env.shim(lambda call: wait_answer(code=5, message="container not created")
                    if call.index < 5 else wait_answer(7))
    assert finish(env.relay()) == (7, b"", b"")
    assert len(shim.calls) == 6
    # one call per connection, so every one is stream 1
    assert {call.stream_id for call in shim.calls} == {1}


def test_not_found_past_the_appear_timeout_is_unknown(env):
    env.shim(lambda call: wait_answer(code=5, message="container not created"))
    started = time.monotonic()
    code, out, err = finish(env.relay("--appear-timeout", "0.3"))
    assert code == 255 and 0.25 < time.monotonic() - started < 3
    assert err.startswith(MESSAGE_PREFIX) and b"container not created" in err


def test_no_shim_is_unknown_after_the_grace(env):
    started = time.monotonic()
    code, out, err = finish(env.relay())
    elapsed = time.monotonic() - started
    assert code == 255 and GRACE - 0.1 < elapsed < GRACE + 2
    assert err.startswith(MESSAGE_PREFIX) and b"cannot connect" in err


def test_shim_dying_during_wait_is_unknown_after_the_grace(env):
    shim = env.shim(lambda call: None)
    p = env.relay()
    wait_call(shim)
    assert p.poll() is None
    time.sleep(GRACE + 0.2)     # a Wait pending this long is no part of the grace
    shim.close()
    lost = time.monotonic()
    code, out, err = finish(p)
    assert code == 255 and GRACE - 0.1 < time.monotonic() - lost < GRACE + 2
    assert err.startswith(MESSAGE_PREFIX)


def test_shim_back_within_the_grace(env):
    first = env.shim(lambda call: None)
    p = env.relay()
    wait_call(first)
    first.close()
    time.sleep(0.5)
    env.shim(lambda call: wait_answer(5))
    assert finish(p) == (5, b"", b"")


def test_shim_that_hangs_up_at_once_is_given_up_on(env):
    shim = env.shim(lambda call: HANGUP)
    started = time.monotonic()
    code, out, err = finish(env.relay())
    assert code == 255 and time.monotonic() - started < GRACE + 2
    assert len(shim.calls) > 1 and b"connection lost" in err


def test_status_unavailable_counts_as_a_lost_shim(env):
    env.shim(lambda call: wait_answer(code=14, message="shutting down"))
    code, out, err = finish(env.relay())
    assert code == 255 and b"shutting down" in err


def test_other_errors_are_unknown_at_once(env):
    shim = env.shim(lambda call: wait_answer(code=2, message="boom\nbang"))
    started = time.monotonic()
    code, out, err = finish(env.relay())
    assert code == 255 and time.monotonic() - started < 1.5 and len(shim.calls) == 1
    assert err == MESSAGE_PREFIX + b"ttrpc containerd.task.v2.Task/Wait: status code 2: boom?bang\n"


def test_frames_of_other_streams_and_types_are_skipped(env):
    def handler(call):
        noise = encode_frame(3, TYPE_RESPONSE, wait_answer(9)) + encode_frame(1, 3, b"data")
        return Raw(noise + encode_frame(1, TYPE_RESPONSE, wait_answer(4)))
    env.shim(handler)
    assert finish(env.relay()) == (4, b"", b"")


def test_answer_in_pieces(env):
    env.shim(lambda call: wait_answer(6), byte_by_byte=True)
    assert finish(env.relay()) == (6, b"", b"")


def _frame(data: bytes, length: int | None = None) -> Raw:
    head = encode_frame(1, TYPE_RESPONSE, b"")
    n = len(data) if length is None else length
    return Raw(n.to_bytes(4, "big") + head[4:] + data)


MALFORMED = {
    "truncated status": _frame(b"\x0a\x05\x08"),
    "varint over 10 bytes": _frame(b"\x10" + b"\xff" * 11),
    "group wire type": _frame(b"\x0b\x0c"),
    "field number 0": _frame(b"\x02\x00"),
    "bad WaitResponse": _frame(response(b"\x08" + b"\x80" * 10)),
    "bad exited_at": _frame(response(b"\x08\x01\x12\x01\x08")),
    "frame over the 4 MiB limit": _frame(b"", length=(4 << 20) + 1),
    "answer over 64 KiB": _frame(b"\x12\x80\x80\x04" + b"\0" * 65536),
}


@pytest.mark.parametrize("frame", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_answer_is_unknown_with_a_message(env, frame):
    shim = env.shim(lambda call: frame)
    code, out, err = finish(env.relay())
    assert code == 255 and len(shim.calls) == 1
    assert err.startswith(MESSAGE_PREFIX) and err.endswith(b"\n") and err.count(b"\n") == 1
    assert b"malformed" in err or b"exceeds" in err or b"more than" in err


# ---- stdio ---------------------------------------------------------------------------------

def test_output_is_copied_and_drained_after_the_exit(env):
    out_fifo, err_fifo = env.fifo("stdout"), env.fifo("stderr")
    env.shim(env.held(0))
    p = env.relay("--stdout", str(out_fifo), "--stderr", str(err_fifo))
    out_w, err_w = env.writer(out_fifo), env.writer(err_fifo)
    os.write(out_w, b"before\n")
    os.write(err_w, b"oops\n")
    assert read_until(p.stdout.fileno(), 7) == b"before\n"
    env.release.set()
    time.sleep(0.05)
    for i in range(5):               # the task's last words, after Wait answered
        os.write(out_w, b"after %d\n" % i)
        time.sleep(0.05)
    env.close_fd(out_w)
    env.close_fd(err_w)
    closed = time.monotonic()
    code, out, err = finish(p)
    assert code == 0 and time.monotonic() - closed < 1
    assert out == b"".join(b"after %d\n" % i for i in range(5))
    assert err == b"oops\n"


def test_drain_ends_when_quiet(env):
    out_fifo = env.fifo("stdout")
    env.shim(env.held(0))
    p = env.relay("--stdout", str(out_fifo))
    w = env.writer(out_fifo)        # held open: a background process of the task
    os.write(w, b"x\n")
    env.release.set()
    released = time.monotonic()
    code, out, err = finish(p)
    assert (code, out) == (0, b"x\n") and time.monotonic() - released < 1


def test_drain_ends_at_its_limit(env):
    out_fifo = env.fifo("stdout")
    env.shim(env.held(0))
    p = env.relay("--stdout", str(out_fifo))
    w = env.writer(out_fifo)
    stop = threading.Event()

    def chatter():
        with contextlib.suppress(OSError):
            while not stop.wait(0.03):
                os.write(w, b"y\n")
    t = threading.Thread(target=chatter)
    t.start()
    try:
        time.sleep(0.1)
        env.release.set()
        released = time.monotonic()
        code, out, err = finish(p)
        assert code == 0 and DRAIN_MAX - 0.1 < time.monotonic() - released < DRAIN_MAX + 1.5
        assert out and set(out.split(b"\n")) <= {b"y", b""}
    finally:
        stop.set()
        t.join()


def test_fifos_never_opened_by_a_shim_end_with_the_exit(env):
    out_fifo, err_fifo = env.fifo("stdout"), env.fifo("stderr")
    env.shim(lambda call: wait_answer(3))
    started = time.monotonic()
    assert finish(env.relay("--stdout", str(out_fifo), "--stderr", str(err_fifo))) == (3, b"", b"")
    assert time.monotonic() - started < 1


def test_stdin_is_forwarded_and_closed(env):
    in_fifo = env.fifo("stdin")
    task_in = os.open(in_fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    env.fds.append(task_in)
    env.shim(env.held(0))
    p = env.relay("--stdin", str(in_fifo), stdin=subprocess.PIPE)
    p.stdin.write(b"hello\n")
    p.stdin.flush()
    assert read_until(task_in, 6) == b"hello\n"
    big = os.urandom(300 << 10)       # more than the FIFO and the relay hold

    def feed():
        p.stdin.write(big)
        p.stdin.close()               # EOF: the relay closes the FIFO for the task
    t = threading.Thread(target=feed)
    t.start()
    got = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not select.select([task_in], [], [], 0.5)[0]:
            continue
        chunk = os.read(task_in, 65536)
        if not chunk:
            break                     # EOF: no writer left
        got += chunk
        time.sleep(0.001)             # a slow reader: the relay must wait, not drop
    t.join(5)
    assert got == big
    env.release.set()
    assert finish(p)[0] == 0


def close_io_or_held(env, close_io_answer: bytes = b""):
    """CloseIO answered at once (with `close_io_answer`, else OK); Wait held."""
    held = env.held(0)

    def handler(call):
        if call.request.method == "CloseIO":
            return close_io_answer or response()
        return held(call)
    return handler


def test_end_of_stdin_closes_the_fifo_and_calls_close_io(env):
    """A shim may hold a writer of the FIFO itself (the runc shim does), so
    the end of stdin also goes to it as CloseIO(id, stdin=true)."""
    in_fifo = env.fifo("stdin")
    task_in = os.open(in_fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    env.fds.append(task_in)
    shim = env.shim(close_io_or_held(env))
    p = env.relay("--stdin", str(in_fifo), stdin=subprocess.PIPE)
    p.stdin.write(b"last words\n")
    p.stdin.close()
    assert read_until(task_in, 11) == b"last words\n"
    wait_call(shim, "CloseIO")
    [call] = [c for c in shim.calls if c.request.method == "CloseIO"]
    assert (call.request.service, call.frame_type) == (SERVICE, TYPE_REQUEST)
    close_io = task_pb2.CloseIORequest.FromString(call.request.payload)
    assert (close_io.id, close_io.exec_id, close_io.stdin) == ("task-1", "", True)
    assert os.read(task_in, 10) == b""     # our writer is gone: end of file
    env.release.set()
    assert finish(p) == (0, b"", b"")


def test_a_failed_close_io_is_said_in_the_log(env):
    in_fifo = env.fifo("stdin")
    env.shim(close_io_or_held(env, response(code=2, message="boom")))
    p = env.relay("--stdin", str(in_fifo), stdin=subprocess.PIPE)
    p.stdin.close()
    time.sleep(0.5)
    env.release.set()
    code, _, err = finish(p)
    assert code == 0
    assert err == b"crio-native shim relay: CloseIO of the stdin of task-1: status code 2: boom\n"


def test_end_of_stdin_of_a_terminal_is_ctrl_d(env):
    """With --terminal the FIFO feeds a pty (the shim's): the end of stdin
    is ^D typed into it, as the monitor types it into its own, and the FIFO
    and the shim's stdin stay open."""
    in_fifo = env.fifo("stdin")
    task_in = os.open(in_fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    env.fds.append(task_in)
    shim = env.shim(close_io_or_held(env))
    p = env.relay("--stdin", str(in_fifo), "--terminal", stdin=subprocess.PIPE)
    p.stdin.write(b"ls\n")
    p.stdin.close()
    assert read_until(task_in, 4) == b"ls\n\x04"
    time.sleep(0.3)
    with pytest.raises(BlockingIOError):
        os.read(task_in, 10)                # no end of file: the relay still writes
    assert [c.request.method for c in shim.calls] == ["Wait"]
    env.release.set()
    assert finish(p) == (0, b"", b"")


def test_stdin_the_task_does_not_read_does_not_hold_up_its_output(env):
    in_fifo, out_fifo = env.fifo("stdin"), env.fifo("stdout")
    env.shim(env.held(0))
    p = env.relay("--stdin", str(in_fifo), "--stdout", str(out_fifo), stdin=subprocess.PIPE)
    os.set_blocking(p.stdin.fileno(), False)
    sent = 0
    with contextlib.suppress(BlockingIOError):
        while sent < (1 << 20):
            sent += os.write(p.stdin.fileno(), b"z" * 65536)
    assert sent >= 64 << 10          # the FIFO (nobody reads it) and the relay are full
    w = env.writer(out_fifo)
    os.write(w, b"still here\n")
    assert read_until(p.stdout.fileno(), 11) == b"still here\n"
    env.close_fd(w)
    env.release.set()
    assert finish(p)[0] == 0


def test_shim_log_is_drained_into_a_bounded_file(env):
    log_fifo, log_file = env.fifo("log"), env.tmp / "shim.log"
    env.shim(env.held(0))
    p = env.relay("--shim-log", str(log_fifo), "--shim-log-file", str(log_file))
    w = env.writer(log_fifo)
    data = bytes(range(256)) * ((3 << 20) // 256 // 2)     # 1.5 MiB
    os.write(w, data)                # blocks until the relay has read it all
    env.close_fd(w)
    env.release.set()
    assert finish(p)[0] == 0
    assert log_file.read_bytes() == data[:1 << 20]
    assert log_file.stat().st_mode & 0o777 == 0o600


def test_shim_log_is_drained_without_its_file(env):
    log_fifo = env.fifo("log")
    env.shim(env.held(0))
    p = env.relay("--shim-log", str(log_fifo), "--shim-log-file", str(env.tmp / "no" / "log"))
    w = env.writer(log_fifo)
    os.write(w, b"s" * (512 << 10))  # more than a FIFO holds: someone reads it
    env.close_fd(w)
    env.release.set()
    assert finish(p)[0] == 0


# ---- the command line ---------------------------------------------------------------------

@pytest.mark.parametrize("args, says", [
    (["--address", "unix:///x"], b"required"),
    (["--id", "a"], b"required"),
    (["--address", "unix:///x", "--id", "a", "--bogus", "1"], b"--bogus"),
    (["--address", "unix:///x", "--id", "a", "--appear-timeout", "soon"], b"not a number"),
    (["--address", "unix:///x", "--id"], b"expected a value"),
    (["--address", "unix:///x", "--id", "a", "stray"], b"stray"),
    (["--address", "unix:///x", "--id", "a", "--terminal"], b"--terminal needs --stdin"),
])
def test_bad_command_line_exits_2(args, says):
    r = subprocess.run([str(RELAY), *args], capture_output=True, timeout=10)
    assert r.returncode == 2 and says in r.stderr and b"usage:" in r.stderr


def test_equals_form_and_a_bare_path_address(env):
    env.shim(lambda call: wait_answer(12))
    p = subprocess.Popen([str(RELAY), f"--address={env.address}", "--id=task-1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    env.relays.append(p)
    assert finish(p) == (12, b"", b"")


def test_abstract_socket_address(env):
    name = f"@crn-relay-test-{os.getpid()}-{time.monotonic_ns()}"
    env.shim(lambda call: wait_answer(21), address=name)
    assert finish(env.relay(address=f"unix://{name}")) == (21, b"", b"")


def test_missing_fifo_is_unknown_with_a_message(env):
    env.shim(lambda call: wait_answer(0))
    code, out, err = finish(env.relay("--stdout", str(env.tmp / "nope")))
    assert code == 255 and b"nope" in err
