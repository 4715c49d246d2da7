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
CRN_BENCH_EXECS (default 200), CRN_BENCH_SECCOMP (RuntimeDefault or
Unconfined, every peer's containers; default RuntimeDefault)."""
from __future__ import annotations

import os
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cri_setup import (DAEMON_LOG_MARKERS, RPC_TIMEOUT, Helpers, Peer,  # noqa: E402
                             bench_run, check_cgroups, crio_native_daemon, log_problems,
                             measure_guarded, percentile, pod_config, print_load_at_end,
                             print_machine, print_ratios, pull_images, remove_pod, report,
                             run_containerd, seccomp_profile, start_pod)
from bench import exec_sync as exec_bench  # noqa: E402
from bench.peers import Containerd, cgroup_dirs  # noqa: E402
from crio_native._proto import api_pb2  # noqa: E402
from tests.e2e.daemon import Daemon  # noqa: E402
from tests.fixtures.oci_builder import ImageBuilder  # noqa: E402

PODS = int(os.environ.get("CRN_BENCH_PODS", "50"))
CYCLES = int(os.environ.get("CRN_BENCH_CYCLES", "30"))
EXECS = int(os.environ.get("CRN_BENCH_EXECS", "200"))
WARMUP_CYCLES = 3
WARMUP_EXECS = 10
SETTLE_S = 2.0          # after the last of the N pods started, before reading memory

# Issue #6's targets, crio-native / containerd.
TARGETS = {"pod start p50": 0.5, "ExecSync p50": 0.3, "Pss per pod": 0.25,
           "VmRSS per pod": 0.25}


# ---- what is measured --------------------------------------------------------

@dataclass
class Results:
    start: list[float] = field(default_factory=list)
    cycle: list[float] = field(default_factory=list)
    exec_sync: list[float] = field(default_factory=list)
    exec_ops: float = 0.0      # ExecSync/s with bench.exec_sync.CALLERS callers
    memory: dict[str, float] = field(default_factory=dict)   # see measure_memory


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
        loaded = exec_bench.Results()
        exec_bench.concurrent_execs(peer, request, loaded)
        out.exec_ops = loaded.ops_per_s
    finally:
        remove_pod(peer, pod)
    report("ExecSync true", out.exec_sync)
    print(f"  ExecSync true, {exec_bench.CALLERS} callers x {exec_bench.ROUNDS}:"
          f" {out.exec_ops:7.1f} ops/s")


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


def crio_native_helpers(daemon: Daemon) -> Helpers:
    """The daemon and the monitors whose --state-dir lies in its runroot (they
    daemonize, so they are no children of the daemon); the containers are the
    monitors' descendants."""
    def find(procs: dict[int, Proc]) -> tuple[list[int], list[int]]:
        monitors = {p.pid for p in procs.values() if p.exe == "crio-native-monitor"
                    and argument(p.argv, "--state-dir").startswith(str(daemon.base) + "/")}
        return split_helpers(procs, daemon.proc.pid, monitors)
    return find


def containerd_helpers(peer: Containerd) -> Helpers:
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
    def body() -> Results:
        out = Results()
        pull_images(peer.endpoint, peer.image)
        measure_cycles(peer, logs, out)
        measure_exec_sync(peer, logs, out)
        measure_memory(peer, logs, out)
        return out
    return measure_guarded(peer, body)


def run_crio_native(label: str, handler: str, base: Path, netdir: Path, image: str,
                    logs: Path) -> Results | None:
    daemon = crio_native_daemon(base, netdir)
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
        log_problems(label, daemon.log(), DAEMON_LOG_MARKERS)


# ---- the summary -------------------------------------------------------------

def figures(ours: Results, peer: Results) -> dict[str, tuple[float, float]]:
    return {
        "pod start p50": (statistics.median(ours.start), statistics.median(peer.start)),
        "pod start p95": (percentile(ours.start, .95), percentile(peer.start, .95)),
        "cycle p50": (statistics.median(ours.cycle), statistics.median(peer.cycle)),
        "ExecSync p50": (statistics.median(ours.exec_sync), statistics.median(peer.exec_sync)),
        "ExecSync p95": (percentile(ours.exec_sync, .95), percentile(peer.exec_sync, .95)),
        # higher is better here: the ratio is ops/s over containerd's
        f"ExecSync ops/s, {exec_bench.CALLERS} callers": (ours.exec_ops, peer.exec_ops),
        "Pss per pod": (ours.memory["pss_per_pod"], peer.memory["pss_per_pod"]),
        "VmRSS per pod": (ours.memory["rss_per_pod"], peer.memory["rss_per_pod"]),
        "Pss of helpers per pod": (ours.memory["pss_helpers_per_pod"],
                                   peer.memory["pss_helpers_per_pod"]),
        "VmRSS of helpers per pod": (ours.memory["rss_helpers_per_pod"],
                                     peer.memory["rss_helpers_per_pod"]),
    }


def run() -> int:
    if os.geteuid() != 0:
        print("  skipped: needs root")
        return 0
    print_machine(f"N={PODS} pods, {CYCLES} cycles (+{WARMUP_CYCLES} warm-up),"
                  f" {EXECS} ExecSync (+{WARMUP_EXECS}); seccomp {seccomp_profile()} for all")
    with bench_run("crn-bench-ctr-") as bench:
        bench.pusher.push_image("bench/busybox", "1", ImageBuilder().busybox().build())
        image = bench.image("bench/busybox")
        for label, handler in (("crio-native builtin", "builtin"),
                               ("crio-native runc", "runc")):
            base = bench.tmp / label.replace(" ", "-")
            bench.record(label, run_crio_native(label, handler, base, bench.netdir, image,
                                                bench.logs))
        run_containerd(bench, image, measure, helpers=containerd_helpers)
    print_ratios(bench.results, "issue #6", figures, TARGETS)
    print_load_at_end()
    return bench.status


BENCHMARK = ("cri_containers",
             "pod start to running container, ExecSync, memory per pod vs containerd", run)
