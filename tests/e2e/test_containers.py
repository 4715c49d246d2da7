"""Containers over real gRPC: an image from the loopback registry, a pod, and
containers created, started, probed with ExecSync, stopped and removed by
the built-in runtime and by runc, each under its own monitor."""
from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import grpc
import pytest

from crio_native._proto import api_pb2
from crio_native.linux.cgroups import hugetlb
from tests.fixtures.oci_builder import ImageBuilder, Pusher
from tests.fixtures.registry import registry  # noqa: F401

pytestmark = pytest.mark.root

HOST = api_pb2.NODE


@pytest.fixture(scope="module")
def busybox_image(registry):  # noqa: F811
    name = f"{registry.host}/e2e/busybox:1"
    image = Pusher(registry.url).push_image("e2e/busybox", "1",
                                            ImageBuilder().busybox().build())
    return name, image


def remove_all_pods(d) -> None:
    for pod in d.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items:
        d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod.id))


def serving_image(d, pushed, tmp_path):
    """Fixture body: the started daemon `d` with the pushed (name, image)
    pulled and a pod log dir; its pods go at teardown."""
    d.image_name, d.image = pushed
    d.images.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=d.image_name)))
    d.pod_logs = tmp_path / "pod-logs"
    d.pod_logs.mkdir()
    yield d
    if d.proc is not None and d.proc.poll() is None:
        remove_all_pods(d)


@pytest.fixture
def cdaemon(daemon_factory, busybox_image, tmp_path):
    """A daemon with the busybox image pulled."""
    yield from serving_image(daemon_factory().start(), busybox_image, tmp_path)


def run_pod(d, name="pod", handler="") -> str:
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="default", uid=f"uid-{name}"),
        hostname=name, log_directory=str(d.pod_logs / name))
    opts = config.linux.security_context.namespace_options
    opts.network, opts.pid = HOST, api_pb2.CONTAINER
    return d.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(
        config=config, runtime_handler=handler), timeout=60).pod_sandbox_id


def container_config(d, name="c", command=("sleep", "1000"), **kw) -> api_pb2.ContainerConfig:
    config = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name=name),
        image=api_pb2.ImageSpec(image=d.image_name), command=list(command),
        log_path=f"{name}/0.log", labels=kw.pop("labels", {"app": name}))
    for key, value in kw.items():
        setattr(config, key, value)
    return config


def create(d, pod_id, config, sandbox_config=None) -> str:
    return d.runtime.CreateContainer(api_pb2.CreateContainerRequest(
        pod_sandbox_id=pod_id, config=config,
        sandbox_config=sandbox_config or api_pb2.PodSandboxConfig()),
        timeout=60).container_id


def cstatus(d, cid, verbose=False) -> api_pb2.ContainerStatusResponse:
    return d.runtime.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid,
                                                                    verbose=verbose))


def wait_exited(d, cid, timeout=15.0) -> api_pb2.ContainerStatus:
    deadline = time.monotonic() + timeout
    while True:
        st = cstatus(d, cid).status
        if st.state == api_pb2.CONTAINER_EXITED or time.monotonic() > deadline:
            return st
        time.sleep(0.05)


def log_entries(path: Path) -> list[tuple[str, str, str]]:
    """(stream, tag, text) of each CRI log line."""
    out = []
    for line in path.read_text().splitlines():
        _stamp, stream, tag, text = line.split(" ", 3)
        out.append((stream, tag, text))
    return out


def rootfs_mounts(d) -> list[str]:
    root = str(d.base / "root")
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(root)]


def rpc_code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as e:
        call()
    return e.value.code(), e.value.details()


