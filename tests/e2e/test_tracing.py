"""Tracing over real gRPC: the daemon exports OTLP to a receiver on loopback
(the opentelemetry-proto TraceService) while a pod with a CNI network and a
container start; the spans, their steps, parents and the kubelet's
traceparent are checked as received."""
from __future__ import annotations

import pytest

from crio_native._proto import api_pb2
from crio_native.failpoints import CATALOGUE
from tests.e2e import cni
from tests.e2e.test_containers import busybox_image, container_config, create  # noqa: F401
from tests.fixtures.otlp import OtlpReceiver
from tests.fixtures.registry import registry  # noqa: F401

pytestmark = pytest.mark.root

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
KUBELET_SPAN = "b7ad6b7169203331"
RPC = "runtime.v1.RuntimeService/"


@pytest.fixture
def receiver():
    r = OtlpReceiver().start()
    yield r
    r.stop()


@pytest.fixture
def traced_daemon(daemon_factory, receiver, busybox_image, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")   # the SDK's batch delay, ms
    d = daemon_factory("--cni-plugin-dir", cni.PLUGIN_DIR)
    cni.write_network(d.network_dir, tmp_path / "ipam")
    (d.base / "crio-native.conf.d").mkdir(parents=True)
    (d.base / "crio-native.conf.d" / "50-tracing.conf").write_text(
        f'[tracing]\nenable_tracing = true\ntracing_endpoint = "{receiver.endpoint}"\n'
        "tracing_sampling_rate_per_million = 1000000\n")
    d.start()
    d.image_name = busybox_image[0]
    d.pod_logs = tmp_path / "pod-logs"
    yield d
    for pod in d.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items:
        d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod.id))
    d.stop()
    cni.delete_bridge()


def children(spans, parent):
    return sorted((s for s in spans if s.parent_span_id == parent.span_id),
                  key=lambda s: (s.start_ns, s.end_ns))


def only(spans, name):
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def test_pod_start_spans(traced_daemon, receiver):
    d = traced_daemon
    d.images.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=d.image_name)))
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name="traced", namespace="default", uid="uid-t"),
        hostname="traced", log_directory=str(d.pod_logs / "traced"))
    config.linux.security_context.namespace_options.pid = api_pb2.CONTAINER
    traceparent = f"00-{TRACE_ID}-{KUBELET_SPAN}-01"
    pod_id = d.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=config), timeout=60,
                                     metadata=[("traceparent", traceparent)]).pod_sandbox_id
    cid = create(d, pod_id, container_config(d), config)
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=60)

    spans = receiver.wait_for(lambda got: any(s.name == RPC + "StartContainer" for s in got))
    assert {s.service for s in spans} == {"crio-native"}

    pull = only(spans, "runtime.v1.ImageService/PullImage")
    image_pull = only(children(spans, pull), "image.pull")
    assert [s.name for s in children(spans, image_pull)] == ["image.layer"]

    run = only(spans, RPC + "RunPodSandbox")
    assert (run.trace_id, run.parent_span_id) == (TRACE_ID, KUBELET_SPAN)
    assert run.attributes["crio_native.pod_sandbox_id"] == pod_id
    assert run.attributes["k8s.pod.name"] == "traced"
    assert run.attributes["rpc.grpc.status_code"] == 0
    under_run = children(spans, run)
    steps = [s for s in under_run if s.name.startswith("sandbox.run.")]
    catalogue = CATALOGUE["sandbox.run"]
    names = [s.name for s in steps]
    assert names == sorted(names, key=catalogue.index), names   # in the order passed
    assert {"sandbox.run.reserved", "sandbox.run.network_added",
            "sandbox.run.ready"} <= set(names)
    assert steps[0].start_ns >= run.start_ns and steps[-1].end_ns <= run.end_ns
    assert all(a.end_ns == b.start_ns for a, b in zip(steps, steps[1:]))
    adds = [s for s in under_run if s.name == "cni.add"]
    # lo is brought up by the daemon itself (no loopback plugin, no span)
    assert [s.attributes["cni.ifname"] for s in adds] == ["eth0"]
    added = next(s for s in steps if s.name == "sandbox.run.network_added")
    eth0 = next(s for s in adds if s.attributes["cni.ifname"] == "eth0")
    assert added.start_ns <= eth0.start_ns and eth0.end_ns <= added.end_ns
    assert all(s.trace_id == TRACE_ID for s in under_run)

    # no traceparent: a trace of its own, sampled by the rate
    created = only(spans, RPC + "CreateContainer")
    assert created.parent_span_id == "" and created.trace_id != TRACE_ID
    assert created.attributes["crio_native.container_id"] == cid
    assert created.attributes["crio_native.pod_sandbox_id"] == pod_id
    create_steps = [s.name for s in children(spans, created)
                    if s.name.startswith("container.create.")]
    assert {"container.create.rootfs", "container.create.monitor_launched",
            "container.create.created"} <= set(create_steps)
    started = only(spans, RPC + "StartContainer")
    assert started.attributes["crio_native.container_id"] == cid
    assert [s.name for s in children(spans, started)
            if s.name.startswith("container.start.")][:1] == ["container.start.journaled"]


def test_unreachable_collector_does_not_fail_calls(daemon_factory, monkeypatch):
    d = daemon_factory()
    (d.base / "crio-native.conf.d").mkdir(parents=True)
    (d.base / "crio-native.conf.d" / "50-tracing.conf").write_text(
        '[tracing]\nenable_tracing = true\ntracing_endpoint = "127.0.0.1:1"\n'
        "tracing_sampling_rate_per_million = 1000000\n")
    d.start()
    assert d.runtime.Version(api_pb2.VersionRequest()).runtime_name == "crio-native"
    assert d.stop() == 0
