"""What the crash tests share (test_crash_failpoints.py, test_crash_random.py):
a daemon on a real CNI bridge with busybox pulled, the seven operations
driven as the kubelet drives them, the checks a restarted daemon must
pass, the kubelet's cleanup, and a census of everything a pod or container
can leave on the host (mounts, netns pins, links, IPAM files, cgroups,
processes, files under root and runroot, record temp files)."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import grpc

from crio_native._proto import api_pb2
from crio_native.failpoints import ENV
from tests.e2e import cni
from tests.e2e.daemon import Daemon
from tests.processes import live_descendants

BRIDGE = "crncrash0"
NET = "crn-crash"
SUBNET = "10.231.14.0/24"
CGROUP_TOP = "crncrash"            # the pods' cgroup parents lie below /crncrash
HEX_ID = re.compile(r"[0-9a-f]{64}")
RPC_TIMEOUT = 60
READY_TIMEOUT = 30.0


# ---- the daemon -----------------------------------------------------------------

def conflist(ipam_dir: Path) -> dict:
    return {"cniVersion": "1.0.0", "name": NET, "plugins": [
        {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False,
         "ipam": {"type": "host-local", "dataDir": str(ipam_dir),
                  "ranges": [[{"subnet": SUBNET}]], "routes": [{"dst": "0.0.0.0/0"}]}},
        {"type": "portmap", "capabilities": {"portMappings": True}}]}


def crash_daemon(base: Path) -> Daemon:
    d = Daemon(base, ["--cni-plugin-dir", cni.PLUGIN_DIR])
    d.ipam_dir = base / "ipam"
    d.network_dir.mkdir(parents=True, exist_ok=True)
    (d.network_dir / "10-crn-crash.conflist").write_text(json.dumps(conflist(d.ipam_dir)))
    d.pod_logs = base / "pod-logs"
    d.pod_logs.mkdir(exist_ok=True)
    return d


def start(d: Daemon, failpoint: str = "") -> float:
    """Start `d` (with `failpoint` armed to kill); seconds until it answered."""
    env_before = os.environ.get(ENV)
    if failpoint:
        os.environ[ENV] = f"{failpoint}=kill"
    else:
        os.environ.pop(ENV, None)
    try:
        began = time.monotonic()
        d.start()
        return time.monotonic() - began
    finally:
        if env_before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = env_before


def wait_killed(d: Daemon, timeout: float = 20.0) -> int:
    """The daemon's exit status once it died; the channel is dropped."""
    assert d.proc is not None
    code = d.proc.wait(timeout=timeout)
    d.proc = None
    if d.channel is not None:
        d.channel.close()
        d.channel = None
    return code


def pull(d: Daemon, image: str) -> None:
    d.images.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image)),
                       timeout=RPC_TIMEOUT)


# ---- the kubelet's requests ------------------------------------------------------------

def pod_config(d: Daemon, name: str = "crash",
               pid: int = api_pb2.POD) -> api_pb2.PodSandboxConfig:
    uid = f"uid-{name}"
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="default", uid=uid),
        hostname=name, log_directory=str(d.pod_logs / name))
    config.linux.cgroup_parent = f"/{CGROUP_TOP}/pod{uid}"
    opts = config.linux.security_context.namespace_options
    # pid POD: the pod's PID namespace is held by the infra (/pause) process
    opts.network, opts.pid, opts.ipc = api_pb2.POD, pid, api_pb2.POD
    return config


def run_pod(d: Daemon, config: api_pb2.PodSandboxConfig, timeout: float = RPC_TIMEOUT) -> str:
    return d.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=config),
                                   timeout=timeout).pod_sandbox_id


def container_request(d: Daemon, pod_id: str, pod: api_pb2.PodSandboxConfig,
                      name: str = "c") -> api_pb2.CreateContainerRequest:
    config = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name=name),
        image=api_pb2.ImageSpec(image=d.image_name),
        command=["sh", "-c", "echo started; exec sleep 1000"], log_path=f"{name}/0.log")
    return api_pb2.CreateContainerRequest(pod_sandbox_id=pod_id, config=config,
                                          sandbox_config=pod)


def create(d: Daemon, request: api_pb2.CreateContainerRequest,
           timeout: float = RPC_TIMEOUT) -> str:
    return d.runtime.CreateContainer(request, timeout=timeout).container_id


def start_container(d: Daemon, cid: str, timeout: float = RPC_TIMEOUT) -> None:
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=timeout)