def test_container_runs_logs_and_exits(cdaemon):
    d = cdaemon
    pod = run_pod(d)
    cid = create(d, pod, container_config(
        d, command=["sh", "-c", "echo hello; echo oops >&2; exit 3"]))
    st = cstatus(d, cid).status
    assert st.state == api_pb2.CONTAINER_CREATED and st.created_at > 0
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    st = wait_exited(d, cid)
    assert st.state == api_pb2.CONTAINER_EXITED
    assert (st.exit_code, st.reason) == (3, "Error")
    assert st.started_at >= st.created_at and st.finished_at >= st.started_at
    assert st.image_id == d.image.id and st.image.image == d.image_name
    assert st.image_ref.endswith(d.image.digest)
    assert st.log_path == str(d.pod_logs / "pod" / "c" / "0.log")
    assert sorted(log_entries(Path(st.log_path))) == [("stderr", "F", "oops"),
                                                      ("stdout", "F", "hello")]
    listed = d.runtime.ListContainers(api_pb2.ListContainersRequest()).containers
    assert [c.id for c in listed] == [cid] and listed[0].pod_sandbox_id == pod
    d.runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid))
    assert not d.runtime.ListContainers(api_pb2.ListContainersRequest()).containers
    assert rootfs_mounts(d) == []


def test_exec_sync_stop_and_remove(cdaemon):
    d = cdaemon
    pod = run_pod(d)
    cid = create(d, pod, container_config(d))
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    assert cstatus(d, cid).status.state == api_pb2.CONTAINER_RUNNING

    r = d.runtime.ExecSync(api_pb2.ExecSyncRequest(
        container_id=cid, cmd=["sh", "-c", "echo out; echo err >&2; exit 7"], timeout=10))
    assert (r.stdout, r.stderr, r.exit_code) == (b"out\n", b"err\n", 7)
    code, details = rpc_code(lambda: d.runtime.ExecSync(api_pb2.ExecSyncRequest(
        container_id=cid, cmd=["sleep", "30"], timeout=1)))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED and "timed out" in details

    # sleep as PID 1 of its PID namespace ignores SIGTERM: SIGKILL after the timeout
    started = time.monotonic()
    d.runtime.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=1))
    assert time.monotonic() - started >= 0.9
    st = cstatus(d, cid).status
    assert (st.state, st.exit_code) == (api_pb2.CONTAINER_EXITED, 137)
    d.runtime.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=1))
    d.runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid))
    d.runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid))
    assert rpc_code(lambda: cstatus(d, cid))[0] == grpc.StatusCode.NOT_FOUND


def test_exec_sync_timeout_leaves_no_process(cdaemon):
    d = cdaemon
    pod = run_pod(d)
    cid = create(d, pod, container_config(d))
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    pid = json.loads(cstatus(d, cid, verbose=True).info["info"])["pid"]
    code, _ = rpc_code(lambda: d.runtime.ExecSync(api_pb2.ExecSyncRequest(
        container_id=cid, cmd=["sleep", "77"], timeout=1)))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    sleepers = [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p) == "sleep 77"]
    assert sleepers == []
    assert _cmdline(str(pid)) == "sleep 1000"
    d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod))
    assert not d.runtime.ListContainers(api_pb2.ListContainersRequest()).containers


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def test_bad_requests_name_the_field_and_leave_nothing(cdaemon):
    d = cdaemon
    pod = run_pod(d)
    config = container_config(d)
    code, msg = rpc_code(lambda: create(d, "nope", config))
    assert code == grpc.StatusCode.NOT_FOUND and "nope" in msg
    for call in (lambda: cstatus(d, "missing"),
                 lambda: d.runtime.StartContainer(api_pb2.StartContainerRequest(
                     container_id="missing"))):
        assert rpc_code(call)[0] == grpc.StatusCode.NOT_FOUND
    # stop and remove of an unknown container succeed, as the CRI asks
    d.runtime.StopContainer(api_pb2.StopContainerRequest(container_id="missing"))
    d.runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id="missing"))

    code, msg = rpc_code(lambda: create(d, pod, container_config(d, name="")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "config.metadata.name" in msg
    bad_mount = container_config(d, name="m")
    bad_mount.mounts.add(container_path="relative/dir", host_path="/tmp")
    code, msg = rpc_code(lambda: create(d, pod, bad_mount))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "mounts[0]" in msg
    missing_image = container_config(d, name="i")
    missing_image.image.image = "no.such/image:1"
    code, msg = rpc_code(lambda: create(d, pod, missing_image))
    assert code == grpc.StatusCode.NOT_FOUND and "config.image.image" in msg
    code, msg = rpc_code(lambda: create(d, pod, container_config(d, name="x",
                                                                 command=["no-such-binary"])))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert 'exec: "no-such-binary": executable file not found in $PATH' in msg
    assert not d.runtime.ListContainers(api_pb2.ListContainersRequest()).containers
    assert rootfs_mounts(d) == []

    first = create(d, pod, config)
    assert create(d, pod, config) == first          # a retried request
    other = container_config(d, command=["sleep", "5"])
    code, msg = rpc_code(lambda: create(d, pod, other))
    assert code == grpc.StatusCode.ALREADY_EXISTS and first in msg

    d.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod))
    assert cstatus(d, first).status.state == api_pb2.CONTAINER_EXITED
    code, _ = rpc_code(lambda: create(d, pod, container_config(d, name="late")))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod))
    assert rpc_code(lambda: cstatus(d, first))[0] == grpc.StatusCode.NOT_FOUND
    assert rootfs_mounts(d) == []


