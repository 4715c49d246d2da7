"""cri/wire's server through a real unix socket, in this process (no root):
raw HTTP/2 frames from `h2` for what grpcio's client never sends, and
grpcio's client for what the kubelet does.  The same checks against the
real daemon are in tests/e2e/test_cri_wire.py."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from h2.errors import ErrorCodes
from h2.events import ConnectionTerminated, PingAckReceived
from h2.settings import SettingCodes

from crio_native._proto import api_pb2, api_pb2_grpc
from crio_native.cri import edge
from crio_native.cri.wire import Server, StatusCode
from crio_native.errors import NotFound
from tests.h2client import Answer, RawClient, grpc_message

VERSION = "/runtime.v1.RuntimeService/Version"
LIST = "/runtime.v1.RuntimeService/ListContainers"
EVENTS = "/runtime.v1.RuntimeService/GetContainerEvents"
STATUS = "/runtime.v1.RuntimeService/PodSandboxStatus"
MAX_RECV = 64 * 1024
MAX_SEND = 4 * 1024 * 1024


class Handlers:
    def __init__(self):
        self.stream_callbacks = threading.Event()
        self.stream_finished = threading.Event()
        self.slow_seconds = 0.0
        self.seen_remaining: list[float | None] = []
        self.containers = 0

    def version(self, request, context):
        self.seen_remaining.append(context.time_remaining())
        time.sleep(self.slow_seconds)
        return api_pb2.VersionResponse(version=request.version, runtime_name="wire-test")

    def status(self, request, context):
        raise NotFound(f"pod sandbox {request.pod_sandbox_id} not found: 100% ü")

    def list_containers(self, request, context):
        return api_pb2.ListContainersResponse(containers=[
            api_pb2.Container(id=f"{i:064x}", image_ref="i" * 200) for i in range(self.containers)])

    def events(self, request, context):
        context.add_callback(self.stream_callbacks.set)
        try:
            yield api_pb2.ContainerEventResponse(container_id="first")
            while context.is_active():
                time.sleep(0.02)
        finally:
            self.stream_finished.set()

    def rpcs(self):
        return {"Version": self.version, "PodSandboxStatus": self.status,
                "ListContainers": self.list_containers, "GetContainerEvents": self.events}


@pytest.fixture
def served(tmp_path):
    handlers = Handlers()
    server = Server([edge.service_handler("RuntimeService", handlers.rpcs())], max_workers=8,
                    max_send=MAX_SEND, max_recv=MAX_RECV)
    path = str(tmp_path / "cri.sock")
    server.bind(path)
    server.start()
    try:
        yield server, path, handlers
    finally:
        server.stop(0)


def version_body(version: str = "v1", compress: bool = False) -> bytes:
    return grpc_message(api_pb2.VersionRequest(version=version).SerializeToString(), compress)


def test_unary_call_headers_message_trailers(served):
    _, path, _ = served
    with RawClient(path) as client:
        answer = client.call(VERSION, version_body("0.1.0"))
    assert answer.headers[":status"] == "200"
    assert answer.headers["content-type"] == "application/grpc"
    assert answer.trailers == {"grpc-status": "0"}
    [message] = answer.messages()
    assert api_pb2.VersionResponse.FromString(message).version == "0.1.0"


def test_ping_is_acknowledged(served):
    _, path, _ = served
    with RawClient(path) as client:
        client.h2.ping(b"crn-ping")
        client.flush()
        client.read(lambda: any(isinstance(e, PingAckReceived) for e in client.events))
        [ack] = [e for e in client.events if isinstance(e, PingAckReceived)]
        assert ack.ping_data == b"crn-ping"


def test_error_is_trailers_only_with_percent_encoded_message(served):
    _, path, _ = served
    body = grpc_message(api_pb2.PodSandboxStatusRequest(pod_sandbox_id="x").SerializeToString())
    with RawClient(path) as client:
        answer = client.call(STATUS, body)
    assert answer.trailers_only and not answer.data
    assert answer.code == StatusCode.NOT_FOUND
    assert answer.headers["grpc-message"] == "pod sandbox x not found: 100%25 %C3%BC"


def test_unknown_method_and_service_are_unimplemented(served):
    _, path, _ = served
    with RawClient(path) as client:
        for target in ("/runtime.v1.RuntimeService/NoSuchMethod", "/no.Such/Version"):
            answer = client.call(target)
            assert answer.trailers_only and answer.code == StatusCode.UNIMPLEMENTED


def test_a_method_the_daemon_does_not_implement_names_itself(served):
    _, path, _ = served
    with RawClient(path) as client:
        answer = client.call("/runtime.v1.RuntimeService/StopPodSandbox")
    assert answer.code == StatusCode.UNIMPLEMENTED
    assert "RuntimeService.StopPodSandbox" in answer.headers["grpc-message"]


def test_bad_content_type_is_415(served):
    _, path, _ = served
    with RawClient(path) as client:
        answer = client.call(VERSION, version_body(), content_type="application/json")
        assert answer.headers[":status"] == "415"
        assert answer.code == StatusCode.INVALID_ARGUMENT
        # +proto and parameters are gRPC's too
        assert client.call(VERSION, version_body(),
                           content_type="application/grpc+proto").code == StatusCode.OK


def test_gzip_request_is_decoded(served):
    _, path, _ = served
    with RawClient(path) as client:
        answer = client.call(VERSION, version_body("zipped", compress=True),
                             extra=(("grpc-encoding", "gzip"),))
    assert answer.code == StatusCode.OK
    assert api_pb2.VersionResponse.FromString(answer.messages()[0]).version == "zipped"


def test_unknown_encoding_is_unimplemented(served):
    _, path, _ = served
    with RawClient(path) as client:
        answer = client.call(VERSION, version_body(), extra=(("grpc-encoding", "br"),))
    assert answer.code == StatusCode.UNIMPLEMENTED
    assert "gzip" in answer.headers["grpc-accept-encoding"]


def test_oversized_request_is_resource_exhausted_before_its_body(served):
    _, path, _ = served
    size = MAX_RECV + 1
    with RawClient(path) as client:
        # the announced size alone: the rest of the body never needs sending
        sid = client.start(VERSION, b"\0" + size.to_bytes(4, "big") + b"\x0a", end=False)
        client.read(lambda: client.answers[sid].ended)
        answer = client.answers[sid]
        assert answer.code == StatusCode.RESOURCE_EXHAUSTED
        assert answer.headers["grpc-message"] == (
            f"Received message larger than max ({size} vs. {MAX_RECV})")
        # the connection stays usable
        assert client.call(VERSION, version_body()).code == StatusCode.OK


def test_oversized_gzip_request_is_resource_exhausted(served):
    _, path, _ = served
    big = api_pb2.VersionRequest(version="v" * (MAX_RECV * 2)).SerializeToString()
    with RawClient(path) as client:
        answer = client.call(VERSION, grpc_message(big, compress=True),
                             extra=(("grpc-encoding", "gzip"),))
    assert answer.code == StatusCode.RESOURCE_EXHAUSTED


def test_oversized_answer_is_resource_exhausted(served):
    _, path, handlers = served
    handlers.containers = MAX_SEND // 250
    with grpc.insecure_channel(f"unix:{path}", options=[
            ("grpc.max_receive_message_length", 64 << 20)]) as channel:
        with pytest.raises(grpc.RpcError) as info:
            api_pb2_grpc.RuntimeServiceStub(channel).ListContainers(
                api_pb2.ListContainersRequest())
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert info.value.details().startswith("Sent message larger than max (")


def test_large_answer_waits_for_the_peer_window(served):
    """A client with a 0-byte initial window gets nothing until it opens the
    window, then never more than it granted: the answer is blocked, neither
    dropped nor overrun, and arrives whole."""
    _, path, handlers = served
    handlers.containers = 2000          # about 0.5 MiB
    expected = handlers.list_containers(None, None).SerializeToString()
    grant = 8192
    with RawClient(path, settings={SettingCodes.INITIAL_WINDOW_SIZE: 0},
                   auto_ack=False) as client:
        sid = client.start(LIST, grpc_message(b""))
        client.read(lambda: bool(client.answers[sid].headers))
        answer = client.answers[sid]
        assert not answer.data
        assert not [e for e in client.quiet_for(0.3) if getattr(e, "data", None)]
        while not answer.ended:
            before = len(answer.data)
            client.h2.increment_flow_control_window(grant, sid)
            client.h2.increment_flow_control_window(grant)
            client.flush()
            client.read(lambda: len(answer.data) - before >= grant or answer.ended)
            assert len(answer.data) - before <= grant
        assert answer.code == StatusCode.OK
        assert answer.messages() == [expected]


def test_a_sender_blocked_on_the_window_leaves_when_the_peer_goes(served):
    server, path, handlers = served
    handlers.containers = 2000
    client = RawClient(path, settings={SettingCodes.INITIAL_WINDOW_SIZE: 0}, auto_ack=False)
    sid = client.start(LIST, grpc_message(b""))
    client.read(lambda: bool(client.answers[sid].headers))
    assert server._running == 1          # the call's thread waits for the window
    client.close()
    deadline = time.monotonic() + 5
    while server._running and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server._running == 0


def test_reset_stream_ends_the_call_and_runs_callbacks(served):
    _, path, handlers = served
    with RawClient(path) as client:
        sid = client.start(EVENTS, grpc_message(b""))
        client.read(lambda: len(client.answers[sid].data) > 0)
        assert not handlers.stream_callbacks.is_set()
        client.h2.reset_stream(sid, ErrorCodes.CANCEL)
        client.flush()
        assert handlers.stream_callbacks.wait(5)
        assert handlers.stream_finished.wait(5)
        assert client.call(VERSION, version_body()).code == StatusCode.OK


def test_closed_connection_ends_its_streams(served):
    _, path, handlers = served
    client = RawClient(path)
    sid = client.start(EVENTS, grpc_message(b""))
    client.read(lambda: len(client.answers[sid].data) > 0)
    client.close()
    assert handlers.stream_callbacks.wait(5)
    assert handlers.stream_finished.wait(5)


def test_deadline_gives_time_remaining_and_deadline_exceeded(served):
    _, path, handlers = served
    handlers.slow_seconds = 0.3
    with RawClient(path) as client:
        answer = client.call(VERSION, version_body(), extra=(("grpc-timeout", "100m"),))
    assert answer.code == StatusCode.DEADLINE_EXCEEDED
    assert 0 < handlers.seen_remaining[-1] <= 0.1


def test_graceful_stop_finishes_running_calls_after_goaway(served):
    server, path, handlers = served
    handlers.slow_seconds = 0.5
    with RawClient(path) as client:
        sid = client.start(VERSION, version_body("last"))
        time.sleep(0.1)               # the call is running
        stopper = threading.Thread(target=server.stop, args=(10,))
        stopper.start()
        client.read(lambda: client.answers[sid].ended)
        stopper.join(10)
        goaway = [e for e in client.events if isinstance(e, ConnectionTerminated)]
        assert goaway and goaway[0].last_stream_id == sid
        assert goaway[0].error_code == ErrorCodes.NO_ERROR
        assert client.answers[sid].code == StatusCode.OK
        assert client.events.index(goaway[0]) < len(client.events) - 1


def test_streams_opened_after_goaway_are_refused(served):
    server, path, handlers = served
    handlers.slow_seconds = 0.5
    with RawClient(path) as client:
        first = client.start(VERSION, version_body())
        time.sleep(0.1)
        stopper = threading.Thread(target=server.stop, args=(10,))
        stopper.start()
        client.read(lambda: any(isinstance(e, ConnectionTerminated) for e in client.events))
        late = client.start(VERSION, version_body())
        client.read(lambda: client.answers[late].ended and client.answers[first].ended)
        stopper.join(10)
        assert client.answers[late].reset == ErrorCodes.REFUSED_STREAM
        assert client.answers[first].code == StatusCode.OK


def test_stop_after_the_grace_cancels_what_runs(served):
    server, path, handlers = served
    client = RawClient(path)
    sid = client.start(EVENTS, grpc_message(b""))
    client.read(lambda: len(client.answers[sid].data) > 0)
    started = time.monotonic()
    server.stop(0.2)
    assert time.monotonic() - started < 5
    assert handlers.stream_callbacks.wait(5)
    client.close()


def test_many_concurrent_grpcio_calls(served):
    _, path, _ = served
    with grpc.insecure_channel(f"unix:{path}") as channel:
        stub = api_pb2_grpc.RuntimeServiceStub(channel)

        def one(i: int) -> str:
            if i % 5 == 0:
                with pytest.raises(grpc.RpcError) as info:
                    stub.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=str(i)))
                assert info.value.code() == grpc.StatusCode.NOT_FOUND
                return "not found"
            return stub.Version(api_pb2.VersionRequest(version=str(i)), timeout=30).version

        with ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(one, range(400)))
    assert answers == ["not found" if i % 5 == 0 else str(i) for i in range(400)]


def test_grpcio_client_reads_codes_and_messages(served):
    _, path, handlers = served
    with grpc.insecure_channel(f"unix:{path}") as channel:
        stub = api_pb2_grpc.RuntimeServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id="p"))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert info.value.details() == "pod sandbox p not found: 100% ü"
        events = stub.GetContainerEvents(api_pb2.GetEventsRequest())
        assert next(events).container_id == "first"
        events.cancel()
        with grpc.insecure_channel(f"unix:{path}",
                                   compression=grpc.Compression.Gzip) as zipped:
            assert api_pb2_grpc.RuntimeServiceStub(zipped).Version(
                api_pb2.VersionRequest(version="gz")).version == "gz"
    handlers.slow_seconds = 0.5
    with grpc.insecure_channel(f"unix:{path}") as channel:
        stub = api_pb2_grpc.RuntimeServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Version(api_pb2.VersionRequest(), timeout=0.05)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(
    st.binary(max_size=64),
    st.builds(lambda flag, payload, extra: bytes([flag]) + len(payload).to_bytes(4, "big")
              + payload + extra,
              st.sampled_from([0, 1, 2, 255]), st.binary(max_size=64), st.binary(max_size=8))))
def test_any_request_body_gets_a_status_and_the_server_lives(served, body):
    """Whatever bytes a request body holds, the call ends with a gRPC status
    (never a hang or a dead connection), and the next call is answered."""
    _, path, _ = served
    with RawClient(path) as client:
        answer = client.call(VERSION, body)
        assert answer.code in (StatusCode.OK, StatusCode.INTERNAL, StatusCode.UNIMPLEMENTED,
                               StatusCode.RESOURCE_EXHAUSTED)
        assert client.call(VERSION, version_body()).code == StatusCode.OK



GRPC_HEAD = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"localhost"),
             (b":path", VERSION.encode()), (b"content-type", b"application/grpc"),
             (b"te", b"trailers")]
MALFORMED_HEADS = {
    "upper-case name": GRPC_HEAD + [(b"X-Trace", b"1")],
    "connection-specific header": GRPC_HEAD + [(b"connection", b"close")],
    "te other than trailers": GRPC_HEAD[:5] + [(b"te", b"gzip")],
    "no :path": GRPC_HEAD[:3] + GRPC_HEAD[4:],
    "pseudo-header after a field": GRPC_HEAD[:3] + GRPC_HEAD[4:] + GRPC_HEAD[3:4],
    "NUL in a value": GRPC_HEAD + [(b"x-trace", b"a\x00b")],
}


def raw_headers_call(client: RawClient, headers: list[tuple[bytes, bytes]]) -> int:
    """A request with exactly these header fields (h2's client checks off,
    so that it sends what a broken peer would), a Version body after them."""
    client.h2.config.validate_outbound_headers = False
    client.h2.config.normalize_outbound_headers = False
    sid = client.h2.get_next_available_stream_id()
    client.answers[sid] = Answer()
    client.h2.send_headers(sid, headers)
    client.h2.send_data(sid, version_body("raw"), end_stream=True)
    client.flush()
    return sid


@pytest.mark.parametrize("headers", MALFORMED_HEADS.values(), ids=MALFORMED_HEADS.keys())
def test_malformed_request_resets_its_stream_only(served, headers):
    """A malformed request is a stream error (RFC 9113 8.1.1): RST_STREAM
    PROTOCOL_ERROR, no handler runs, and a call running beside it on the
    same connection and the calls after it are answered."""
    _, path, handlers = served
    with RawClient(path) as client:
        running = client.start(EVENTS, grpc_message(b""))
        client.read(lambda: len(client.answers[running].data) > 0)
        bad = raw_headers_call(client, headers)
        client.read(lambda: client.answers[bad].ended)
        assert client.answers[bad].reset == ErrorCodes.PROTOCOL_ERROR
        assert client.answers[bad].headers == {}
        assert not client.answers[running].ended
        answer = client.call(VERSION, version_body("after"))
        assert answer.code == StatusCode.OK
        assert handlers.seen_remaining == [None]      # only the good Version ran


def test_raw_grpc_head_with_odd_but_legal_fields_is_answered(served):
    """What h2 accepts the server accepts: te in upper case, host equal to
    :authority, a value that is not UTF-8, an empty value."""
    _, path, _ = served
    head = GRPC_HEAD[:5] + [(b"te", b"Trailers"), (b"host", b"localhost"),
                            (b"x-trace", b"\xff\xfe"), (b"x-empty", b"")]
    with RawClient(path) as client:
        sid = raw_headers_call(client, head)
        client.read(lambda: client.answers[sid].ended)
        assert client.answers[sid].code == StatusCode.OK
        [message] = client.answers[sid].messages()
        assert api_pb2.VersionResponse.FromString(message).version == "raw"


def cri_workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("cri-") and t.name[4:].isdigit()]


def test_workers_are_reused_bounded_and_leave_at_stop(tmp_path):
    """Calls run on worker threads made as needed, never more than
    max_workers, kept between calls, and gone after stop()."""
    handlers = Handlers()
    server = Server([edge.service_handler("RuntimeService", handlers.rpcs())], max_workers=3,
                    max_send=MAX_SEND, max_recv=MAX_RECV)
    path = str(tmp_path / "cri.sock")
    server.bind(path)
    server.start()
    before = set(cri_workers())
    try:
        with grpc.insecure_channel(f"unix:{path}") as channel:
            stub = api_pb2_grpc.RuntimeServiceStub(channel)
            for i in range(40):
                assert stub.Version(api_pb2.VersionRequest(version=str(i))).version == str(i)
            serial = set(cri_workers()) - before
            assert 1 <= len(serial) <= 3
            handlers.slow_seconds = 0.05
            with ThreadPoolExecutor(12) as pool:
                versions = list(pool.map(
                    lambda i: stub.Version(api_pb2.VersionRequest(version=str(i))).version,
                    range(36)))
            assert versions == [str(i) for i in range(36)]
            assert len(set(cri_workers()) - before) == 3
    finally:
        server.stop(0)
    deadline = time.monotonic() + 5
    while set(cri_workers()) - before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert set(cri_workers()) - before == set()
