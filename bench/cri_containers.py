"""Containers through the CRI, crio-native (built-in runtime and runc) vs
containerd (its default runc, shim v2) in the same run, driven by the same
gRPC client code, with the same busybox image from a loopback registry and
the same CNI bridge network (issue #6):

(a) pod start to running container: RunPodSandbox + CreateContainer +
    StartContainer of busybox `sleep 1000`, then StopPodSandbox +
    RemovePodSandbox; p50/p95 of the start part and of the whole cycle;
(b) ExecSync of `true` in a running container, p50/p95;
(c) memory with N running pods: the daemon plus every per-pod/per-container
    helper (crio-native-monitor; containerd-shim-runc-v2), never the
    containers' own processes (nor containerd's pause), VmRSS and Pss,
    per pod.

Environment: CRN_BENCH_PODS (N, default 50), CRN_BENCH_CYCLES (default 30),
CRN_BENCH_EXECS (default 200)."""
from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ratio  # noqa: E402
from bench.peers import Containerd, cgroup_dirs, containerd_missing, remove_new_cgroups  # noqa: E402,E501
from bench.pod import own_cgroup_parent  # noqa: E402
from crio_native._proto import api_pb2  # noqa: E402
from tests.e2e import cni  # noqa: E402
from tests.e2e.daemon import Daemon  # noqa: E402
from tests.fixtures.oci_builder import ImageBuilder, Pusher  # noqa: E402
from tests.fixtures.registry import running_registry  # noqa: E402

PODS = int(os.environ.get("CRN_BENCH_PODS", "50"))
CYCLES = int(os.environ.get("CRN_BENCH_CYCLES", "30"))
EXECS = int(os.environ.get("CRN_BENCH_EXECS", "200"))
WARMUP_CYCLES = 3
WARMUP_EXECS = 10
SETTLE_S = 2.0          # after the last of the N pods started, before reading memory
RPC_TIMEOUT = 120

# Issue #6's targets, crio-native / containerd.
# A bridge and subnet of its own (else as tests/e2e/cni.py), so that e2e
# tests running on the host at the same time keep theirs.
BRIDGE = "crnbench0"
SUBNET = "10.231.9.0/24"
COMMON_PARENT = "crn-bench-pods"     # bench.pod.own_cgroup_parent's last element

TARGETS = {"pod start p50": 0.5, "ExecSync p50": 0.3, "Pss per pod": 0.25,
           "VmRSS per pod": 0.25}


# ---- what is measured --------------------------------------------------------

@dataclass
class Results:
    start: list[float] = field(default_factory=list)
    cycle: list[float] = field(default_factory=list)
    exec_sync: list[float] = field(default_factory=list)
    memory: dict[str, float] = field(default_factory=dict)   # see measure_memory


@dataclass
class Peer:
    """One runtime under test: a CRI endpoint, the handler its pods ask for,
    the cgroup parent they get, and how to find its helper processes."""

    label: str
    endpoint: object                       # Daemon or Containerd
    image: str
    handler: str = ""
    cgroup_parent: str = ""
    helpers: Callable[[dict], tuple[list[int], list[int]]] | None = None
    ids: set[str] = field(default_factory=set)    # every pod and container made

    @property
    def runtime(self):
        return self.endpoint.runtime


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, min(len(ordered) - 1, int(round(len(ordered) * q)) - 1))]


def report(label: str, samples: list[float]) -> None:
    print(f"  {label:<34} p50 {statistics.median(samples) * 1000:8.1f} ms"
          f"   p95 {percentile(samples, 0.95) * 1000:8.1f} ms   n={len(samples)}")


# ---- the CRI calls, the same for every peer ---------------------------------

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


def container_config(image: str, command: list[str]) -> api_pb2.ContainerConfig:
    return api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name="c", attempt=0),
        image=api_pb2.ImageSpec(image=image), command=command, log_path="c.log")


def start_pod(peer: Peer, config: api_pb2.PodSandboxConfig) -> tuple[str, str]:
    """RunPodSandbox + CreateContainer + StartContainer: (pod id, container id)."""
    rt = peer.runtime
    pod = rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(
        config=config, runtime_handler=peer.handler), timeout=RPC_TIMEOUT).pod_sandbox_id
    peer.ids.add(pod)
    cid = rt.CreateContainer(api_pb2.CreateContainerRequest(
        pod_sandbox_id=pod, config=container_config(peer.image, ["sleep", "1000"]),
        sandbox_config=config), timeout=RPC_TIMEOUT).container_id
    peer.ids.add(cid)
    rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=RPC_TIMEOUT)
    return pod, cid


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


# ---- (a) pod start to running container, and the whole cycle ---------------

