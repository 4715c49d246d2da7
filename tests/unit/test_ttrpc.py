"""The ttrpc client (runtime/shim/ttrpc.py) against the in-process fake
server of tests/fixtures/fake_ttrpc.py: header layout, odd stream ids,
concurrent calls answered out of order, status codes to typed errors,
timeouts and a server that goes away.  No root."""
from __future__ import annotations

import struct
import threading
import time

import pytest

from crio_native._proto.shim.v2 import task_pb2
from crio_native.errors import (DeadlineExceeded, FailedPrecondition, Internal, NotFound,
                                Unavailable)
from crio_native.runtime.shim.task import PROCESS_TYPE_URL, SERVICE, TaskClient
from crio_native.runtime.shim.ttrpc import (HEADER_LENGTH, TYPE_REQUEST, TtrpcClient,
                                            encode_frame, error_from_status)
from tests.fixtures.fake_ttrpc import FakeTtrpcServer, response


@pytest.fixture
def serve(tmp_path):
    servers = []

    def make(handler):
        s = FakeTtrpcServer(tmp_path / f"s{len(servers)}.sock", handler)
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
    def echo_state(call):
        r = task_pb2.StateRequest.FromString(call.request.payload)
        return response(task_pb2.StateResponse(id=r.id, pid=42,
                                               status=task_pb2.RUNNING).SerializeToString())
    server = serve(echo_state)
    with TtrpcClient(str(server.address)) as client:
        for _ in range(3):
            answer = client.call(SERVICE, "State", task_pb2.StateRequest(id="c1"),
                                 task_pb2.StateResponse, timeout=2.5)
            assert (answer.id, answer.pid, answer.status) == ("c1", 42, task_pb2.RUNNING)
    assert [call.stream_id for call in server.calls] == [1, 3, 5]
    first = server.calls[0]
    assert first.frame_type == TYPE_REQUEST
    assert (first.request.service, first.request.method, first.request.timeout_nano) == \
        ("containerd.task.v2.Task", "State", 2_500_000_000)


@pytest.mark.parametrize("code,cls", [(5, NotFound), (9, FailedPrecondition),
                                      (14, Unavailable), (2, Internal), (4, DeadlineExceeded)])
def test_status_codes_become_typed_errors(serve, code, cls):
    server = serve(lambda call: response(code=code, message="container not created: not found"))
    with TtrpcClient(f"unix://{server.address}") as client:
        with pytest.raises(cls, match="ttrpc containerd.task.v2.Task/Kill: container not "
                                      "created"):
            TaskClient(client).kill("c1", 9)


def test_error_from_status_without_message():
    assert str(error_from_status(12, "", "where")) == "where: status code 12"


def test_concurrent_calls_are_matched_by_stream_id(serve):
    release = threading.Event()

    def handler(call):
        if call.request.method == "Wait":
            release.wait(5)
            return response(task_pb2.WaitResponse(exit_status=3).SerializeToString())
        release.set()
        return response()
    server = serve(handler)
    with TtrpcClient(str(server.address)) as client:
        task = TaskClient(client)
        result = {}
        waiter = threading.Thread(target=lambda: result.update(w=task.wait("c1")))
        waiter.start()
        time.sleep(0.05)
        task.kill("c1", 15)        # answered while Wait is still pending
        waiter.join(5)
        assert result["w"].exit_status == 3


def test_timeout_is_deadline_exceeded_and_the_client_stays_usable(serve):
    server = serve(lambda call: None if call.request.method == "Wait" else response())
    with TtrpcClient(str(server.address)) as client:
        task = TaskClient(client)
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded, match="Wait"):
            task.wait("c1", timeout=0.2)
        assert time.monotonic() - started < 2
        task.start("c1")


def test_server_going_away_fails_pending_and_later_calls(serve):
    server = serve(lambda call: None)
    client = TtrpcClient(str(server.address))
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
    server = serve(lambda call: response())
    with TtrpcClient(str(server.address)) as client:
        TaskClient(client).exec("c1", "e1", {"args": ["true"]}, stdout="/x")
    request = task_pb2.ExecProcessRequest.FromString(server.calls[0].request.payload)
    assert (request.exec_id, request.stdout) == ("e1", "/x")
    assert request.spec.type_url == PROCESS_TYPE_URL
    assert request.spec.value == b'{"args": ["true"]}'