def collect_events(d):
    """Subscribe to GetContainerEvents: the stream (cancel it to end), the
    queue a reader thread puts each event on, and that thread."""
    got: queue.Queue = queue.Queue()
    stream = d.runtime.GetContainerEvents(api_pb2.GetEventsRequest())

    def read():
        try:
            for event in stream:
                got.put(event)
        except grpc.RpcError:
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.2)
    return stream, got, reader


def test_events_follow_the_lifecycle(cdaemon):
    d = cdaemon
    pod = run_pod(d)
    stream, got, reader = collect_events(d)
    cid = create(d, pod, container_config(d, command=["true"]))
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    wait_exited(d, cid)
    d.runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid))
    events = [got.get(timeout=10) for _ in range(4)]
    stream.cancel()
    reader.join(5)
    assert [e.container_event_type for e in events] == [
        api_pb2.CONTAINER_CREATED_EVENT, api_pb2.CONTAINER_STARTED_EVENT,
        api_pb2.CONTAINER_STOPPED_EVENT, api_pb2.CONTAINER_DELETED_EVENT]
    assert {e.container_id for e in events} == {cid}
    assert events[0].pod_sandbox_status.id == pod
    stopped = events[2].containers_statuses
    assert [(s.id, s.state, s.exit_code) for s in stopped] == [
        (cid, api_pb2.CONTAINER_EXITED, 0)]


def test_containers_outlive_the_daemon(daemon_factory, busybox_image, tmp_path):
    d = daemon_factory().start()
    d.image_name, d.image = busybox_image
    d.images.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=d.image_name)))
    d.pod_logs = tmp_path / "logs"
    pod = run_pod(d)
    long = create(d, pod, container_config(d, name="long", command=[
        "sh", "-c", "while true; do echo tick; sleep 0.1; done"]))
    short = create(d, pod, container_config(d, name="short", command=["sh", "-c",
                                                                      "sleep 1; exit 4"]))
    for cid in (long, short):
        d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    long_log = Path(cstatus(d, long).status.log_path)
    d.stop(signal.SIGKILL)
    before = len(log_entries(long_log))
    time.sleep(1.5)                       # `short` exits while no daemon runs
    during = len(log_entries(long_log))
    d.start()
    assert cstatus(d, long).status.state == api_pb2.CONTAINER_RUNNING
    time.sleep(0.5)
    assert before < during < len(log_entries(long_log))   # the log never paused
    st = wait_exited(d, short)
    assert (st.state, st.exit_code) == (api_pb2.CONTAINER_EXITED, 4)
    d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod))
    assert not d.runtime.ListContainers(api_pb2.ListContainersRequest()).containers


