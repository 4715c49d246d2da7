"""The CRI metrics RPCs against the host's own files, UpdatePodSandboxResources,
and the Prometheus pull and launch metrics, over real gRPC.

A kubelet-made pod on the bridge network runs a container that allocates
32 MiB, burns CPU for a few seconds and writes 8 MiB to its root, then
sleeps; ListPodSandboxMetrics is compared with what the test reads itself
from the container's cgroup files (v1 on this host, v2 in the VM: the
builtin case is marked `vm`) and from /proc/<pid>/net/dev, each reading
taken before and after the call so time cannot make it flaky."""
from __future__ import annotations

import json
import os
import shutil
import socket
import urllib.request
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from crio_native._proto import api_pb2
from tests.e2e.kubelet import Container, Pod, start_node, wait_for
from tests.e2e.kubelet import kubelet  # noqa: F401
from tests.e2e.test_containers import pod_cgroup_parent
from tests.fixtures.oci_builder import ImageBuilder, Pusher, file
from tests.fixtures.registry import registry  # noqa: F401
from tests.ports import free_port

pytestmark = pytest.mark.root

GROUPS = ["cpu", "memory", "network", "disk", "process", "hugetlb", "oom"]
MiB = 1 << 20
S = 1_000_000_000
P = "container_runtime_crio_native"
# awk holds a 32 MiB string (its own heap: rss) while its child burns CPU
# for 3 s, writes 8 MiB into the root filesystem and sleeps
WORKLOAD = ("busybox awk 'BEGIN { s = sprintf(\"%33554432s\", \"\"); print \"allocated\"; "
            "fflush(); system(\"end=$(( $(busybox date +%s) + 3 )); "
            "while [ $(busybox date +%s) -lt $end ]; do :; done; "
            "busybox dd if=/dev/zero of=/fill bs=1048576 count=8 2>/dev/null; "
            "echo burned; sleep 1000\") }'")


@pytest.fixture(scope="module")
def node(registry, tmp_path_factory):  # noqa: F811
    """The kubelet's node daemon with metrics on and every metric group."""
    tmp = tmp_path_factory.mktemp("node")
    port = free_port()
    drop_ins = tmp / "daemon" / "crio-native.conf.d"
    drop_ins.mkdir(parents=True)
    (drop_ins / "50-metrics.conf").write_text(
        f"[metrics]\nenable_metrics = true\nmetrics_port = {port}\n"
        f"included_pod_metrics = {json.dumps(GROUPS)}\n")
    started = start_node(tmp, registry.url, registry.host)
    d, image = next(started)
    d.metrics_port = port
    yield d, image
    started.close()


@pytest.fixture(params=[pytest.param("builtin", marks=pytest.mark.vm), "runc"])
def handler(request) -> str:
    if request.param == "runc" and shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    return request.param


# ---- what the test reads itself -------------------------------------------------

def _first(dirs, *names) -> Path:
    """The first of `names` (in that order of preference) in any of `dirs`."""
    for name in names:
        for d in map(Path, dirs):
            if (d / name).exists():
                return d / name
    raise AssertionError(f"none of {names} in {dirs}")


def _keyed(path: Path) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in path.read_text().splitlines())}


def cpu_ns(dirs) -> int:
    f = _first(dirs, "cpuacct.usage", "cpu.stat")
    return int(f.read_text()) if f.name == "cpuacct.usage" else _keyed(f)["usage_usec"] * 1000


def memory_usage(dirs) -> int:
    return int(_first(dirs, "memory.usage_in_bytes", "memory.current").read_text())


def processes(dirs) -> int:
    return int(_first(dirs, "pids.current").read_text())


def oom_kills(dirs) -> int:
    f = _first(dirs, "memory.oom_control", "memory.events")
    return _keyed(f).get("oom_kill", 0) if f.name == "memory.events" else \
        int(dict(line.split() for line in f.read_text().splitlines())["oom_kill"])


def eth0(pid: int) -> tuple[int, int]:
    """(rx bytes, tx bytes) of eth0 in the namespace of `pid`."""
    for line in Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]:
        name, _, rest = line.partition(":")
        if name.strip() == "eth0":
            fields = rest.split()
            return int(fields[0]), int(fields[8])
    raise AssertionError(f"no eth0 in the namespace of {pid}")