def stop_container(d: Daemon, cid: str, grace: int, timeout: float = RPC_TIMEOUT) -> None:
    d.runtime.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=grace),
                            timeout=timeout)


def remove_container(d: Daemon, cid: str, timeout: float = RPC_TIMEOUT) -> None:
    d.runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid), timeout=timeout)


def stop_pod(d: Daemon, pod_id: str, timeout: float = RPC_TIMEOUT) -> None:
    d.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id),
                             timeout=timeout)


def remove_pod(d: Daemon, pod_id: str, timeout: float = RPC_TIMEOUT) -> None:
    d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id),
                               timeout=timeout)


def remove_pods_and_stop(d: Daemon) -> None:
    """A test's teardown: a daemon still running has its pods removed, and
    is stopped whatever the removal did."""
    if d.proc is not None:
        try:
            for pod in pods(d):
                remove_pod(d, pod.id)
        finally:
            d.stop()


def pods(d: Daemon) -> list[api_pb2.PodSandbox]:
    return list(d.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest(),
                                         timeout=RPC_TIMEOUT).items)


def containers(d: Daemon) -> list[api_pb2.Container]:
    return list(d.runtime.ListContainers(api_pb2.ListContainersRequest(),
                                         timeout=RPC_TIMEOUT).containers)


def container_status(d: Daemon, cid: str) -> api_pb2.ContainerStatus:
    return d.runtime.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid),
                                     timeout=RPC_TIMEOUT).status


def log_lines(d: Daemon, name: str = "c") -> list[str]:
    path = d.pod_logs / "crash" / name / "0.log"
    if not path.exists():
        return []
    return [line.split(" ", 3)[3] for line in path.read_text().splitlines()]


def wait_for(condition, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def wait_running(d: Daemon, cid: str) -> None:
    """Running, and its program has begun (the log line it writes first)."""
    wait_for(lambda: container_status(d, cid).state == api_pb2.CONTAINER_RUNNING
             and "started" in log_lines(d), what=f"container {cid[:12]} running")


# ---- what a restarted daemon must show ---------------------------------------------------

@dataclass
class Before:
    """What existed before the cut operation (None: not made yet)."""
    pod_id: str | None = None
    container_id: str | None = None
    running: bool = False             # the container ran before the cut
    notes: list[str] = field(default_factory=list)


def prepare(op: str, d: Daemon, grace: int = 0,
            pid: int = api_pb2.POD) -> tuple[Before, Callable[[], object]]:
    """Make what the operation needs, on the daemon that is to die; return
    what existed and the call that dies."""
    pod = pod_config(d, pid=pid)
    before = Before()
    if op == "sandbox.run":
        return before, lambda: run_pod(d, pod)
    before.pod_id = run_pod(d, pod)
    request = container_request(d, before.pod_id, pod)
    if op == "container.create":
        return before, lambda: create(d, request)
    cid = before.container_id = create(d, request)
    if op == "container.start":
        return before, lambda: start_container(d, cid)
    start_container(d, cid)
    wait_running(d, cid)
    before.running = True
    if op == "container.stop":
        return before, lambda: stop_container(d, cid, grace)
    return before, {"container.remove": lambda: remove_container(d, cid),
                    "sandbox.stop": lambda: stop_pod(d, before.pod_id),
                    "sandbox.remove": lambda: remove_pod(d, before.pod_id)}[op]


def check_pods(d: Daemon) -> None:
    """Never a READY pod without its network: a READY pod has its IP on
    eth0 inside its pinned network namespace."""
    for pod in pods(d):
        if pod.state != api_pb2.SANDBOX_READY:
            continue
        st = d.runtime.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(
            pod_sandbox_id=pod.id, verbose=True), timeout=RPC_TIMEOUT)
        ip = st.status.network.ip
        assert ip, f"pod {pod.id[:12]} is READY without an IP"
        pins = json.loads(st.info["info"])["pins"]
        out = cni.in_netns(pins["net"], "ip", "-o", "-4", "addr", "show", "eth0").stdout
        assert f"inet {ip}/" in out, f"pod {pod.id[:12]} is READY, its eth0 lacks {ip}: {out}"