def measure_cycles(peer: Peer, logs: Path, out: Results) -> None:
    for i in range(WARMUP_CYCLES + CYCLES):
        config = pod_config(peer, f"cycle{i}", logs)
        began = time.perf_counter()
        pod, _ = start_pod(peer, config)
        started = time.perf_counter()
        remove_pod(peer, pod)
        if i >= WARMUP_CYCLES:
            out.start.append(started - began)
            out.cycle.append(time.perf_counter() - began)
    report("start (run+create+start)", out.start)
    report("cycle (start, stop+remove)", out.cycle)


# ---- (b) ExecSync ----------------------------------------------------------

def measure_exec_sync(peer: Peer, logs: Path, out: Results) -> None:
    pod, cid = start_pod(peer, pod_config(peer, "exec", logs))
    try:
        request = api_pb2.ExecSyncRequest(container_id=cid, cmd=["true"], timeout=10)
        for i in range(WARMUP_EXECS + EXECS):
            began = time.perf_counter()
            reply = peer.runtime.ExecSync(request, timeout=RPC_TIMEOUT)
            elapsed = time.perf_counter() - began
            if reply.exit_code != 0:
                raise RuntimeError(f"ExecSync true: exit code {reply.exit_code}, "
                                   f"stderr {reply.stderr[-300:]!r}")
            if i >= WARMUP_EXECS:
                out.exec_sync.append(elapsed)
    finally:
        remove_pod(peer, pod)
    report("ExecSync true", out.exec_sync)


# ---- (c) memory with N running pods ----------------------------------------

@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    exe: str          # basename of /proc/PID/exe
    argv: tuple[str, ...]


def processes() -> dict[int, Proc]:
    procs = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
            exe = os.readlink(f"/proc/{name}/exe")
            argv = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
        except OSError:         # gone, or a kernel thread (no exe)
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        procs[int(name)] = Proc(int(name), ppid, os.path.basename(exe).split(" (")[0],
                                tuple(a.decode(errors="replace") for a in argv if a))
    return procs