def metrics_by_name(pod: api_pb2.PodSandboxMetrics, container_id: str):
    container = next(c for c in pod.container_metrics if c.container_id == container_id)
    out: dict[str, dict[tuple[str, ...], int]] = {}
    for m in [*pod.metrics, *container.metrics]:
        out.setdefault(m.name, {})[tuple(m.label_values[3:])] = m.value.value
    return out


def scrape(d) -> dict[str, float]:
    """Every sample of the daemon's Prometheus endpoint, by name{labels}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{d.metrics_port}/metrics",
                                timeout=10) as r:
        text = r.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


# ---- the RPCs --------------------------------------------------------------------

def test_pod_metrics_match_the_cgroup_files_and_the_netns(kubelet, handler):  # noqa: F811
    k = kubelet
    app = Container("app", ["sh", "-c", WORKLOAD])
    pod = Pod(f"metrics-{handler}", [app])
    pod_id = k.run_pod(pod)
    running = k.start(pod_id, app)
    k.wait_log(running.id, "burned", timeout=180)
    info = json.loads(k.status(running.id, verbose=True).info["info"])
    dirs, pid = info["cgroupDirs"], info["pid"]
    ip = k.runtime.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(
        pod_sandbox_id=pod_id)).status.network.ip
    with pytest.raises(OSError):     # a few packets through the pod's eth0 (refused)
        socket.create_connection((ip, 9), timeout=2).close()

    descriptors = {d.name: d for d in k.runtime.ListMetricDescriptors(
        api_pb2.ListMetricDescriptorsRequest()).descriptors}
    before = dict(cpu=cpu_ns(dirs), mem=memory_usage(dirs), net=eth0(pid))
    answer = k.runtime.ListPodSandboxMetrics(api_pb2.ListPodSandboxMetricsRequest())
    after = dict(cpu=cpu_ns(dirs), mem=memory_usage(dirs), net=eth0(pid))
    pod_metrics = next(p for p in answer.pod_metrics if p.pod_sandbox_id == pod_id)

    # every sample has its descriptor and one value per label key
    for m in [*pod_metrics.metrics, *(m for c in pod_metrics.container_metrics
                                      for m in c.metrics)]:
        assert len(m.label_values) == len(descriptors[m.name].label_keys), m
    got = metrics_by_name(pod_metrics, running.id)
    rss = next(m for c in pod_metrics.container_metrics for m in c.metrics
               if m.name == "container_memory_rss")
    assert list(rss.label_values) == [running.id, "app", k.image]

    cpu = got["container_cpu_usage_seconds_total"][("total",)]
    assert before["cpu"] // S <= cpu <= after["cpu"] // S and cpu >= 1
    user = got["container_cpu_user_seconds_total"][()]
    system = got["container_cpu_system_seconds_total"][()]
    assert user + system <= cpu + 1
    usage = got["container_memory_usage_bytes"][()]
    slack = max(2 * MiB, before["mem"] // 20)
    assert before["mem"] - slack <= usage <= after["mem"] + slack
    assert got["container_memory_rss"][()] >= 30 * MiB        # the 32 MiB string
    assert got["container_memory_working_set_bytes"][()] <= usage
    assert got["container_processes"][()] == processes(dirs)
    assert got["container_threads"][()] >= got["container_processes"][()]
    assert got["container_file_descriptors"][()] >= 3
    assert got["container_oom_events_total"][()] == oom_kills(dirs) == 0
    assert got["container_fs_usage_bytes"][()] >= 8 * MiB     # /fill
    rx = got["container_network_receive_bytes_total"][("eth0",)]
    tx = got["container_network_transmit_bytes_total"][("eth0",)]
    assert before["net"][0] <= rx <= after["net"][0] and rx > 0
    assert before["net"][1] <= tx <= after["net"][1] and tx > 0

    streamed = [p for chunk in k.runtime.StreamPodSandboxMetrics(
        api_pb2.StreamPodSandboxMetricsRequest()) for p in chunk.pod_sandbox_metrics]
    assert [p.pod_sandbox_id for p in streamed] == [p.pod_sandbox_id
                                                    for p in answer.pod_metrics]

    # the launch latency of this handler moved; the kubelet's pod cgroup is
    # the kubelet's: UpdatePodSandboxResources answers OK and changes nothing
    samples = scrape(k.d)
    assert samples[f'{P}_handler_launch_seconds_count{{handler="{handler}",step="start"}}'] >= 1
    assert samples[f'{P}_handler_launch_seconds_count{{handler="{handler}",step="create"}}'] >= 1
    request = api_pb2.UpdatePodSandboxResourcesRequest(pod_sandbox_id=pod_id)
    request.resources.memory_limit_in_bytes = 512 * MiB
    k.runtime.UpdatePodSandboxResources(request)
    assert k.cgroups.limits(pod) == k.cgroups.written[pod.uid]


def memory_limit(dirs) -> int:
    return int(_first(dirs, "memory.limit_in_bytes", "memory.max").read_text())


@pytest.mark.vm
def test_update_pod_sandbox_resources_writes_the_pod_cgroup_it_made(node, tmp_path):
    d, _image = node
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name="upd", namespace="default", uid="uid-upd"),
        hostname="upd", log_directory=str(tmp_path / "upd"))
    config.linux.cgroup_parent = pod_cgroup_parent("crn-e2e-metrics-pod")
    config.linux.resources.memory_limit_in_bytes = 96 * MiB
    config.linux.overhead.memory_limit_in_bytes = 32 * MiB
    opts = config.linux.security_context.namespace_options
    opts.network, opts.pid = api_pb2.NODE, api_pb2.CONTAINER
    pod = d.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=config),
                                  timeout=60).pod_sandbox_id
    try:
        dirs = json.loads(d.runtime.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(
            pod_sandbox_id=pod, verbose=True)).info["info"])["cgroupDirs"]
        assert memory_limit(dirs) == 128 * MiB
        request = api_pb2.UpdatePodSandboxResourcesRequest(pod_sandbox_id=pod)
        request.resources.memory_limit_in_bytes = 160 * MiB
        request.overhead.memory_limit_in_bytes = 32 * MiB
        d.runtime.UpdatePodSandboxResources(request)
        assert memory_limit(dirs) == 192 * MiB
    finally:
        d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod))
    with pytest.raises(grpc.RpcError) as e:
        d.runtime.UpdatePodSandboxResources(api_pb2.UpdatePodSandboxResourcesRequest(
            pod_sandbox_id=pod))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert "UpdatePodSandboxResources" in e.value.details()


# ---- the pull metrics ------------------------------------------------------------

def test_pull_metrics_move_after_a_real_pull(node, registry):  # noqa: F811
    d, _image = node
    # two layers no other image of the run has (the busybox one is pulled already)
    token = os.urandom(8).hex()
    built = ImageBuilder().add_layer([file("a.txt", token * 1000)]).add_layer(
        [file("b.txt", token)]).build()
    Pusher(registry.url).push_image("metrics/two", "1", built)
    before = scrape(d)
    d.images.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(
        image=f"{registry.host}/metrics/two:1")), timeout=60)
    after = scrape(d)

    def moved(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    assert moved(f"{P}_image_pulls_layers_total{{}}") == len(built.layers) == 2
    assert moved(f"{P}_image_pulls_bytes_total{{}}") == sum(b.size for b in built.layers)
    assert moved(f"{P}_image_pulls_duration_seconds_count{{}}") == 1
    assert after[f"{P}_image_pulls_in_flight{{}}"] == 0
    # a tag the registry lacks: a failure by reason, no layers
    with pytest.raises(grpc.RpcError) as e:
        d.images.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(
            image=f"{registry.host}/metrics/two:nope")), timeout=60)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    failed = wait_for(lambda: scrape(d).get(
        f'{P}_image_pulls_failures_total{{reason="not_found"}}'), what="the failure counter")
    assert failed == before.get(f'{P}_image_pulls_failures_total{{reason="not_found"}}', 0) + 1
    assert scrape(d)[f"{P}_image_pulls_layers_total{{}}"] == after[
        f"{P}_image_pulls_layers_total{{}}"]
