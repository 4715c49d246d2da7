"""The daemon's gRPC server (cri/wire) against grpc-go, the kubelet's gRPC
library: tests/interop/grpcgo dials the socket as the kubelet's CRI client
(k8s.io/cri-client) does (context dialer, insecure, a 16 MiB receive limit,
no keepalive, deadlines as contexts) and each scenario's answers are
compared with what grpcio's client gets from the same daemon.  The client counts the HTTP/2 frames on its
socket, so the tests also see what grpc-go put on the wire (BDP PINGs,
WINDOW_UPDATEs, RST_STREAM on cancel) and what the daemon sent back (PING
acks, GOAWAY)."""
from __future__ import annotations

import signal
import time
from pathlib import Path

import grpc
import pytest

from crio_native._proto import api_pb2, api_pb2_grpc
from tests.e2e import cni, grpcgo
from tests.e2e.grpcgo import call
from tests.e2e.test_containers import (busybox_image, cdaemon, container_config,  # noqa: F401
                                       create, run_pod)
from tests.e2e.test_pod_sandbox import pod_config, remove, write_plugin
from tests.e2e.test_stalled_requests import SLOW_ADD
from tests.fixtures.registry import registry  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.requires_grpcgo]

IMAGES = "/runtime.v1.ImageService"
MIB = 1024 * 1024


@pytest.fixture(scope="session")
def go_client() -> Path:
    return grpcgo.build()


def grpcio_status(fn, request) -> tuple[str, str, bytes]:
    """(code name, message, response bytes) of a grpcio call."""
    try:
        response = fn(request, timeout=30)
    except grpc.RpcError as e:
        return e.code().name, e.details() or "", b""
    return "OK", "", response.SerializeToString()


@pytest.mark.parametrize("authority,subtype", [
    (None, None),               # grpc-go 1.33: the socket path as :authority
    ("localhost", None),        # what newer kubelets set (grpc.WithAuthority)
    ("localhost", "proto"),     # content-type application/grpc+proto
])
def test_unary_answers_match_grpcio(daemon, go_client, authority, subtype):
    runtime, images = daemon.runtime, daemon.images
    cases = [
        ("Version", api_pb2.VersionRequest(version="v1"), runtime.Version,
         api_pb2.VersionResponse),
        ("ListContainers", api_pb2.ListContainersRequest(), runtime.ListContainers,
         api_pb2.ListContainersResponse),
        ("PodSandboxStatus", api_pb2.PodSandboxStatusRequest(pod_sandbox_id="no-such-pod"),
         runtime.PodSandboxStatus, None),
        # a percent-encoded grpc-message (UTF-8 beyond ASCII, and a '%')
        ("PodSandboxStatus", api_pb2.PodSandboxStatusRequest(pod_sandbox_id="pöd-✓-100%"),
         runtime.PodSandboxStatus, None),
        ("ContainerStatus", api_pb2.ContainerStatusRequest(), runtime.ContainerStatus, None),
        ("ExecSync", api_pb2.ExecSyncRequest(container_id="x", cmd=["true"], timeout=-1),
         runtime.ExecSync, None),
        (f"{IMAGES}/ListImages", api_pb2.ListImagesRequest(), images.ListImages,
         api_pb2.ListImagesResponse),
        (f"{IMAGES}/ImageStatus", api_pb2.ImageStatusRequest(
            image=api_pb2.ImageSpec(image="no/such:image")), images.ImageStatus,
         api_pb2.ImageStatusResponse),
    ]
    result = grpcgo.run(go_client, daemon.socket,
                        [call(m, req, timeout_ms=30000) for m, req, _, _ in cases]
                        + [call("NoSuchMethod", timeout_ms=30000),
                           call("/runtime.v1.NoSuchService/Version", timeout_ms=30000)],
                        authority=authority, subtype=subtype)
    for i, (method, request, fn, response_type) in enumerate(cases):
        code, message, response = grpcio_status(fn, request)
        assert result.status(i) == (code, message), method
        if response_type is not None:
            assert response_type.FromString(result.response(i)) == \
                response_type.FromString(response), method
    assert "pöd-✓-100%" in result.status(3)[1]
    n = len(cases)
    assert result.status(n)[0] == "UNIMPLEMENTED"
    assert result.status(n + 1)[0] == "UNIMPLEMENTED"
    # one connection, no stream refused or reset by either side
    assert result.frames_in.get("GOAWAY", 0) == 0
    assert result.frames_in.get("RST_STREAM", 0) == 0


