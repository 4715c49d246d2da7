"""What the CRI benchmarks (cri_containers, streaming) share: one run's
host set-up (a loopback registry with the pause image, a CNI bridge network
of their own, a temp dir) and its leak checks afterwards, the peers under
test and the CRI calls that make their pods, the containerd peer run start
to finish, and the report lines."""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ratio  # noqa: E402
from bench.peers import Containerd, cgroup_dirs, containerd_missing, remove_new_cgroups  # noqa: E402,E501
from bench.pod import own_cgroup_parent  # noqa: E402
from crio_native._proto import api_pb2  # noqa: E402
from tests.e2e import cni  # noqa: E402
from tests.e2e.daemon import CriEndpoint, Daemon  # noqa: E402
from tests.fixtures.oci_builder import ImageBuilder, Pusher  # noqa: E402
from tests.fixtures.registry import Registry, running_registry  # noqa: E402

RPC_TIMEOUT = 120

# A bridge and subnet of its own (else as tests/e2e/cni.py), so that e2e
# tests running on the host at the same time keep theirs.
BRIDGE = "crnbench0"
SUBNET = "10.231.9.0/24"
COMMON_PARENT = "crn-bench-pods"     # bench.pod.own_cgroup_parent's last element
PAUSE_REPO = "bench/pause"

# crio-native's text log format (crio_native/logsetup.py): `level=error ...`
DAEMON_LOG_MARKERS = ("level=error", "level=warning", "Traceback")
CONTAINERD_LOG_MARKERS = ("level=error",)

R = TypeVar("R")
Helpers = Callable[[dict], tuple[list[int], list[int]]]


# ---- the peers and their pods ----------------------------------------------

@dataclass
class Peer:
    """One runtime under test: a CRI endpoint, the handler its pods ask for,
    the cgroup parent they get, and how to find its helper processes."""

    label: str
    endpoint: CriEndpoint                  # Daemon or Containerd
    image: str
    handler: str = ""
    cgroup_parent: str = ""
    helpers: Helpers | None = None
    ids: set[str] = field(default_factory=set)    # every pod and container made

    @property
    def runtime(self):
        return self.endpoint.runtime


def pod_config(peer: Peer, name: str, logs: Path) -> api_pb2.PodSandboxConfig:
    log_dir = logs / peer.label / name
    log_dir.mkdir(parents=True, exist_ok=True)
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="bench",
                                            uid=f"uid-{name}", attempt=0),
        hostname=name, log_directory=str(log_dir))
    if peer.cgroup_parent:
        config.linux.cgroup_parent = peer.cgroup_parent
    config.linux.security_context.namespace_options.pid = api_pb2.CONTAINER
    return config


# The seccomp profile every peer's containers get, named in the request:
# an empty field means RuntimeDefault to crio-native (as CRI-O's
# seccomp_use_default_when_empty) but unconfined to containerd, and runc
# compiles and loads a RuntimeDefault filter at every create and exec, so
# leaving it empty would compare unequal work.
SECCOMP_PROFILES = {"RuntimeDefault": api_pb2.SecurityProfile.RuntimeDefault,
                    "Unconfined": api_pb2.SecurityProfile.Unconfined}


def seccomp_profile() -> str:
    """CRN_BENCH_SECCOMP: RuntimeDefault (the default: what a kubelet with
    SeccompDefault asks for) or Unconfined."""
    name = os.environ.get("CRN_BENCH_SECCOMP", "RuntimeDefault")
    if name not in SECCOMP_PROFILES:
        raise SystemExit(f"CRN_BENCH_SECCOMP: want one of {sorted(SECCOMP_PROFILES)}, "
                         f"got {name!r}")
    return name


def container_config(image: str, command: Sequence[str]) -> api_pb2.ContainerConfig:
    config = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name="c", attempt=0),
        image=api_pb2.ImageSpec(image=image), command=list(command), log_path="c.log")
    config.linux.security_context.seccomp.profile_type = SECCOMP_PROFILES[seccomp_profile()]
    return config


def start_pod(peer: Peer, config: api_pb2.PodSandboxConfig,
              command: Sequence[str] = ("sleep", "1000")) -> tuple[str, str]:
    """RunPodSandbox + CreateContainer + StartContainer: (pod id, container id)."""
    rt = peer.runtime
    pod = rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(
        config=config, runtime_handler=peer.handler), timeout=RPC_TIMEOUT).pod_sandbox_id
    peer.ids.add(pod)
    cid = rt.CreateContainer(api_pb2.CreateContainerRequest(
        pod_sandbox_id=pod, config=container_config(peer.image, command),
        sandbox_config=config), timeout=RPC_TIMEOUT).container_id
    peer.ids.add(cid)
    rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=RPC_TIMEOUT)
    return pod, cid


