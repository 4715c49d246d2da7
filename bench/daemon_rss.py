"""Resident memory of the daemon itself, crio-native vs containerd (issue
#14), in the same run, with the same busybox image from a loopback registry
and the same CNI bridge network:

  fresh     after the first Version and Status answered (nothing pulled);
  pulled    after PullImage of the pause image (containerd) and busybox;
  N pods    with N pods running, each RunPodSandbox + one busybox `sleep`
            container (crio-native: the built-in handler; containerd: its
            default runc, shim v2);
  removed   after all N were stopped and removed (what stays per pod).

What is counted: for crio-native the daemon process alone; for containerd
the containerd process alone.  Neither side's per-container helpers
(crio-native-monitor, containerd-shim-runc-v2) nor the containers are
counted: bench monitor_rss compares those, and bench cri_containers the
daemon plus helpers per pod.  VmRSS from /proc/PID/status and Pss from
/proc/PID/smaps_rollup; Pss splits the pages shared with other processes
(the venv's libraries mapped by other Python processes of the host, the
test runner's included), so it moves with the host, RSS does not.

Environment: CRN_BENCH_RSS_PODS (N, default 20), CRN_BENCH_RSS_SETTLE (seconds
before each reading, default 2)."""
from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import cri_setup  # noqa: E402
from bench.cri_setup import (DAEMON_LOG_MARKERS,  # noqa: E402
                             RPC_TIMEOUT, BenchRun, Peer, bench_run, check_cgroups,
                             crio_native_daemon, log_problems, measure_guarded, pod_config,
                             print_load_at_end, print_machine, pull_images, remove_pod,
                             start_pod)
from bench.peers import cgroup_dirs  # noqa: E402
from crio_native._proto import api_pb2  # noqa: E402
from tests.fixtures.oci_builder import ImageBuilder  # noqa: E402

PODS = int(os.environ.get("CRN_BENCH_RSS_PODS", "20"))
SETTLE_S = float(os.environ.get("CRN_BENCH_RSS_SETTLE", "2"))
POINTS = ("fresh", "pulled", f"{PODS} pods", "removed")
# Issue #14's target, crio-native / containerd, at each point.
TARGET = 1.0

Reading = dict[str, float]          # "rss", "pss", "anon" in KiB; "threads"


def reading(pid: int) -> Reading:
    status = Path(f"/proc/{pid}/status").read_text()
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()

    def field(text: str, name: str) -> float:
        found = re.search(rf"^{name}:\s+(\d+)", text, re.M)
        if found is None:
            raise RuntimeError(f"no {name} for pid {pid}")
        return float(found[1])

    return {"rss": field(status, "VmRSS"), "pss": field(rollup, "Pss"),
            "anon": field(rollup, "Anonymous"), "threads": field(status, "Threads")}


def measure(peer: Peer, pid: int, pulls: list[str], logs: Path) -> dict[str, Reading]:
    """The memory of process `pid` (the peer's daemon) at each of POINTS;
    {} if a step failed."""
    out: dict[str, Reading] = {}

    def take(point: str) -> None:
        time.sleep(SETTLE_S)
        out[point] = r = reading(pid)
        print(f"  {point:<10} VmRSS {r['rss'] / 1024:6.1f} MiB   Pss {r['pss'] / 1024:6.1f} MiB"
              f"   anonymous {r['anon'] / 1024:6.1f} MiB   threads {r['threads']:3.0f}")

    def body() -> dict[str, Reading]:
        peer.runtime.Version(api_pb2.VersionRequest(), timeout=RPC_TIMEOUT)
        peer.runtime.Status(api_pb2.StatusRequest(), timeout=RPC_TIMEOUT)
        take(POINTS[0])
        pull_images(peer.endpoint, *pulls)
        take(POINTS[1])
        pods = []
        try:
            for i in range(PODS):
                pods.append(start_pod(peer, pod_config(peer, f"rss{i}", logs))[0])
            take(POINTS[2])
        finally:
            for pod in pods:
                remove_pod(peer, pod)
        take(POINTS[3])
        return out

    return measure_guarded(peer, body) or {}


def run_crio_native(bench: BenchRun, image: str) -> None:
    label = "crio-native builtin"
    daemon = crio_native_daemon(bench.tmp / "crio-native", bench.netdir)
    peer = Peer(label, daemon, image, handler="builtin")
    cgroups_before = cgroup_dirs()
    try:
        daemon.start()
        assert daemon.proc is not None
        bench.record(label, measure(peer, daemon.proc.pid, [image], bench.logs) or None)
    finally:
        daemon.stop()
        check_cgroups(peer, cgroups_before)
        log_problems(label, daemon.log(), DAEMON_LOG_MARKERS)


def run_containerd(bench: BenchRun, image: str) -> None:
    """containerd measured as crio-native is: before its first pull."""
    def measured(peer: Peer, logs: Path) -> dict[str, Reading] | None:
        proc = peer.endpoint.proc      # type: ignore[attr-defined]
        assert proc is not None
        return measure(peer, proc.pid, [bench.pause, image], logs)

    cri_setup.run_containerd(bench, image, measured, pull=False)


def print_ratios(results: dict[str, object]) -> None:
    ours, theirs = results.get("crio-native builtin"), results.get("containerd")
    if not isinstance(ours, dict) or not isinstance(theirs, dict):
        return
    print(f"ratios crio-native/containerd (issue #14 target <= {TARGET}x):")
    for point in POINTS:
        for kind, name in (("rss", "VmRSS"), ("pss", "Pss")):
            a, b = ours[point][kind], theirs[point][kind]
            print(f"  {point:<10} {name:<5} {a / 1024:6.1f} / {b / 1024:6.1f} MiB = {a / b:.2f}x"
                  f"   target: {'met' if a / b <= TARGET else 'NOT met'}")


def run() -> int:
    if os.geteuid() != 0:
        print("  skipped: needs root")
        return 0
    print_machine(f"N={PODS} pods; daemon process only on each side, helpers not counted")
    with bench_run("crn-bench-rss-") as bench:
        bench.pusher.push_image("bench/busybox", "1", ImageBuilder().busybox().build())
        image = bench.image("bench/busybox")
        run_crio_native(bench, image)
        run_containerd(bench, image)
    print_ratios(bench.results)
    print_load_at_end()
    return bench.status


BENCHMARK = ("daemon_rss", "daemon resident memory, fresh and with N pods, vs containerd", run)