def test_many_concurrent_calls_on_one_connection(daemon, go_client):
    """600 calls, 64 at a time, on the one HTTP/2 connection grpc-go keeps:
    each answer is its own call's."""
    calls = []
    for i in range(600):
        if i % 3 == 0:
            calls.append(call("Version", api_pb2.VersionRequest(), timeout_ms=60000))
        elif i % 3 == 1:
            calls.append(call("PodSandboxStatus", api_pb2.PodSandboxStatusRequest(
                pod_sandbox_id=f"pod-{i}"), timeout_ms=60000))
        else:
            calls.append(call(f"{IMAGES}/ImageStatus", api_pb2.ImageStatusRequest(
                image=api_pb2.ImageSpec(image=f"img/n{i}:1")), timeout_ms=60000))
    result = grpcgo.run(go_client, daemon.socket, calls, concurrency=64)
    for i in range(600):
        code, message = result.status(i)
        if i % 3 == 0:
            assert code == "OK"
            assert api_pb2.VersionResponse.FromString(result.response(i)).runtime_name == \
                "crio-native"
        elif i % 3 == 1:
            assert code == "NOT_FOUND" and f"pod-{i}" in message, (i, code, message)
        else:
            assert code == "OK"
            assert not api_pb2.ImageStatusResponse.FromString(result.response(i)).image.id
    assert result.frames_out.get("HEADERS") == 600
    assert result.frames_in.get("GOAWAY", 0) == 0


def test_large_requests(daemon, go_client):
    """Requests of 15 and 17 MiB (label selectors) from grpc-go, which sends
    only as the daemon's windows allow (the kubelet sets no send limit; the
    daemon's receive limit is 80 MiB): the daemon acknowledges what it
    reads and answers both as grpcio gets them answered."""
    requests = [api_pb2.ListContainersRequest(filter=api_pb2.ContainerFilter(
        label_selector={"k": "v" * (size * MIB)})) for size in (15, 17)]
    result = grpcgo.run(go_client, daemon.socket, [
        call("ListContainers", requests[0], timeout_ms=60000),
        call("ListContainers", requests[1], timeout_ms=60000, after=0)])
    channel = grpc.insecure_channel(f"unix:{daemon.socket}", options=[
        ("grpc.max_send_message_length", 32 * MIB)])
    try:
        stub = api_pb2_grpc.RuntimeServiceStub(channel)
        for i, request in enumerate(requests):
            assert result.status(i) == ("OK", "")
            assert api_pb2.ListContainersResponse.FromString(result.response(i)) == \
                stub.ListContainers(request, timeout=60)
    finally:
        channel.close()
    assert result.frames_in.get("WINDOW_UPDATE", 0) > 100   # 32 MiB through 64 KiB windows


def test_cancelled_event_streams_free_their_workers(daemon, go_client):
    """80 GetContainerEvents streams (more than the daemon's 64 workers)
    cancelled through their contexts, as the kubelet's Evented PLEG does when
    it stops watching: grpc-go resets each (RST_STREAM), the daemon ends
    their calls, and a Version after them on the same connection is answered."""
    streams = 80
    calls = [call("GetContainerEvents", api_pb2.GetEventsRequest(), stream=True,
                  cancel_after_ms=1500) for _ in range(streams)]
    calls.append(call("Version", api_pb2.VersionRequest(), timeout_ms=10000,
                      after=streams - 1))
    result = grpcgo.run(go_client, daemon.socket, calls)
    assert {result.status(i)[0] for i in range(streams)} == {"CANCELLED"}
    assert result.status(streams) == ("OK", "")
    assert result.frames_out.get("RST_STREAM", 0) >= streams
    # grpcio's stream, for comparison, ends the same way
    events = daemon.runtime.GetContainerEvents(api_pb2.GetEventsRequest(), timeout=2)
    with pytest.raises(grpc.RpcError) as info:
        next(events)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def running_container(d, name="pod") -> tuple[str, Path]:
    """(id, CRI log file) of a started `sleep 1000` in a new pod."""
    pod = run_pod(d, name)
    cid = create(d, pod, container_config(d))
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=60)
    return cid, d.pod_logs / name / "c" / "0.log"


def exec_sync(cid: str, script: str) -> api_pb2.ExecSyncRequest:
    return api_pb2.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", script])