def test_status_lists_the_runtime_handlers(cdaemon):
    handlers = cdaemon.runtime.Status(api_pb2.StatusRequest()).runtime_handlers
    assert [h.name for h in handlers] == ["", "builtin", "crun", "runc"]


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed")
def test_runc_handler_runs_the_same_container(cdaemon):
    d = cdaemon
    pod = run_pod(d, name="rpod", handler="runc")
    cid = create(d, pod, container_config(d, command=["sh", "-c", "echo from-runc; exit 5"]))
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    st = wait_exited(d, cid)
    assert (st.state, st.exit_code) == (api_pb2.CONTAINER_EXITED, 5)
    assert log_entries(Path(st.log_path)) == [("stdout", "F", "from-runc")]
    d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod))


def verbose_info(d, cid) -> dict:
    return json.loads(cstatus(d, cid, verbose=True).info["info"])


def test_stats_report_cpu_memory_and_the_writable_layer(cdaemon):
    d = cdaemon
    pod = run_pod(d)
    cid = create(d, pod, container_config(d, command=[
        "sh", "-c", "echo some-data > /data; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done;"
        " sleep 1000"]))
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    deadline = time.monotonic() + 10
    while True:
        stats = d.runtime.ContainerStats(api_pb2.ContainerStatsRequest(container_id=cid)).stats
        if stats.writable_layer.used_bytes.value > 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert stats.attributes.id == cid and stats.attributes.metadata.name == "c"
    assert stats.cpu.usage_core_nano_seconds.value > 0
    assert stats.memory.working_set_bytes.value > 0
    assert stats.writable_layer.used_bytes.value > 0
    assert stats.writable_layer.inodes_used.value >= 1
    listed = d.runtime.ListContainerStats(api_pb2.ListContainerStatsRequest(
        filter=api_pb2.ContainerStatsFilter(pod_sandbox_id=pod))).stats
    assert [s.attributes.id for s in listed] == [cid]
    assert not d.runtime.ListContainerStats(api_pb2.ListContainerStatsRequest(
        filter=api_pb2.ContainerStatsFilter(label_selector={"app": "other"}))).stats
    pod_stats = d.runtime.PodSandboxStats(api_pb2.PodSandboxStatsRequest(
        pod_sandbox_id=pod)).stats
    assert pod_stats.attributes.id == pod
    assert [c.attributes.id for c in pod_stats.linux.containers] == [cid]
    code, _ = rpc_code(lambda: d.runtime.ContainerStats(api_pb2.ContainerStatsRequest(
        container_id="nope")))
    assert code == grpc.StatusCode.NOT_FOUND


def _memory_limit(dirs: list[str]) -> int:
    for d in map(Path, dirs):
        for name in ("memory.max", "memory.limit_in_bytes"):
            if (d / name).exists():
                return int((d / name).read_text())
    raise AssertionError(f"no memory limit file in {dirs}")


