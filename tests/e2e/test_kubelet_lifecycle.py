"""A pod's life as a kubelet drives it, on the built-in runtime and runc,
with the cgroupfs driver's pod cgroup made first: RunPodSandbox with the
kubelet's own config (labels, annotations, DNS, a hostPort, cgroup parent,
/var/log/pods/<ns>_<name>_<uid>), an init container to Completed, app
containers probed with ExecSync every second, the stats RPCs the kubelet
polls, a graceful stop and one past the grace period, and the teardown
leaving only what the kubelet itself removes."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from crio_native._proto import api_pb2
from tests.e2e.kubelet import (BRIDGE, CONTAINER_NAME, cgroup_value, MIB, POD_UID, Container, Pod, Probe,
                               Prober, log_lines, milli_cpu_to_quota, milli_cpu_to_shares,
                               oom_score_adj)
from tests.e2e.kubelet import kubelet, node  # noqa: F401
from tests.fixtures.registry import registry  # noqa: F401

pytestmark = pytest.mark.root


@pytest.fixture(params=[pytest.param("builtin", marks=pytest.mark.vm), "runc"])
def handler(request) -> str:
    """conftest's, with the built-in runtime's run also in the pure v2 VM
    (v2 stats, cpu.max, memory.oom.group)."""
    if request.param == "runc" and shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    return request.param

HOST_PORT = 18431
WEB = ("echo starting; exec /bin/busybox httpd -f -p 8080 -h /www")
# a TERM handler ends it at once (wait returns on the trapped signal)
GRACEFUL = "trap 'echo got-term; exit 0' TERM; echo up; while :; do sleep 1 & wait $!; done"
STUBBORN = "trap '' TERM; echo up; while :; do sleep 1; done"


def web_pod() -> Pod:
    web = Container(
        "web", ["sh", "-c", WEB], cpu_request=100, cpu_limit=500,
        memory_request=32 * MIB, memory_limit=64 * MIB,
        ports=[{"name": "http", "containerPort": 8080, "hostPort": HOST_PORT,
                "protocol": "TCP"}],
        liveness=Probe(["cat", "/www/index.html"]),
        readiness=Probe(["sh", "-c", "/bin/busybox wget -q -O- http://127.0.0.1:8080/"]),
        volumes={"www": "/www"})
    init = Container("init", ["sh", "-c", "echo ready > /www/index.html; echo init-done"],
                     volumes={"www": "/www"})
    return Pod("web", [web, Container("graceful", ["sh", "-c", GRACEFUL]),
                       Container("stubborn", ["sh", "-c", STUBBORN])],
               init_containers=[init], labels={"app": "web"},
               annotations={"team": "e2e"}, grace_period=2)


def rootfs_mounts(root: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(root))]


def test_a_pod_from_start_to_teardown(kubelet):
    k = kubelet
    pod = web_pod()
    web, graceful, stubborn = pod.containers
    pod_id = k.run_pod(pod)

    st = k.runtime.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(
        pod_sandbox_id=pod_id)).status
    assert st.state == api_pb2.SANDBOX_READY
    assert (st.metadata.name, st.metadata.namespace, st.metadata.uid) == (
        "web", "default", pod.uid)
    assert st.labels[POD_UID] == pod.uid and st.labels["app"] == "web"
    assert st.annotations["team"] == "e2e"
    assert st.annotations["kubernetes.io/config.source"] == "api"
    assert st.network.ip.startswith("10.231.13.")
    # getSandboxIDByPodUID
    found = k.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest(
        filter=api_pb2.PodSandboxFilter(label_selector={POD_UID: pod.uid}))).items
    assert [p.id for p in found] == [pod_id]

    # the init container runs to completion before the app containers start
    init = k.start(pod_id, pod.init_containers[0])
    ist = k.wait_exited(init.id)
    assert (ist.exit_code, ist.reason) == (0, "Completed"), ist.message
    log_dir = k.log_root / pod.log_dir_name
    assert ist.log_path == str(log_dir / "init" / "0.log")
    assert ("stdout", "F", "init-done") in log_lines(Path(ist.log_path))

    running = {c.name: k.start(pod_id, c) for c in pod.containers}
    for name in ("graceful", "stubborn"):
        k.wait_log(running[name].id, "up")
    k.wait_log(running["web"].id, "starting")
    for r in running.values():
        s = k.status(r.id).status
        assert s.state == api_pb2.CONTAINER_RUNNING, (r.spec.name, s.message)
        assert s.labels[CONTAINER_NAME] == r.spec.name and s.labels[POD_UID] == pod.uid
        assert s.image.image == k.image            # the user's image name, not the ID
        assert s.metadata.attempt == 0
    wid = running["web"].id
    dirs = k.cgroup_dirs(wid)
    assert dirs and all(Path(p).parent.name == f"pod{pod.uid}" for p in dirs), dirs
    assert int(cgroup_value(dirs, "memory.limit_in_bytes", "memory.max")) == 64 * MIB
    quota = cgroup_value(dirs, "cpu.cfs_quota_us", "cpu.max").split()[0]
    assert int(quota) == milli_cpu_to_quota(500)
    if any((Path(p) / "cpu.shares").exists() for p in dirs):
        assert int(cgroup_value(dirs, "cpu.shares")) == milli_cpu_to_shares(100)
    pid = json.loads(k.status(wid, verbose=True).info["info"])["pid"]
    assert int(Path(f"/proc/{pid}/oom_score_adj").read_text()) == oom_score_adj(pod, web)
    # the kubelet's pod group keeps the kubelet's limits
    assert k.cgroups.limits(pod) == k.cgroups.written[pod.uid]

    # probes every second, each with its timeout
    assert web.liveness and web.readiness
    probers = [Prober(k, wid, web.liveness), Prober(k, wid, web.readiness)]
    for p in probers:
        p.start()
    time.sleep(3.2)
    timed_out = k.exec_probe(wid, Probe(["sleep", "5"], timeout=1))
    liveness, readiness = (p.finish() for p in probers)
    assert timed_out == "timeout"
    assert len(liveness) >= 3 and all(r == "success" for r, _ in liveness), liveness
    assert readiness[-1][0] == "success", readiness
    assert all(took < 1 + 1.0 for _, took in liveness + readiness), (liveness, readiness)
    assert k.exec_probe(wid, Probe(["sh", "-c", "exit 3"])) == "failure"
    # the pod's DNS as the kubelet asked for it, and its hostPort
    resolv = k.runtime.ExecSync(api_pb2.ExecSyncRequest(
        container_id=wid, cmd=["cat", "/etc/resolv.conf"], timeout=5)).stdout.decode()
    assert "nameserver 10.96.0.10" in resolv and "ndots:5" in resolv
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in resolv
    with urllib.request.urlopen(f"http://{st.network.ip}:8080/", timeout=5) as reply:
        assert reply.read() == b"ready\n"
    nat = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True).stdout
    assert str(HOST_PORT) in nat

    check_stats(k, pod_id, running)

    # StopContainer within the grace period: TERM handled, exit 0
    started = time.monotonic()
    k.stop(running["graceful"].id, 10)
    assert time.monotonic() - started < 5
    gst = k.status(running["graceful"].id).status
    assert (gst.state, gst.exit_code, gst.reason) == (api_pb2.CONTAINER_EXITED, 0, "Completed")
    assert ("stdout", "F", "got-term") in log_lines(Path(gst.log_path))
    # TERM ignored: SIGKILL once the grace period is over
    started = time.monotonic()
    k.stop(running["stubborn"].id, 2)
    assert time.monotonic() - started >= 1.9
    sst = k.status(running["stubborn"].id).status
    assert (sst.state, sst.exit_code, sst.reason) == (api_pb2.CONTAINER_EXITED, 137, "Error")

    # teardown as the kubelet does it: kill the pod, GC containers and sandbox
    pins = json_info(k, pod_id).get("pins", {})
    k.kill_pod(pod_id)
    assert k.status(wid).status.exit_code == 137        # httpd as PID 1 ignores TERM
    k.remove_pod(pod_id)
    assert not k.runtime.ListContainers(api_pb2.ListContainersRequest()).containers
    assert not k.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items
    assert rootfs_mounts(k.d.base / "root") == []
    assert not any(Path(p).exists() for p in pins.values()), pins
    assert not any(Path(p).exists() for p in dirs), dirs
    assert not list((k.d.base.parent / "ipam").glob(f"*/{st.network.ip}"))
    nat = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True).stdout
    assert str(HOST_PORT) not in nat
    assert BRIDGE in Path("/proc/net/dev").read_text()     # the network stays for others
    # what is left is the kubelet's: its pod group, empty and removable
    for d in k.cgroups.pod_dirs(pod):
        assert not (d / "cgroup.procs").read_text().split()
        assert not [c for c in d.iterdir() if c.is_dir()], d
    k.cgroups.remove()
    assert not any(d.exists() for d in k.cgroups.pod_dirs(pod))


def json_info(k, pod_id: str) -> dict:
    return json.loads(k.runtime.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(
        pod_sandbox_id=pod_id, verbose=True)).info["info"])


def check_stats(k, pod_id: str, running: dict) -> None:
    """ListContainerStats and ListPodSandboxStats as the kubelet's CRI stats
    provider calls them (no filter), twice: plausible, and counting up."""
    def containers():
        stats = k.runtime.ListContainerStats(api_pb2.ListContainerStatsRequest()).stats
        return {s.attributes.id: s for s in stats}

    def pods():
        stats = k.runtime.ListPodSandboxStats(api_pb2.ListPodSandboxStatsRequest()).stats
        return {s.attributes.id: s for s in stats}

    first, first_pod = containers(), pods()[pod_id]
    time.sleep(1.1)
    second, second_pod = containers(), pods()[pod_id]
    now = time.time_ns()
    for name, r in running.items():
        a, b = first[r.id], second[r.id]
        assert b.attributes.metadata.name == name
        assert b.attributes.labels[CONTAINER_NAME] == name
        assert abs(b.cpu.timestamp - now) < 30 * 10**9
        assert b.cpu.timestamp > a.cpu.timestamp
        assert 0 < a.cpu.usage_core_nano_seconds.value <= b.cpu.usage_core_nano_seconds.value
        assert 0 < b.memory.working_set_bytes.value < 64 * MIB
        assert b.writable_layer.used_bytes.value >= 0
        assert b.cpu.HasField("usage_nano_cores")      # a rate over the two samples
    web = second[running["web"].id].memory
    assert 0 < web.available_bytes.value <= 64 * MIB - web.working_set_bytes.value
    ps = second_pod.linux
    assert second_pod.attributes.metadata.uid == k.pods[pod_id].uid
    assert ps.cpu.usage_core_nano_seconds.value >= first_pod.linux.cpu.usage_core_nano_seconds.value > 0
    assert ps.memory.working_set_bytes.value > 0
    assert ps.cpu.HasField("usage_nano_cores")
    assert ps.process.process_count.value >= 3
    assert {c.attributes.id for c in ps.containers} >= {r.id for r in running.values()}
    assert ps.network.default_interface.name == "eth0"
    assert ps.network.default_interface.rx_bytes.value > 0