def check_containers(d: Daemon, before: Before) -> None:
    """No lost container and no lost exit code: one that ran before the cut
    is still known and is RUNNING, or EXITED with the code of the signal
    that stopped it (never the unknown exit, 255)."""
    by_id = {c.id: c for c in containers(d)}
    for cid in by_id:
        st = container_status(d, cid)
        if st.state == api_pb2.CONTAINER_EXITED and before.running:
            assert st.exit_code in (137, 143), (cid[:12], st.exit_code, st.reason, st.message)
            assert st.finished_at > 0
        if st.state == api_pb2.CONTAINER_RUNNING:
            assert "started" in log_lines(d) or wait_for(
                lambda: "started" in log_lines(d), what="the container's first log line")
    if before.running and before.container_id not in by_id:
        assert False, "a running container was lost"


def kubelet_cleanup(d: Daemon) -> None:
    """What the kubelet does with every pod it no longer wants: stop it,
    then remove it (its containers with it)."""
    for pod in pods(d):
        stop_pod(d, pod.id)
        st = d.runtime.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod.id),
                                        timeout=RPC_TIMEOUT).status
        assert st.state == api_pb2.SANDBOX_NOTREADY and not st.network.ip
        remove_pod(d, pod.id)
    assert pods(d) == [] and containers(d) == []


# ---- the census ------------------------------------------------------------------------

def _mounts_under(base: Path) -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f if line.split()[4].startswith(str(base) + "/")}


# the daemon's own bookkeeping, not a pod's or a container's: the marker a
# clean stop leaves in the runroot (crio_native/state/boot.py)
OWN_FILES = {"clean.shutdown"}


def _files_under(*tops: Path) -> set[str]:
    """Every file, and every directory named by a pod or container id."""
    out = set()
    for top in tops:
        for dirpath, dirs, files in os.walk(top):
            out.update(os.path.join(dirpath, f) for f in files if f not in OWN_FILES)
            out.update(os.path.join(dirpath, x) for x in dirs if HEX_ID.fullmatch(x))
    return out


def _ipam(ipam_dir: Path) -> set[str]:
    d = ipam_dir / NET
    if not d.is_dir():
        return set()
    return {p.name for p in d.iterdir() if p.name != "lock"
            and not p.name.startswith("last_reserved_ip")}


def _cgroups() -> set[str]:
    out = set()
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        top = hierarchy / CGROUP_TOP
        if top.is_dir():
            out.update(dirpath for dirpath, _, _ in os.walk(top))
        for dirpath, dirs, _ in os.walk(hierarchy):
            out.update(os.path.join(dirpath, x) for x in dirs if x.startswith("crio-"))
    return out


def _netns_pins(base: Path) -> set[str]:
    ns = base / "run" / "ns"
    return {str(p) for p in ns.rglob("*") if p.is_file()} if ns.is_dir() else set()


def census(d: Daemon) -> dict[str, set[str]]:
    """What is on the host; the daemon's own process, if it runs, left out."""
    own = f"{d.proc.pid} (" if d.proc is not None else "-"
    return {"mounts": _mounts_under(d.base), "pins": _netns_pins(d.base),
            # the bridge stays by design (the bridge plugin never removes it)
            "links": set(os.listdir("/sys/class/net")) - {BRIDGE}, "ipam": _ipam(d.ipam_dir),
            "cgroups": _cgroups(),
            "processes": {p for p in live_descendants() if not p.startswith(own)},
            "files": _files_under(d.base / "root", d.base / "run")}


def leaks(before: dict[str, set[str]], after: dict[str, set[str]]) -> dict[str, list[str]]:
    out = {}
    for kind, now in after.items():
        new = now - before[kind]
        if new:
            out[kind] = sorted(new)
    return out


def temp_files(d: Daemon) -> list[str]:
    """`.<id>.json.<random>`: the temp file of a record write cut short."""
    return sorted(str(p) for sub in ("sandboxes", "containers")
                  for p in (d.base / "root" / sub).glob(".*.json.*"))


def wait_processes_settled(d: Daemon, baseline: set[str], timeout: float = 10.0) -> None:
    """Processes a kill left may take a moment to end (a monitor drains its
    container's output): wait until none is left beyond the baseline."""
    deadline = time.monotonic() + timeout
    while census(d)["processes"] - baseline and time.monotonic() < deadline:
        time.sleep(0.05)


def delete_bridge() -> None:
    subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)


def expect_cut(call) -> grpc.StatusCode | None:
    """Run the operation the daemon dies in: it fails (the connection
    drops) or, killed just after its answer went out, succeeds."""
    try:
        call()
    except grpc.RpcError as e:
        return e.code()
    return None


def sigkilled(code: int) -> bool:
    return code == -signal.SIGKILL