def test_update_resources_and_reopen_the_log(cdaemon):
    d = cdaemon
    pod = run_pod(d)
    cid = create(d, pod, container_config(d, command=[
        "sh", "-c", "while true; do echo tick; sleep 0.1; done"]))
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    dirs = verbose_info(d, cid)["cgroupDirs"]
    limit = 64 * 1024 * 1024
    d.runtime.UpdateContainerResources(api_pb2.UpdateContainerResourcesRequest(
        container_id=cid, linux=api_pb2.LinuxContainerResources(memory_limit_in_bytes=limit)))
    assert _memory_limit(dirs) == limit
    st = cstatus(d, cid).status
    assert st.resources.linux.memory_limit_in_bytes == limit
    code, msg = rpc_code(lambda: d.runtime.UpdateContainerResources(
        api_pb2.UpdateContainerResourcesRequest(
            container_id=cid, linux=api_pb2.LinuxContainerResources(cpu_shares=1))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "UpdateContainerResources: linux.cpu_shares" in msg

    log = Path(st.log_path)
    time.sleep(0.3)
    rotated = log.with_name("0.log.1")
    log.rename(rotated)
    d.runtime.ReopenContainerLog(api_pb2.ReopenContainerLogRequest(container_id=cid))
    deadline = time.monotonic() + 5
    while not (log.exists() and log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log_entries(log)[0] == ("stdout", "F", "tick")
    assert log_entries(rotated)[0] == ("stdout", "F", "tick")


def test_out_of_memory_is_reported_as_oomkilled(cdaemon):
    d = cdaemon
    pod = run_pod(d)
    config = container_config(d, command=["sh", "-c", "x=a; while true; do x=\"$x$x\"; done"])
    config.linux.resources.memory_limit_in_bytes = 16 * 1024 * 1024
    cid = create(d, pod, config)
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    st = wait_exited(d, cid, timeout=30)
    assert (st.state, st.reason, st.exit_code) == (api_pb2.CONTAINER_EXITED, "OOMKilled", 137)


def pod_cgroup_parent(leaf: str = "crn-e2e-pod") -> str:
    """A pod cgroup `leaf` the daemon may use: below the run's cgroup root, or
    below our own memory cgroup (the deepest of ours on a hybrid host)."""
    root = os.environ.get("CRIO_NATIVE_CGROUP_ROOT")
    if root:
        return f"{root.rstrip('/')}/{leaf}"
    paths = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        paths[controllers] = path
    base = next((p for c, p in paths.items() if "memory" in c.split(",")), paths.get("", "/"))
    return f"{base.rstrip('/')}/{leaf}"


def test_pod_stats_read_the_pod_cgroup(cdaemon):
    d = cdaemon
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name="cg", namespace="default", uid="uid-cg"),
        hostname="cg", log_directory=str(d.pod_logs / "cg"))
    config.linux.cgroup_parent = pod_cgroup_parent()
    opts = config.linux.security_context.namespace_options
    opts.network, opts.pid = HOST, api_pb2.CONTAINER
    pod = d.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=config),
                                  timeout=60).pod_sandbox_id
    cid = create(d, pod, container_config(d))
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    dirs = verbose_info(d, cid)["cgroupDirs"]
    assert all(f"/crn-e2e-pod/crio-{cid}" in p for p in dirs), dirs
    stats = d.runtime.PodSandboxStats(api_pb2.PodSandboxStatsRequest(
        pod_sandbox_id=pod)).stats
    assert stats.linux.cpu.usage_core_nano_seconds.value > 0
    assert stats.linux.memory.working_set_bytes.value > 0
    assert stats.linux.process.process_count.value >= 1
    d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod))


def test_pod_cgroup_is_made_with_the_pod_resources_and_removed_with_it(cdaemon):
    d = cdaemon
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name="res", namespace="default", uid="uid-res"),
        hostname="res", log_directory=str(d.pod_logs / "res"))
    config.linux.cgroup_parent = pod_cgroup_parent() + "-res"
    config.linux.resources.memory_limit_in_bytes = 96 << 20
    config.linux.overhead.memory_limit_in_bytes = 32 << 20
    opts = config.linux.security_context.namespace_options
    opts.network, opts.pid = HOST, api_pb2.CONTAINER
    pod = d.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=config),
                                  timeout=60).pod_sandbox_id
    dirs = json.loads(d.runtime.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(
        pod_sandbox_id=pod, verbose=True)).info["info"])["cgroupDirs"]
    assert dirs and all(Path(p).is_dir() for p in dirs)
    assert _memory_limit(dirs) == 128 << 20          # resources + overhead
    cid = create(d, pod, container_config(d))
    assert all(p.startswith(tuple(dirs)) for p in verbose_info(d, cid)["cgroupDirs"])
    d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod))
    assert not any(Path(p).exists() for p in dirs)