def test_exec_sync_answers_flow_control_cancel_and_deadline(cdaemon, go_client):
    d = cdaemon
    cid, _ = running_container(d)
    big = "".join(f"{i}\n" for i in range(1, 2_000_001)).encode()    # 14.9 MB
    assert 15 * 10**6 > len(big) > 14 * 10**6
    calls = [
        # near the kubelet's 16 MiB limit: grpc-go's 64 KiB start window grows
        # by its BDP estimate (PINGs beside the DATA) and WINDOW_UPDATEs
        call("ExecSync", exec_sync(cid, "seq 1 2000000"), timeout_ms=120000, quiet=True),
        # past it (ExecSync keeps up to 16 MiB of stdout): grpc-go refuses
        # the message from its prefix and resets the stream mid-answer
        call("ExecSync", exec_sync(cid, "seq 1 2400000"), timeout_ms=120000, after=0),
        # cancelled mid-flight (RST_STREAM CANCEL) and past its deadline
        call("ExecSync", exec_sync(cid, "sleep 5"), cancel_after_ms=500, after=1),
        call("ExecSync", exec_sync(cid, "sleep 5"), timeout_ms=1000, after=1),
        # the connection still serves after all that
        call("Version", api_pb2.VersionRequest(), timeout_ms=10000, after=3),
    ]
    result = grpcgo.run(go_client, d.socket, calls)
    assert result.status(0) == ("OK", "")
    assert result.ends[0]["size"] > 14 * 10**6
    # the bytes themselves, from a second run that prints them
    again = grpcgo.run(go_client, d.socket, [calls[0] | {"quiet": False}])
    answer = api_pb2.ExecSyncResponse.FromString(again.response(0))
    assert (answer.exit_code, answer.stderr, answer.stdout == big) == (0, b"", True)
    # grpcio with the kubelet's limits gets the same answer
    channel = grpc.insecure_channel(f"unix:{d.socket}", options=[
        ("grpc.max_receive_message_length", 16 * MIB),
        ("grpc.max_send_message_length", 16 * MIB)])
    try:
        stub = api_pb2_grpc.RuntimeServiceStub(channel)
        assert stub.ExecSync(exec_sync(cid, "seq 1 2000000"), timeout=120) == answer
        with pytest.raises(grpc.RpcError) as info:
            stub.ExecSync(exec_sync(cid, "seq 1 2400000"), timeout=120)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        channel.close()
    code, message = result.status(1)
    assert code == "RESOURCE_EXHAUSTED" and "larger than max" in message, message
    assert result.status(2)[0] == "CANCELLED" and result.ends[2]["ms"] < 2500
    assert result.status(3)[0] == "DEADLINE_EXCEEDED" and result.ends[3]["ms"] < 2500
    assert result.status(4) == ("OK", "")
    out, got = result.frames_out, result.frames_in
    # every BDP PING answered but maybe the last, in flight at the close
    assert out.get("PING", 0) > 0 and got.get("PING_ACK", 0) >= out["PING"] - 1, (out, got)
    assert out.get("WINDOW_UPDATE", 0) > 0, out
    assert out.get("RST_STREAM", 0) >= 3, out      # too large, cancelled, deadline
    assert got.get("GOAWAY", 0) == 0


def test_container_events_stream_matches_grpcio(cdaemon, go_client):
    d = cdaemon
    pod = run_pod(d)
    go = grpcgo.Run(go_client, d.socket, [call("GetContainerEvents", api_pb2.GetEventsRequest(),
                                               stream=True, max_messages=4)])
    try:
        go.wait_for(lambda item: item.get("ready"))
        stream = d.runtime.GetContainerEvents(api_pb2.GetEventsRequest())
        cid = create(d, pod, container_config(d, command=["true"]))
        d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
        grpcio_events = [next(stream)]
        grpcio_events += [next(stream) for _ in range(2)]   # started, stopped
        d.runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid))
        grpcio_events.append(next(stream))
        stream.cancel()
        result = go.finish()
    finally:
        go.close()
    go_events = [api_pb2.ContainerEventResponse.FromString(m) for m in result.messages[0]]
    assert [(e.container_id, e.container_event_type) for e in go_events] == [
        (e.container_id, e.container_event_type) for e in grpcio_events]
    assert [e.container_event_type for e in go_events] == [
        api_pb2.CONTAINER_CREATED_EVENT, api_pb2.CONTAINER_STARTED_EVENT,
        api_pb2.CONTAINER_STOPPED_EVENT, api_pb2.CONTAINER_DELETED_EVENT]
    assert go_events[2] == grpcio_events[2]
    assert result.status(0)[0] == "CANCELLED"      # it stopped reading after 4