def descendants(procs: dict[int, Proc], roots: set[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p.pid)
    found, todo = set(), list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def argument(argv: tuple[str, ...], flag: str) -> str:
    for i, arg in enumerate(argv[:-1]):
        if arg == flag:
            return argv[i + 1]
    return ""


def crio_native_helpers(daemon: Daemon) -> Callable[[dict], tuple[list[int], list[int]]]:
    """The daemon and the monitors whose --state-dir lies in its runroot (they
    daemonize, so they are no children of the daemon); the containers are the
    monitors' descendants."""
    def find(procs: dict[int, Proc]) -> tuple[list[int], list[int]]:
        monitors = {p.pid for p in procs.values() if p.exe == "crio-native-monitor"
                    and argument(p.argv, "--state-dir").startswith(str(daemon.base) + "/")}
        return split_helpers(procs, daemon.proc.pid, monitors)
    return find


def containerd_helpers(peer: Containerd) -> Callable[[dict], tuple[list[int], list[int]]]:
    """containerd and the shims it started for this socket (they daemonize);
    the containers, pause included, are the shims' descendants."""
    def find(procs: dict[int, Proc]) -> tuple[list[int], list[int]]:
        shims = {p.pid for p in procs.values() if p.exe == "containerd-shim-runc-v2"
                 and argument(p.argv, "-address") == peer.socket}
        return split_helpers(procs, peer.proc.pid, shims)
    return find


def split_helpers(procs: dict[int, Proc], daemon_pid: int,
                  helpers: set[int]) -> tuple[list[int], list[int]]:
    """(helper pids: the daemon, its lasting children, `helpers`; the
    container pids below the helpers)."""
    containers = descendants(procs, helpers) - helpers
    daemon_side = {daemon_pid} | (descendants(procs, {daemon_pid}) - containers)
    return sorted(daemon_side | helpers), sorted(containers)


def memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, Pss) in KiB."""
    rss = re.search(r"^VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text(), re.M)
    pss = re.search(r"^Pss:\s+(\d+)", Path(f"/proc/{pid}/smaps_rollup").read_text(), re.M)
    return int(rss[1]), int(pss[1])


def helper_memory(peer: Peer) -> dict[str, float]:
    procs = processes()
    helpers, containers = peer.helpers(procs)
    daemon_pid = peer.endpoint.proc.pid
    totals = {"daemon_rss": 0, "daemon_pss": 0, "helpers_rss": 0, "helpers_pss": 0}
    for pid in helpers:
        rss, pss = memory_kib(pid)
        side = "daemon" if pid == daemon_pid else "helpers"
        totals[f"{side}_rss"] += rss
        totals[f"{side}_pss"] += pss
    names = sorted({procs[p].exe for p in helpers if p != daemon_pid})
    return {**totals, "helper_count": len(helpers) - 1, "container_count": len(containers),
            "helper_names": ",".join(names) or "-"}


def measure_memory(peer: Peer, logs: Path, out: Results) -> None:
    idle = helper_memory(peer)
    pods = []
    began = time.perf_counter()
    try:
        for i in range(PODS):
            pods.append(start_pod(peer, pod_config(peer, f"rss{i}", logs))[0])
        started = time.perf_counter() - began
        time.sleep(SETTLE_S)
        busy = helper_memory(peer)
    finally:
        began_removal = time.perf_counter()
        for pod in pods:
            remove_pod(peer, pod)
        removed = time.perf_counter() - began_removal
    print(f"  {PODS} pods started in {started:.1f} s, removed in {removed:.1f} s;"
          f" {busy['helper_count']} helper processes ({busy['helper_names']}),"
          f" {busy['container_count']} container processes left out")
    # Pss of the daemon moves with whoever else maps the same files (other
    # Python processes of this venv, other containerds), so its growth with
    # N is printed apart, and the helpers alone per pod as well.
    for kind in ("rss", "pss"):
        daemon, helpers = busy[f"daemon_{kind}"], busy[f"helpers_{kind}"]
        out.memory[f"{kind}_per_pod"] = (daemon + helpers) / PODS
        out.memory[f"{kind}_helpers_per_pod"] = helpers / PODS
        name = "VmRSS" if kind == "rss" else "Pss  "
        print(f"  {name} daemon {daemon / 1024:6.1f} MiB"
              f" (before the pods {idle[f'daemon_{kind}'] / 1024:5.1f})"
              f"  helpers {helpers / 1024:6.1f} MiB"
              f"  (daemon+helpers)/N {(daemon + helpers) / PODS / 1024:6.2f} MiB"
              f"  helpers/N {helpers / PODS / 1024:6.2f} MiB")


# ---- one peer, start to finish ----------------------------------------------

def measure(peer: Peer, logs: Path) -> Results | None:
    print(f"{peer.label}:")
    out = Results()
    try:
        peer.endpoint.images.PullImage(api_pb2.PullImageRequest(
            image=api_pb2.ImageSpec(image=peer.image)), timeout=RPC_TIMEOUT)
        measure_cycles(peer, logs, out)
        measure_exec_sync(peer, logs, out)
        measure_memory(peer, logs, out)
        return out
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


def run_crio_native(label: str, handler: str, base: Path, netdir: Path, image: str,
                    logs: Path) -> Results | None:
    daemon = Daemon(base, ["--cni-plugin-dir", cni.PLUGIN_DIR, "--cni-config-dir", str(netdir)])
    cgroups_before = cgroup_dirs()
    peer = Peer(label, daemon, image, handler=handler, helpers=crio_native_helpers(daemon))
    try:
        daemon.start()
        results = measure(peer, logs)
        if results is None:
            print("  daemon log tail:\n" + daemon.log()[-3000:])
        return results
    finally:
        daemon.stop()
        check_cgroups(peer, cgroups_before)
        log_problems(label, daemon.log(), ("ERROR", "WARNING", "Traceback"))


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


def run_containerd(registry_host: str, pause: str, netdir: Path, image: str,
                   logs: Path) -> Results | None:
    peer_proc = Containerd(pause, registry_host, cni.PLUGIN_DIR, str(netdir))
    cgroups_before = cgroup_dirs()
    peer = Peer("containerd", peer_proc, image, cgroup_parent=own_cgroup_parent(),
                helpers=containerd_helpers(peer_proc))
    try:
        peer_proc.start()
        peer_proc.images.PullImage(api_pb2.PullImageRequest(
            image=api_pb2.ImageSpec(image=pause)), timeout=RPC_TIMEOUT)
        results = measure(peer, logs)
        if results is None:
            print("  containerd log tail:\n"
                  + (peer_proc.base / "containerd.log").read_text()[-3000:])
        return results
    finally:
        log = peer_proc.base / "containerd.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        peer_proc.stop()
        check_cgroups(peer, cgroups_before)
        log_problems("containerd", text, ("level=error",))


# ---- leftovers and the summary ----------------------------------------------

def write_network(netdir: Path, ipam: Path) -> None:
    conflist = cni.bridge_conflist(ipam)
    conflist["name"] = "crn-bench"
    bridge = conflist["plugins"][0]
    bridge["bridge"] = BRIDGE
    bridge["ipam"]["ranges"] = [[{"subnet": SUBNET}]]
    netdir.mkdir(parents=True, exist_ok=True)
    (netdir / "10-crn-bench.conflist").write_text(json.dumps(conflist))


def links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if line}


def host_state() -> dict[str, set[str]]:
    """What this run may leave: mounts below its temp dirs (containerd's
    included), netns in /run/netns (containerd's cni-*), links on the bridge."""
    with open("/proc/self/mountinfo") as f:
        mounts = {line.split()[4] for line in f if line.split()[4].startswith("/tmp/crn-bench-")}
    netns = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    out = subprocess.run(["ip", "-o", "link", "show", "master", BRIDGE],
                         capture_output=True, text=True).stdout
    ports = {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if line}
    return {"mounts": mounts, "netns": netns, "bridge ports": ports}


def check_leftovers(before: dict[str, set[str]]) -> None:
    after = host_state()
    clean = True
    for kind in before:
        new = sorted(after[kind] - before[kind])
        if new:
            clean = False
            print(f"  LEAK: {len(new)} new {kind}: {new[:5]}")
    subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
    if BRIDGE in links():
        clean = False
        print(f"  LEAK: cannot delete the bridge {BRIDGE}")
    print("  host check: " + ("no mount, netns, veth, bridge or cgroup of this run left"
                              if clean else "see LEAK lines"))


def summary(results: dict[str, Results]) -> None:
    peer = results.get("containerd")
    if peer is None:
        return
    print("ratios crio-native/containerd (issue #6 targets):")
    for label, ours in results.items():
        if label == "containerd":
            continue
        figures = {
            "pod start p50": (statistics.median(ours.start), statistics.median(peer.start)),
            "pod start p95": (percentile(ours.start, .95), percentile(peer.start, .95)),
            "cycle p50": (statistics.median(ours.cycle), statistics.median(peer.cycle)),
            "ExecSync p50": (statistics.median(ours.exec_sync),
                             statistics.median(peer.exec_sync)),
            "ExecSync p95": (percentile(ours.exec_sync, .95), percentile(peer.exec_sync, .95)),
            "Pss per pod": (ours.memory["pss_per_pod"], peer.memory["pss_per_pod"]),
            "VmRSS per pod": (ours.memory["rss_per_pod"], peer.memory["rss_per_pod"]),
            "Pss of helpers per pod": (ours.memory["pss_helpers_per_pod"],
                                       peer.memory["pss_helpers_per_pod"]),
            "VmRSS of helpers per pod": (ours.memory["rss_helpers_per_pod"],
                                         peer.memory["rss_helpers_per_pod"]),
        }
        for name, (a, b) in figures.items():
            target = TARGETS.get(name)
            verdict = ""
            if target is not None:
                verdict = f"   target <= {target}x: {'met' if a / b <= target else 'NOT met'}"
            ratio(f"{label} {name}", a, b)
            if verdict:
                print(f"  {'':<8}{verdict.strip()}")


def run() -> int:
    if os.geteuid() != 0:
        print("  skipped: needs root")
        return 0
    print(f"  machine: {platform.node()} {platform.release()}, {os.cpu_count()} cpus;"
          f" N={PODS} pods, {CYCLES} cycles (+{WARMUP_CYCLES} warm-up),"
          f" {EXECS} ExecSync (+{WARMUP_EXECS}); load average {os.getloadavg()[0]:.2f}")
    before = host_state()
    results: dict[str, Results] = {}
    status = 0
    with tempfile.TemporaryDirectory(prefix="crn-bench-ctr-") as tmp, \
            running_registry() as registry:
        tmp = Path(tmp)
        netdir = tmp / "net.d"
        write_network(netdir, tmp / "ipam")
        pusher = Pusher(registry.url)
        pusher.push_image("bench/busybox", "1", ImageBuilder().busybox().build())
        pusher.push_image("bench/pause", "1", ImageBuilder(
            cmd=["/bin/sleep", "2147483647"]).busybox().build())
        image = f"{registry.host}/bench/busybox:1"
        try:
            for label, handler in (("crio-native builtin", "builtin"),
                                   ("crio-native runc", "runc")):
                got = run_crio_native(label, handler, tmp / label.replace(" ", "-"),
                                      netdir, image, tmp / "logs")
                if got is None:
                    status = 1
                else:
                    results[label] = got
            missing = containerd_missing()
            if missing:
                print(f"containerd: skipped, {missing}")
            else:
                got = run_containerd(registry.host, f"{registry.host}/bench/pause:1",
                                     netdir, image, tmp / "logs")
                if got is None:
                    status = 1
                else:
                    results["containerd"] = got
            check_leftovers(before)
        finally:
            subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
    summary(results)
    print(f"  load average at the end: {os.getloadavg()[0]:.2f} (1 min)")
    return status


BENCHMARK = ("cri_containers",
             "pod start to running container, ExecSync, memory per pod vs containerd", run)