def _pod_with_parent(d, name: str, parent: str, memory: int = 0) -> str:
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="default", uid=f"uid-{name}"),
        hostname=name, log_directory=str(d.pod_logs / name))
    config.linux.cgroup_parent = parent
    config.linux.resources.memory_limit_in_bytes = memory
    opts = config.linux.security_context.namespace_options
    opts.network, opts.pid = HOST, api_pb2.CONTAINER
    return d.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=config),
                                   timeout=60).pod_sandbox_id


def _pod_cgroup_dirs(d, pod: str) -> list[str]:
    return json.loads(d.runtime.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(
        pod_sandbox_id=pod, verbose=True)).info["info"])["cgroupDirs"]


def test_kubelet_pod_cgroups_with_the_default_configuration(cdaemon):
    """The cgroupfs driver's parents as a kubelet names them, at the top of
    the hierarchy and so outside the daemon's own cgroup, with no cgroup
    root configured (the default): two pods under one new parent, which
    goes with the last of them; a group the kubelet made is used as it is,
    neither written to nor removed."""
    from crio_native.linux import cgroups

    if os.environ.get("CRIO_NATIVE_CGROUP_ROOT"):
        pytest.skip("this run confines every runtime to $CRIO_NATIVE_CGROUP_ROOT (a populated "
                    "v2 cgroup); the default without a root runs on the other hosts")
    d = cdaemon
    top = f"/crn-e2e-kubepods-{os.getpid()}"
    kubelet_plan = cgroups.plan_cgroups(f"{top}/pod-k", {"memory": {"limit": 64 << 20}})
    cgroups.create(kubelet_plan)     # the kubelet's own pod group, with its own limit
    try:
        a = _pod_with_parent(d, "kube-a", f"{top}/burstable/pod-a")
        b = _pod_with_parent(d, "kube-b", f"{top}/burstable/pod-b")
        dirs_a, dirs_b = _pod_cgroup_dirs(d, a), _pod_cgroup_dirs(d, b)
        assert dirs_a and all(Path(p).is_dir() and p.endswith(f"{top}/burstable/pod-a")
                              for p in dirs_a)
        cid = create(d, a, container_config(d))
        d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
        assert all(p.startswith(tuple(dirs_a)) for p in verbose_info(d, cid)["cgroupDirs"])
        d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=a))
        assert not any(Path(p).exists() for p in dirs_a)
        assert all(Path(p).parent.is_dir() for p in dirs_b)      # still pod b's
        d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=b))
        assert not any(Path(p).parent.exists() for p in dirs_b)  # gone with the last pod

        k = _pod_with_parent(d, "kube-k", f"{top}/pod-k", memory=96 << 20)
        dirs_k = [str(p) for p in kubelet_plan.dirs]
        assert _pod_cgroup_dirs(d, k) == dirs_k
        assert _memory_limit(dirs_k) == 64 << 20                  # the kubelet's, untouched
        d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=k))
        assert all(Path(p).is_dir() for p in dirs_k)              # the kubelet's to remove
    finally:
        cgroups.remove([*kubelet_plan.dirs, *(p.parent for p in kubelet_plan.dirs)])


def test_stream_list_rpcs_answer_what_the_list_rpcs_do(cdaemon):
    d = cdaemon
    pod = run_pod(d)
    cid = create(d, pod, container_config(d))
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))

    def streamed(call, request, field):
        return [item for chunk in call(request) for item in getattr(chunk, field)]

    flt = api_pb2.ContainerFilter(pod_sandbox_id=pod)
    assert streamed(d.runtime.StreamContainers, api_pb2.StreamContainersRequest(filter=flt),
                    "containers") == list(d.runtime.ListContainers(
                        api_pb2.ListContainersRequest(filter=flt)).containers)
    pods = streamed(d.runtime.StreamPodSandboxes, api_pb2.StreamPodSandboxesRequest(),
                    "pod_sandboxes")
    assert [p.id for p in pods] == [pod]
    stats = streamed(d.runtime.StreamContainerStats, api_pb2.StreamContainerStatsRequest(),
                     "container_stats")
    assert [s.attributes.id for s in stats] == [cid]
    pod_stats = streamed(d.runtime.StreamPodSandboxStats,
                         api_pb2.StreamPodSandboxStatsRequest(), "pod_sandbox_stats")
    assert [s.attributes.id for s in pod_stats] == [pod]
    images = streamed(d.images.StreamImages, api_pb2.StreamImagesRequest(), "images")
    assert [i.id for i in images] == [d.image.id]


