"""The ttrpc client (runtime/shim/ttrpc.py) against an in-process fake
server built here from the same framing: header layout, odd stream ids,
concurrent calls answered out of order, status codes to typed errors,
timeouts and a server that goes away.  No root."""
from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from crio_native._proto.shim import ttrpc_pb2
from crio_native._proto.shim.v2 import task_pb2
from crio_native.errors import (DeadlineExceeded, FailedPrecondition, Internal, NotFound,
                                Unavailable)
from crio_native.runtime.shim.task import PROCESS_TYPE_URL, SERVICE, TaskClient
from crio_native.runtime.shim.ttrpc import (HEADER_LENGTH, TYPE_REQUEST, TYPE_RESPONSE,
                                            TtrpcClient, encode_frame, error_from_status,
                                            read_frame)


class FakeServer:
    """Serves one connection at a time; `handler(request) -> (code,
    message, payload)` or None to never answer.  Each request is handled in
    its own thread, so answers may come out of order."""

    def __init__(self, path: Path, handler):
        self.path, self.handler = path, handler
        self.requests: list[tuple[int, int, ttrpc_pb2.Request]] = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(4)
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        while True:
            try:
                stream_id, mtype, flags, data = read_frame(conn)
            except OSError:
                return
            request = ttrpc_pb2.Request.FromString(data)
            self.requests.append((stream_id, mtype, request))
            threading.Thread(target=self._answer, args=(conn, stream_id, request),
                             daemon=True).start()

    def _answer(self, conn, stream_id, request):
        answer = self.handler(request)
        if answer is None:
            return
        code, message, payload = answer
        response = ttrpc_pb2.Response(payload=payload)
        if code:
            response.status.code, response.status.message = code, message
        with self.lock:
            conn.sendall(encode_frame(stream_id, TYPE_RESPONSE, response.SerializeToString()))

    def close(self):
        self.listener.close()
        for c in self.conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)     # close() alone would not wake recv()
            c.close()


@pytest.fixture
def serve(tmp_path):
    servers = []

    def make(handler):
        s = FakeServer(tmp_path / f"s{len(servers)}.sock", handler)
        servers.append(s)
        return s
    yield make
    for s in servers:
        s.close()


def test_frame_header_layout():
    frame = encode_frame(7, TYPE_REQUEST, b"abc")
    assert HEADER_LENGTH == 10
    assert frame[:10] == struct.pack(">IIBB", 3, 7, 1, 0) and frame[10:] == b"abc"


def test_call_sends_envelope_on_odd_stream_ids(serve):
    def echo_state(req):
        r = task_pb2.StateRequest.FromString(req.payload)
        return 0, "", task_pb2.StateResponse(id=r.id, pid=42,
                                             status=task_pb2.RUNNING).SerializeToString()
    server = serve(echo_state)
    with TtrpcClient(str(server.path)) as client:
        for _ in range(3):
            answer = client.call(SERVICE, "State", task_pb2.StateRequest(id="c1"),
                                 task_pb2.StateResponse, timeout=2.5)
            assert (answer.id, answer.pid, answer.status) == ("c1", 42, task_pb2.RUNNING)
    assert [sid for sid, _, _ in server.requests] == [1, 3, 5]
    _, mtype, request = server.requests[0]
    assert mtype == TYPE_REQUEST
    assert (request.service, request.method, request.timeout_nano) == \
        ("containerd.task.v2.Task", "State", 2_500_000_000)


@pytest.mark.parametrize("code,cls", [(5, NotFound), (9, FailedPrecondition),
                                      (14, Unavailable), (2, Internal), (4, DeadlineExceeded)])
def test_status_codes_become_typed_errors(serve, code, cls):
    server = serve(lambda req: (code, "container not created: not found", b""))
    with TtrpcClient(f"unix://{server.path}") as client:
        with pytest.raises(cls, match="ttrpc containerd.task.v2.Task/Kill: container not "
                                      "created"):
            TaskClient(client).kill("c1", 9)


def test_error_from_status_without_message():
    assert str(error_from_status(12, "", "where")) == "where: status code 12"


def test_concurrent_calls_are_matched_by_stream_id(serve):
    release = threading.Event()

    def handler(req):
        if req.method == "Wait":
            release.wait(5)
            return 0, "", task_pb2.WaitResponse(exit_status=3).SerializeToString()
        release.set()
        return 0, "", b""
    server = serve(handler)
    with TtrpcClient(str(server.path)) as client:
        task = TaskClient(client)
        result = {}
        waiter = threading.Thread(target=lambda: result.update(w=task.wait("c1")))
        waiter.start()
        time.sleep(0.05)
        task.kill("c1", 15)        # answered while Wait is still pending
        waiter.join(5)
        assert result["w"].exit_status == 3


def test_timeout_is_deadline_exceeded_and_the_client_stays_usable(serve):
    server = serve(lambda req: None if req.method == "Wait" else (0, "", b""))
    with TtrpcClient(str(server.path)) as client:
        task = TaskClient(client)
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded, match="Wait"):
            task.wait("c1", timeout=0.2)
        assert time.monotonic() - started < 2
        task.start("c1")


def test_server_going_away_fails_pending_and_later_calls(serve):
    server = serve(lambda req: None)
    client = TtrpcClient(str(server.path))
    errors = []
    t = threading.Thread(target=lambda: errors.append(
        pytest.raises(Unavailable, TaskClient(client).wait, "c1")), daemon=True)
    t.start()
    time.sleep(0.1)
    server.close()
    t.join(5)
    assert errors and not t.is_alive()
    with pytest.raises(Unavailable, match="closed|lost"):
        TaskClient(client).start("c1")
    client.close()


def test_connect_refused_is_unavailable(tmp_path):
    with pytest.raises(Unavailable, match="cannot connect"):
        TtrpcClient(str(tmp_path / "nothing.sock"))


def test_exec_spec_is_json_any(serve):
    server = serve(lambda req: (0, "", b""))
    with TtrpcClient(str(server.path)) as client:
        TaskClient(client).exec("c1", "e1", {"args": ["true"]}, stdout="/x")
    request = task_pb2.ExecProcessRequest.FromString(server.requests[0][2].payload)
    assert (request.exec_id, request.stdout) == ("e1", "/x")
    assert request.spec.type_url == PROCESS_TYPE_URL
    assert request.spec.value == b'{"args": ["true"]}'