def alternating_pod_starts(peers: list[Peer], logs: Path, cycles: int,
                           warmup: int) -> dict[str, list[float]]:
    """Seconds of each pod start (start_pod) per peer, the peers taking
    turns in alternating order so drift hits all alike; each pod removed
    after its start, the first `warmup` rounds not counted."""
    samples: dict[str, list[float]] = {p.label: [] for p in peers}
    for i in range(warmup + cycles):
        order = peers if i % 2 == 0 else list(reversed(peers))
        for peer in order:
            # pod names from the peer's place, not its label: they become hostnames
            config = pod_config(peer, f"p{peers.index(peer)}-{i}", logs)
            began = time.perf_counter()
            pod, _ = start_pod(peer, config)
            elapsed = time.perf_counter() - began
            remove_pod(peer, pod)
            if i >= warmup:
                samples[peer.label].append(elapsed)
    return samples


def remove_pod(peer: Peer, pod: str) -> None:
    peer.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod),
                                timeout=RPC_TIMEOUT)
    peer.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod),
                                  timeout=RPC_TIMEOUT)


def remove_all_pods(peer: Peer) -> int:
    pods = peer.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest(),
                                       timeout=RPC_TIMEOUT).items
    for pod in pods:
        remove_pod(peer, pod.id)
    return len(pods)


def pull_images(endpoint: CriEndpoint, *refs: str) -> None:
    for ref in refs:
        endpoint.images.PullImage(api_pb2.PullImageRequest(
            image=api_pb2.ImageSpec(image=ref)), timeout=RPC_TIMEOUT)


def crio_native_daemon(base: Path, netdir: Path) -> Daemon:
    return Daemon(base, ["--cni-plugin-dir", cni.PLUGIN_DIR, "--cni-config-dir", str(netdir)])


# ---- one run on the host ---------------------------------------------------

@dataclass
class BenchRun:
    """One benchmark run: where it keeps its files, its registry (holding the
    pause image), its CNI network, and what each peer gave."""

    tmp: Path
    registry: Registry
    pusher: Pusher
    results: dict[str, object] = field(default_factory=dict)
    status: int = 0

    @property
    def netdir(self) -> Path:
        return self.tmp / "net.d"

    @property
    def logs(self) -> Path:
        return self.tmp / "logs"

    @property
    def pause(self) -> str:
        return self.image(PAUSE_REPO)

    def image(self, repo: str) -> str:
        return f"{self.registry.host}/{repo}:1"

    def record(self, label: str, got: object | None) -> None:
        """A peer's results, or None where it failed (the run then exits 1)."""
        if got is None:
            self.status = 1
        else:
            self.results[label] = got


@contextmanager
def bench_run(prefix: str) -> Iterator[BenchRun]:
    """A temp dir, a loopback registry with the pause image, the bench's CNI
    network; after the body, the check that the run left nothing on the host
    (not after a failure, where the body's own error says more); the bridge
    deleted in any case."""
    before = host_state()
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp, running_registry() as registry:
        run = BenchRun(Path(tmp), registry, Pusher(registry.url))
        write_network(run.netdir, run.tmp / "ipam")
        run.pusher.push_image(PAUSE_REPO, "1", ImageBuilder(
            cmd=["/bin/sleep", "2147483647"]).busybox().build())
        try:
            yield run
            check_leftovers(before)
        finally:
            delete_bridge()


def run_containerd(run: BenchRun, image: str, measure: Callable[[Peer, Path], R | None],
                   helpers: Callable[[Containerd], Helpers] | None = None,
                   pull: bool = True) -> None:
    """containerd as the peer, if installed: start it, pull the pause image
    and `image` (unless not `pull`: `measure` pulls), `measure`, stop it;
    its results recorded in `run`."""
    missing = containerd_missing()
    if missing:
        print(f"containerd: skipped, {missing}")
        return
    proc = Containerd(run.pause, run.registry.host, cni.PLUGIN_DIR, str(run.netdir))
    cgroups_before = cgroup_dirs()
    peer = Peer("containerd", proc, image, cgroup_parent=own_cgroup_parent(),
                helpers=helpers(proc) if helpers else None)
    results = None
    try:
        proc.start()
        if pull:
            pull_images(proc, run.pause, image)
        results = measure(peer, run.logs)
        if results is None:
            print("  containerd log tail:\n" + (proc.base / "containerd.log").read_text()[-3000:])
    finally:
        log = proc.base / "containerd.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        proc.stop()
        check_cgroups(peer, cgroups_before)
        log_problems("containerd", text, CONTAINERD_LOG_MARKERS)
    run.record("containerd", results)


def measure_guarded(peer: Peer, body: Callable[[], R]) -> R | None:
    """`body` under the peer's heading; a failure printed (the other peers go
    on), and the pods left removed in any case."""
    print(f"{peer.label}:")
    try:
        return body()
    except Exception:                         # noqa: BLE001 - report, go on with the others
        print(f"  FAILED:\n{traceback.format_exc()}")
        return None
    finally:
        try:
            left = remove_all_pods(peer)
            if left:
                print(f"  removed {left} pods left over")
        except Exception as e:                # noqa: BLE001
            print(f"  warning: could not remove the pods left: {e}")