def test_status_and_list_show_the_image_the_user_named(cdaemon):
    # as the kubelet asks: the image id PullImage answered, and the pod
    # spec's image (here a tag) as user_specified_image
    d = cdaemon
    ref = d.images.PullImage(api_pb2.PullImageRequest(
        image=api_pb2.ImageSpec(image=d.image_name))).image_ref
    pod = run_pod(d)
    config = container_config(d)
    config.image.CopyFrom(api_pb2.ImageSpec(image=ref, user_specified_image=d.image_name))
    cid = create(d, pod, config)
    st = cstatus(d, cid).status
    assert st.image.image == d.image_name and st.image.user_specified_image == d.image_name
    assert st.image_id == d.image.id and st.image_ref.endswith(d.image.digest)
    listed = d.runtime.ListContainers(api_pb2.ListContainersRequest()).containers
    assert [(c.id, c.image.image, c.image_id) for c in listed] == [
        (cid, d.image_name, d.image.id)]


def _output_of(d, pod, config) -> str:
    cid = create(d, pod, config)
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    st = wait_exited(d, cid)
    assert (st.state, st.exit_code) == (api_pb2.CONTAINER_EXITED, 0), st.message
    return "\n".join(text for _stream, _tag, text in log_entries(Path(st.log_path)))


def test_env_value_that_is_not_utf8_reaches_the_container(cdaemon, handler):
    # a kubelet >= 1.36.2 passes a binary Secret's bytes as they are; the
    # spec (JSON) holds U+FFFD for each byte that is not UTF-8, as CRI-O's
    # and containerd's do
    d = cdaemon
    pod = run_pod(d, name=f"env-{handler}", handler=handler)
    config = container_config(d, command=["env"])
    config.envs.extend([api_pb2.KeyValue(key="BINARY", value=b"ok\xff\x80!"),
                        api_pb2.KeyValue(key="TEXT", value="h\u00e9 \u20ac".encode())])
    env = _output_of(d, pod, config).splitlines()
    assert "BINARY=ok\ufffd\ufffd!" in env and "TEXT=h\u00e9 \u20ac" in env


def test_zero_hugepage_limits_for_sizes_the_host_cannot_limit_run(cdaemon, handler):
    # the kubelet sends one limit per page size the node has, 0 where the pod
    # asks none; here hugetlb is only in the hybrid host's cgroup v2 hierarchy
    # (where nothing can enable it) and 64KB pages do not exist on x86
    d = cdaemon
    pod = run_pod(d, name=f"hp-{handler}", handler=handler)
    config = container_config(d, command=["true"])
    config.linux.resources.hugepage_limits.extend(
        api_pb2.HugepageLimit(page_size=size, limit=0) for size in ("2MB", "1GB", "64KB"))
    assert _output_of(d, pod, config) == ""
    if handler == "builtin" and "64KB" not in hugetlb.host_page_sizes():
        # a non-zero limit for a size the host lacks stays an error naming it
        config.metadata.name = "hp-64k"
        config.linux.resources.hugepage_limits[2].limit = 1 << 20
        code, msg = rpc_code(lambda: _output_of(d, pod, config))
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        # (the index is config.json's: the 0 limits before it may be left out)
        assert re.search(r"hugepageLimits\[\d\]: this host has no 64KB huge pages", msg)
