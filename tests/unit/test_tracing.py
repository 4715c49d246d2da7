"""Tracing: the [tracing] section, "off costs nothing" (OpenTelemetry is not
even imported), and the spans of the gRPC edge sent to a real OTLP receiver
on loopback by the real SDK exporter (no root: an in-process server)."""
from __future__ import annotations

import json
import subprocess
import sys

import grpc
import pytest

from crio_native import failpoints, tracing
from crio_native._proto import api_pb2, api_pb2_grpc
from crio_native.config import load_config
from crio_native.config.sections import TracingConfig
from crio_native.cri import edge
from crio_native.cri.wire import Server
from crio_native.errors import ConfigError, NotFound
from tests.fixtures.otlp import OtlpReceiver


def load(tmp_path, text):
    (tmp_path / "d").mkdir(exist_ok=True)
    (tmp_path / "main.conf").write_text(text)
    return load_config(str(tmp_path / "main.conf"), str(tmp_path / "d")).config


def test_defaults_are_crio_s(tmp_path):
    cfg = load(tmp_path, "").tracing
    assert cfg == TracingConfig(enable_tracing=False, tracing_endpoint="127.0.0.1:4317",
                                tracing_sampling_rate_per_million=0)


def test_keys_load(tmp_path):
    cfg = load(tmp_path, '[tracing]\nenable_tracing = true\ntracing_endpoint = "otel:4318"\n'
                         "tracing_sampling_rate_per_million = 1000000\n").tracing
    assert (cfg.enable_tracing, cfg.tracing_endpoint,
            cfg.tracing_sampling_rate_per_million) == (True, "otel:4318", 1_000_000)


@pytest.mark.parametrize("text,key", [
    ('tracing_endpoint = "localhost"', "tracing.tracing_endpoint"),
    ('tracing_endpoint = ":4317"', "tracing.tracing_endpoint"),
    ('tracing_endpoint = "h:99999"', "tracing.tracing_endpoint"),
    ("tracing_sampling_rate_per_million = 1000001", "tracing.tracing_sampling_rate_per_million"),
    ("tracing_sampling_rate_per_million = -1", "tracing.tracing_sampling_rate_per_million"),
    ('enable_tracing = "yes"', "tracing.enable_tracing"),
])
def test_bad_values_name_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, f"[tracing]\n{text}\n")
    assert info.value.key == key


OFF_PROBE = """
import json, sys
from crio_native import daemon, tracing
from crio_native.cri import edge
from crio_native.cri.wire import Server
from crio_native.image import pull
from crio_native.network import cni
from crio_native.config.sections import TracingConfig
edge.service_handler("RuntimeService", {})
with tracing.span("x"):
    pass
assert tracing.start(TracingConfig()) is None
print(json.dumps(sorted(m for m in sys.modules if m.startswith("opentelemetry"))))
"""


def test_off_imports_no_opentelemetry():
    out = subprocess.run([sys.executable, "-c", OFF_PROBE], capture_output=True, text=True,
                         check=True, timeout=120)
    assert json.loads(out.stdout) == []


def test_off_leaves_the_edge_handlers_unwrapped():
    assert tracing.current is None
    behavior = edge.service_handler("RuntimeService", {}).methods["Version"].behavior
    assert behavior.__qualname__ == "_unary.<locals>.behavior"


# ---- spans through a real exporter to a real receiver ------------------------

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
STEPS = failpoints.CATALOGUE["sandbox.run"][:3]


def fake_run(request, context):
    for name in STEPS:
        with tracing.span("cni.add", **{"cni.network": "n"}) if name == STEPS[1] else _null():
            failpoints.hit(name)
    return api_pb2.RunPodSandboxResponse(pod_sandbox_id="p" * 64)


def fake_events(request, context):
    yield api_pb2.ContainerEventResponse(container_id="c1")


def fake_status(request, context):
    raise NotFound(f"pod sandbox {request.pod_sandbox_id} not found")


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


@pytest.fixture
def traced_server(tmp_path):
    receiver = OtlpReceiver().start()
    tracing.start(TracingConfig(enable_tracing=True, tracing_endpoint=receiver.endpoint))
    server = Server([edge.service_handler(
        "RuntimeService", {"RunPodSandbox": fake_run, "PodSandboxStatus": fake_status,
                           "GetContainerEvents": fake_events})],
        max_workers=2, max_send=1 << 24, max_recv=1 << 24)
    try:
        server.bind(str(tmp_path / "cri.sock"))
        server.start()
        with grpc.insecure_channel(f"unix:{tmp_path / 'cri.sock'}") as channel:
            yield receiver, api_pb2_grpc.RuntimeServiceStub(channel)
    finally:
        server.stop(0)
        tracing.stop()      # flushes the batch to the receiver
        receiver.stop()


def test_edge_spans_steps_and_kubelet_parent(traced_server):
    receiver, stub = traced_server
    sampled = f"00-{TRACE_ID}-{PARENT_ID}-01"
    request = api_pb2.RunPodSandboxRequest(config=api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name="web", namespace="ns", uid="u1")))
    stub.RunPodSandbox(request, metadata=[("traceparent", sampled)])
    with pytest.raises(grpc.RpcError):
        stub.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id="nope"),
                              metadata=[("traceparent", sampled)])
    # sampling rate 0: a call with no sampled parent is not recorded
    with pytest.raises(grpc.RpcError):
        stub.Version(api_pb2.VersionRequest())
    events = stub.GetContainerEvents(api_pb2.GetEventsRequest(),
                                     metadata=[("traceparent", sampled)])
    assert [e.container_id for e in events] == ["c1"]
    tracing.current.provider.force_flush()
    spans = receiver.wait_for(lambda s: len(s) >= 3 + len(STEPS) + 1)
    by_name = {s.name: s for s in spans}
    run = by_name["runtime.v1.RuntimeService/RunPodSandbox"]
    assert (run.trace_id, run.parent_span_id) == (TRACE_ID, PARENT_ID)
    assert run.service == "crio-native"
    assert run.attributes["k8s.pod.name"] == "web"
    assert run.attributes["crio_native.pod_sandbox_id"] == "p" * 64
    assert run.attributes["rpc.grpc.status_code"] == 0
    children = sorted((s for s in spans if s.parent_span_id == run.span_id),
                      key=lambda s: (s.start_ns, s.name))
    steps = [s for s in children if s.name in STEPS]
    assert [s.name for s in steps] == list(STEPS)
    assert steps[0].start_ns >= run.start_ns and steps[-1].end_ns <= run.end_ns
    assert all(a.end_ns == b.start_ns for a, b in zip(steps, steps[1:]))
    cni_add = by_name["cni.add"]
    assert cni_add.parent_span_id == run.span_id and cni_add.trace_id == TRACE_ID
    status = by_name["runtime.v1.RuntimeService/PodSandboxStatus"]
    assert status.attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert status.status_code == 2
    assert status.attributes["crio_native.pod_sandbox_id"] == "nope"
    assert "runtime.v1.RuntimeService/Version" not in by_name
    stream = by_name["runtime.v1.RuntimeService/GetContainerEvents"]
    assert (stream.parent_span_id, stream.attributes["rpc.grpc.status_code"]) == (PARENT_ID, 0)