# ---- leftovers ---------------------------------------------------------------

def log_problems(label: str, text: str, markers: tuple[str, ...]) -> None:
    lines = [line for line in text.splitlines() if any(m in line for m in markers)]
    print(f"  {label} log: {len(lines)} lines with {'/'.join(markers)}")
    for line in lines[:5]:
        print(f"    {line[:300]}")


def check_cgroups(peer: Peer, before: set[str]) -> None:
    """Report and remove the cgroups of this peer's pods and containers still
    there (other users of the host may be making cgroups of their own)."""
    def ours(path: str) -> bool:
        # runc also makes the missing ancestors of the parent in every
        # v1 hierarchy (/sys/fs/cgroup/<controller>/<path>)
        below_mount = "/" + "/".join(path.split("/")[5:])
        ancestor = peer.cgroup_parent.startswith(below_mount.rstrip("/") + "/")
        return (ancestor or COMMON_PARENT in path
                or any(i in path for i in peer.ids))

    left = sorted(p for p in cgroup_dirs() - before if ours(p))
    # containerd (runc) leaves the empty common parent of its pods' cgroups
    # and the ancestors it made; a pod's or container's own is a leak
    leaked = [p for p in left if any(i in p for i in peer.ids)]
    if leaked:
        print(f"  LEAK: {peer.label} left {len(leaked)} cgroup dirs, e.g. {leaked[:3]}")
    remove_new_cgroups(before, ours)
    still = [p for p in cgroup_dirs() - before if ours(p)]
    print(f"  cgroups of {peer.label}: {len(leaked)} of its pods/containers left,"
          f" {len(left) - len(leaked)} empty parents removed"
          + (f", {len(still)} STILL THERE" if still else ", none left"))


def write_network(netdir: Path, ipam: Path) -> None:
    conflist = cni.bridge_conflist(ipam)
    conflist["name"] = "crn-bench"
    bridge = conflist["plugins"][0]
    bridge["bridge"] = BRIDGE
    bridge["ipam"]["ranges"] = [[{"subnet": SUBNET}]]
    netdir.mkdir(parents=True, exist_ok=True)
    (netdir / "10-crn-bench.conflist").write_text(json.dumps(conflist))


def link_names(*selector: str) -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show", *selector],
                         capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if line}


def delete_bridge() -> None:
    subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)


def host_state() -> dict[str, set[str]]:
    """What this run may leave: mounts below its temp dirs (containerd's
    included), netns in /run/netns (containerd's cni-*), links on the bridge."""
    with open("/proc/self/mountinfo") as f:
        mounts = {line.split()[4] for line in f if line.split()[4].startswith("/tmp/crn-bench-")}
    netns = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    return {"mounts": mounts, "netns": netns, "bridge ports": link_names("master", BRIDGE)}


def check_leftovers(before: dict[str, set[str]]) -> None:
    after = host_state()
    clean = True
    for kind in before:
        new = sorted(after[kind] - before[kind])
        if new:
            clean = False
            print(f"  LEAK: {len(new)} new {kind}: {new[:5]}")
    delete_bridge()
    if BRIDGE in link_names():
        clean = False
        print(f"  LEAK: cannot delete the bridge {BRIDGE}")
    print("  host check: " + ("no mount, netns, veth, bridge or cgroup of this run left"
                              if clean else "see LEAK lines"))


# ---- report lines ------------------------------------------------------------

def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, min(len(ordered) - 1, int(round(len(ordered) * q)) - 1))]


def report(label: str, samples: list[float], width: int = 34, decimals: int = 1) -> None:
    """p50 and p95 in milliseconds."""
    print(f"  {label:<{width}} p50 {statistics.median(samples) * 1000:8.{decimals}f} ms"
          f"   p95 {percentile(samples, 0.95) * 1000:8.{decimals}f} ms   n={len(samples)}")


def print_machine(workload: str) -> None:
    print(f"  machine: {platform.node()} {platform.release()}, {os.cpu_count()} cpus;"
          f" {workload}; load average {os.getloadavg()[0]:.2f}")


def print_load_at_end() -> None:
    print(f"  load average at the end: {os.getloadavg()[0]:.2f} (1 min)")


def print_ratios(results: dict[str, R], issue: str,
                 figures: Callable[[R, R], dict[str, tuple[float, float]]],
                 targets: dict[str, float]) -> None:
    """Each crio-native peer's figures over containerd's, with the verdict
    against `targets`; nothing without containerd's results."""
    peer = results.get("containerd")
    if peer is None:
        return
    print(f"ratios crio-native/containerd ({issue} targets):")
    for label, ours in results.items():
        if label == "containerd":
            continue
        for name, (a, b) in figures(ours, peer).items():
            ratio(f"{label} {name}", a, b, target=targets.get(name))