def wait_for_text(path: Path, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and text in path.read_text()):
        assert time.monotonic() < deadline, f"{text!r} never reached {path}"
        time.sleep(0.05)


def test_graceful_stop_during_a_stream_and_a_call(cdaemon, go_client):
    """SIGTERM while grpc-go has an event stream and an ExecSync open: the
    daemon's GOAWAY lets the ExecSync finish with its answer, the stream
    ends as grpcio's does, and a call after it is UNAVAILABLE (nothing
    listens any more), not a hang."""
    d = cdaemon
    cid, log = running_container(d)
    go = grpcgo.Run(go_client, d.socket, [
        call("GetContainerEvents", api_pb2.GetEventsRequest(), stream=True),
        call("ExecSync", exec_sync(cid, "echo started >/proc/1/fd/1; sleep 2; echo done"),
             timeout_ms=30000),
        # after the GOAWAY: grpc-go dials again, and nothing listens
        call("Version", api_pb2.VersionRequest(), timeout_ms=5000, after=1),
    ])
    try:
        go.wait_for(lambda item: item.get("ready"))
        stream = d.runtime.GetContainerEvents(api_pb2.GetEventsRequest())
        # answered after the stream's HEADERS on the same connection: the
        # daemon has taken the stream before its GOAWAY
        d.runtime.Version(api_pb2.VersionRequest(), timeout=10)
        wait_for_text(log, "started")
        d.proc.send_signal(signal.SIGTERM)
        with pytest.raises(StopIteration):
            next(stream)
        grpcio_end = stream.code().name
        result = go.finish()
        assert d.proc.wait(30) == 0
    finally:
        go.close()
        # the containers outlived the daemon: a new one removes them
        d.stop()
        d.start()
    answer = api_pb2.ExecSyncResponse.FromString(result.response(1))
    assert (result.status(1), answer.stdout, answer.exit_code) == (("OK", ""), b"done\n", 0)
    assert result.status(0)[0] == grpcio_end == "OK"
    assert result.status(2)[0] == "UNAVAILABLE"
    assert result.frames_in.get("GOAWAY", 0) >= 1


def test_daemon_answers_before_grpc_go_deadline(daemon_factory, go_client, tmp_path):
    """grpc-go's grpc-timeout (its own encoding: the deadline in the finest
    unit that fits 8 digits, "3999971u") becomes the call's time_remaining():
    a retried RunPodSandbox whose first call is stuck in a slow CNI plugin is
    answered DEADLINE_EXCEEDED by the daemon, with its message, before
    grpc-go's own deadline fires (test_stalled_requests.py does it with grpcio)."""
    plugins, marker = tmp_path / "plugins", tmp_path / "add-started"
    write_plugin(plugins, "crn-slow-add",
                 SLOW_ADD.replace("{marker}", str(marker)).replace("{seconds}", "6"))
    d = daemon_factory("--cni-plugin-dir", cni.PLUGIN_DIR, "--cni-plugin-dir", str(plugins))
    cni.write_network(d.network_dir, tmp_path / "ipam", extra_plugins=[{"type": "crn-slow-add"}])
    d.start()
    request = api_pb2.RunPodSandboxRequest(config=pod_config(name="stuck", uid="uid-stuck"))
    go = grpcgo.Run(go_client, d.socket, [call("RunPodSandbox", request, timeout_ms=60000),
                                          call("RunPodSandbox", request, timeout_ms=30000,
                                               after=0)])
    try:
        # the retry, on a second connection once the plugin runs
        wait_for_file(marker)
        retry = grpcgo.run(go_client, d.socket, [call("RunPodSandbox", request,
                                                      timeout_ms=4000)])
        first = go.finish()
        pod_id = api_pb2.RunPodSandboxResponse.FromString(first.response(0)).pod_sandbox_id
        remove(d, pod_id)
    finally:
        go.close()
        d.stop()
        cni.delete_bridge()
    code, message = retry.status(0)
    assert code == "DEADLINE_EXCEEDED"
    assert "still being created by an earlier request" in message, message
    assert retry.ends[0]["ms"] < 3900      # the daemon's answer, not grpc-go's timer
    # the second call of the first client (the same request, once the pod is
    # made) gets the pod, as the kubelet's retry would
    assert first.status(1) == ("OK", "")
    assert api_pb2.RunPodSandboxResponse.FromString(first.response(1)).pod_sandbox_id == pod_id


def wait_for_file(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
