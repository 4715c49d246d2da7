"""The daemon's gRPC server (cri/wire over h2) from outside, through its real
socket: raw HTTP/2 frames for what grpcio's client never sends, grpcio's
client for many concurrent calls.  tests/unit/test_wire_server.py has the
same checks on an in-process server with fake handlers."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from h2.errors import ErrorCodes
from h2.events import PingAckReceived
from h2.settings import SettingCodes

from crio_native._proto import api_pb2
from crio_native.cri.wire import StatusCode
from tests.h2client import RawClient, grpc_message

pytestmark = pytest.mark.root

RUNTIME = "/runtime.v1.RuntimeService"
MIB = 1024 * 1024


def version_body() -> bytes:
    return grpc_message(api_pb2.VersionRequest(version="0.1.0").SerializeToString())


def test_raw_http2_calls(daemon):
    with RawClient(str(daemon.socket)) as client:
        client.h2.ping(b"kubelet!")
        client.flush()
        client.read(lambda: any(isinstance(e, PingAckReceived) for e in client.events))

        answer = client.call(f"{RUNTIME}/Version", version_body())
        assert (answer.headers[":status"], answer.code) == ("200", StatusCode.OK)
        assert api_pb2.VersionResponse.FromString(answer.messages()[0]).runtime_name == \
            "crio-native"

        zipped = client.call(f"{RUNTIME}/PodSandboxStatus", grpc_message(
            api_pb2.PodSandboxStatusRequest(pod_sandbox_id="zipped-id").SerializeToString(),
            compress=True), extra=(("grpc-encoding", "gzip"),))
        assert zipped.code == StatusCode.NOT_FOUND
        assert "zipped-id" in zipped.headers["grpc-message"]

        unknown = client.call(f"{RUNTIME}/NoSuchMethod")
        assert unknown.trailers_only and unknown.code == StatusCode.UNIMPLEMENTED

        json_body = client.call(f"{RUNTIME}/Version", version_body(),
                                content_type="application/json")
        assert json_body.headers[":status"] == "415"

        missing = client.call(f"{RUNTIME}/PodSandboxStatus", grpc_message(
            api_pb2.PodSandboxStatusRequest(pod_sandbox_id="nope").SerializeToString()))
        assert missing.trailers_only and missing.code == StatusCode.NOT_FOUND
        assert "nope" in missing.headers["grpc-message"]


def test_answer_waits_for_a_closed_window(daemon):
    """Initial window 0: the answer's bytes come only as the client grants
    them, never more than granted, and complete."""
    grant = 7
    with RawClient(str(daemon.socket), settings={SettingCodes.INITIAL_WINDOW_SIZE: 0},
                   auto_ack=False) as client:
        sid = client.start(f"{RUNTIME}/Version", version_body())
        client.read(lambda: bool(client.answers[sid].headers))
        answer = client.answers[sid]
        assert not answer.data
        while not answer.ended:
            before = len(answer.data)
            client.h2.increment_flow_control_window(grant, sid)
            client.flush()
            client.read(lambda: len(answer.data) - before >= grant or answer.ended)
            assert len(answer.data) - before <= grant
        assert max(answer.data_frames) <= grant and len(answer.data_frames) > 3
        assert answer.code == StatusCode.OK
        assert api_pb2.VersionResponse.FromString(answer.messages()[0]).runtime_name == \
            "crio-native"


def test_large_answer_waits_for_the_peer_windows(daemon):
    """A verbose Status (the whole configuration as JSON: kilobytes) to a
    client with a 0-byte stream window that grants 512 bytes of stream and
    connection window at a time: the daemon's call blocks on the window,
    never sends past it, and the answer arrives whole."""
    grant = 512
    expected = daemon.runtime.Status(api_pb2.StatusRequest(verbose=True))
    with RawClient(str(daemon.socket), settings={SettingCodes.INITIAL_WINDOW_SIZE: 0},
                   auto_ack=False) as client:
        sid = client.start(f"{RUNTIME}/Status", grpc_message(
            api_pb2.StatusRequest(verbose=True).SerializeToString()))
        client.read(lambda: bool(client.answers[sid].headers))
        answer = client.answers[sid]
        grants = 0
        while not answer.ended:
            before = len(answer.data)
            client.h2.increment_flow_control_window(grant, sid)
            client.h2.increment_flow_control_window(grant)
            client.flush()
            grants += 1
            client.read(lambda: len(answer.data) - before >= grant or answer.ended)
            assert len(answer.data) - before <= grant
        assert answer.code == StatusCode.OK
        got = api_pb2.StatusResponse.FromString(answer.messages()[0])
        assert got.info.keys() == expected.info.keys() and got.status == expected.status
        assert grants > 4, f"the answer was only {len(answer.data)} bytes"


def test_reset_event_streams_free_their_workers(daemon):
    """More GetContainerEvents streams than the server has workers, reset by
    the client: each ends (is_active turns False, the subscription's
    callback runs), so later calls are still answered."""
    streams = 80
    with RawClient(str(daemon.socket)) as client:
        sids = [client.start(f"{RUNTIME}/GetContainerEvents", grpc_message(b""))
                for _ in range(streams)]
        client.quiet_for(0.5)
        assert not any(client.answers[s].ended for s in sids)
        for sid in sids:
            client.h2.reset_stream(sid, ErrorCodes.CANCEL)
        client.flush()
    response = daemon.runtime.Version(api_pb2.VersionRequest(), timeout=10)
    assert response.runtime_name == "crio-native"
    events = daemon.runtime.GetContainerEvents(api_pb2.GetEventsRequest(), timeout=2)
    with pytest.raises(grpc.RpcError) as info:
        next(events)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_message_size_limits(daemon_factory):
    d = daemon_factory()
    (d.base / "crio-native.conf.d").mkdir(parents=True)
    (d.base / "crio-native.conf.d" / "50-limits.conf").write_text(
        f"[api]\ngrpc_max_recv_msg_size = {16 * MIB}\n")
    d.start()
    with RawClient(str(d.socket)) as client:
        size = 16 * MIB + 1
        sid = client.start(f"{RUNTIME}/Version", b"\0" + size.to_bytes(4, "big"), end=False)
        client.read(lambda: client.answers[sid].ended)
        assert client.answers[sid].code == StatusCode.RESOURCE_EXHAUSTED
        assert client.answers[sid].headers["grpc-message"] == (
            f"Received message larger than max ({size} vs. {16 * MIB})")
    # a real one, whole, through grpcio: the server reads and acknowledges
    # 17 MiB of DATA before it can tell
    with pytest.raises(grpc.RpcError) as info:
        d.runtime.Version(api_pb2.VersionRequest(version="v" * (17 * MIB)), timeout=60)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in info.value.details()
    # just under the limit passes
    selector = {"k": "v" * (15 * MIB)}
    assert not d.runtime.ListContainers(api_pb2.ListContainersRequest(
        filter=api_pb2.ContainerFilter(label_selector=selector)), timeout=60).containers


def test_many_concurrent_grpcio_calls(daemon):
    runtime, images = daemon.runtime, daemon.images

    def one(i: int) -> str:
        kind = i % 4
        if kind == 0:
            return runtime.Version(api_pb2.VersionRequest(), timeout=60).runtime_name
        if kind == 1:
            return str(len(runtime.ListContainers(api_pb2.ListContainersRequest(),
                                                  timeout=60).containers))
        if kind == 2:
            return str(len(images.ListImages(api_pb2.ListImagesRequest(), timeout=60).images))
        with pytest.raises(grpc.RpcError) as info:
            runtime.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=f"n{i}"),
                                     timeout=60)
        # each answer is its own call's (no cross-talk between streams)
        return f"{info.value.code().name} {repr(f'n{i}') in info.value.details()}"

    with ThreadPoolExecutor(48) as pool:
        answers = list(pool.map(one, range(600)))
    assert answers == [["crio-native", "0", "0", "NOT_FOUND True"][i % 4] for i in range(600)]


def test_daemon_does_not_load_grpc(daemon):
    """A daemon that has answered calls maps no grpcio extension (the
    readiness probe under systemd is h2 too: tests/e2e/test_daemon_notify.py)."""
    daemon.runtime.Version(api_pb2.VersionRequest())
    maps = open(f"/proc/{daemon.proc.pid}/maps").read()
    assert "cygrpc" not in maps and "/grpc/" not in maps
