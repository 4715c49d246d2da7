"""ExecSync (issue #14), crio-native's built-in runtime vs containerd (its
default runc, shim v2) in the same run, driven by the same gRPC client code,
in a busybox `sleep` container of a pod on the bench's CNI bridge network:

(a) latency: ExecSync of `true` one after the other, p50/p95;
(b) throughput: CALLERS threads (default 4, as a kubelet probing several
    containers at once) each calling ExecSync of `true` in the same
    container for ROUNDS calls; ops/s = all calls / wall time, and the p50
    of a call under that load.

The CRI-O figures the issue set its targets from cannot be measured here
(CRI-O does not run on this host): they are printed as stored reference
figures of an earlier run, marked so, beside the ratios to containerd.

Environment: CRN_BENCH_EXECS (default 200), CRN_BENCH_EXEC_CALLERS (default 4),
CRN_BENCH_EXEC_ROUNDS (calls per caller, default 100), CRN_BENCH_SECCOMP
(see bench/cri_setup.py)."""
from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cri_setup import (DAEMON_LOG_MARKERS, RPC_TIMEOUT, Peer, bench_run,  # noqa: E402
                             check_cgroups, crio_native_daemon, log_problems, measure_guarded,
                             percentile, pod_config, print_load_at_end, print_machine,
                             pull_images, remove_pod, report, run_containerd, seccomp_profile,
                             start_pod)
from bench.common import time_concurrent  # noqa: E402
from bench.peers import cgroup_dirs  # noqa: E402
from crio_native._proto import api_pb2  # noqa: E402
from tests.fixtures.oci_builder import ImageBuilder  # noqa: E402

EXECS = int(os.environ.get("CRN_BENCH_EXECS", "200"))
CALLERS = int(os.environ.get("CRN_BENCH_EXEC_CALLERS", "4"))
ROUNDS = int(os.environ.get("CRN_BENCH_EXEC_ROUNDS", "100"))
WARMUP_EXECS = 10

# Issue #14's targets are against CRI-O: p50 <= 0.15x, ops/s >= 5x.  CRI-O's
# figures come from an earlier run on another set-up (it cannot run here);
# they are reference values, NOT measured in this run.
CRIO_REFERENCE = {"ExecSync p50 ms": (29.0, 31.0), f"ops/s, {4} callers": (65.0, 71.0)}
TARGET_P50_VS_CRIO = 0.15
TARGET_OPS_VS_CRIO = 5.0


@dataclass
class Results:
    serial: list[float] = field(default_factory=list)
    loaded: list[float] = field(default_factory=list)     # each call under CALLERS callers
    ops_per_s: float = 0.0


def exec_true(peer: Peer, request: api_pb2.ExecSyncRequest) -> float:
    began = time.perf_counter()
    reply = peer.runtime.ExecSync(request, timeout=RPC_TIMEOUT)
    elapsed = time.perf_counter() - began
    if reply.exit_code != 0 or reply.stdout or reply.stderr:
        raise RuntimeError(f"ExecSync true: exit code {reply.exit_code}, stdout "
                           f"{reply.stdout[-300:]!r}, stderr {reply.stderr[-300:]!r}")
    return elapsed


def concurrent_execs(peer: Peer, request: api_pb2.ExecSyncRequest,
                     out: Results) -> None:
    """CALLERS threads, ROUNDS calls each, released together."""
    out.loaded, wall = time_concurrent(lambda: exec_true(peer, request), CALLERS, ROUNDS)
    out.ops_per_s = len(out.loaded) / wall


def measure(peer: Peer, logs: Path) -> Results | None:
    def body() -> Results:
        out = Results()
        pull_images(peer.endpoint, peer.image)
        pod, cid = start_pod(peer, pod_config(peer, "exec", logs))
        try:
            request = api_pb2.ExecSyncRequest(container_id=cid, cmd=["true"], timeout=10)
            for _ in range(WARMUP_EXECS):
                exec_true(peer, request)
            out.serial = [exec_true(peer, request) for _ in range(EXECS)]
            concurrent_execs(peer, request, out)
        finally:
            remove_pod(peer, pod)
        report("ExecSync true, one caller", out.serial, decimals=2)
        report(f"ExecSync true, {CALLERS} callers", out.loaded, decimals=2)
        print(f"  {CALLERS} callers x {ROUNDS} calls: {out.ops_per_s:7.1f} ops/s")
        return out
    return measure_guarded(peer, body)


def run_builtin(bench, image: str) -> Results | None:
    label = "crio-native builtin"
    daemon = crio_native_daemon(bench.tmp / "crio-native", bench.netdir)
    cgroups_before = cgroup_dirs()
    peer = Peer(label, daemon, image, handler="builtin")
    try:
        daemon.start()
        return measure(peer, bench.logs)
    finally:
        daemon.stop()
        check_cgroups(peer, cgroups_before)
        log_problems(label, daemon.log(), DAEMON_LOG_MARKERS)


def print_summary(results: dict[str, Results]) -> None:
    ours = results.get("crio-native builtin")
    if ours is None:
        return
    p50 = statistics.median(ours.serial)
    peer = results.get("containerd")
    if peer is not None:
        print("ratios crio-native builtin / containerd (measured in this run):")
        print(f"  ExecSync p50: {p50 / statistics.median(peer.serial):.2f}x"
              f"   p95: {percentile(ours.serial, .95) / percentile(peer.serial, .95):.2f}x")
        loaded = statistics.median(ours.loaded) / statistics.median(peer.loaded)
        print(f"  ops/s with {CALLERS} callers: {ours.ops_per_s / peer.ops_per_s:.2f}x"
              f"   p50 under load: {loaded:.2f}x")
    lo, hi = CRIO_REFERENCE["ExecSync p50 ms"]
    olo, ohi = CRIO_REFERENCE[f"ops/s, {4} callers"]
    print("vs CRI-O, REFERENCE figures from an earlier run (not measured now): "
          f"p50 {lo:.0f}-{hi:.0f} ms, {olo:.0f}-{ohi:.0f} ops/s with 4 callers")
    print(f"  ExecSync p50 {p50 * 1000:.2f} ms: {p50 * 1000 / hi:.3f}-{p50 * 1000 / lo:.3f}x"
          f"   target <= {TARGET_P50_VS_CRIO}x"
          f" ({TARGET_P50_VS_CRIO * lo:.2f} ms of the faster CRI-O figure):"
          f" {'met' if p50 * 1000 <= TARGET_P50_VS_CRIO * lo else 'NOT met'}")
    if CALLERS == 4:
        ops = ours.ops_per_s
        print(f"  ops/s {ops:.1f}: {ops / ohi:.2f}-{ops / olo:.2f}x"
              f"   target >= {TARGET_OPS_VS_CRIO}x ({TARGET_OPS_VS_CRIO * ohi:.0f} ops/s of the"
              f" faster CRI-O figure): "
              f"{'met' if ops >= TARGET_OPS_VS_CRIO * ohi else 'NOT met'}")


def run() -> int:
    if os.geteuid() != 0:
        print("  skipped: needs root")
        return 0
    print_machine(f"{EXECS} ExecSync (+{WARMUP_EXECS}), then {CALLERS} callers x {ROUNDS};"
                  f" seccomp {seccomp_profile()} for all")
    with bench_run("crn-bench-exec-") as bench:
        bench.pusher.push_image("bench/busybox", "1", ImageBuilder().busybox().build())
        image = bench.image("bench/busybox")
        bench.record("crio-native builtin", run_builtin(bench, image))
        if os.environ.get("CRN_BENCH_EXEC_PEER", "1") != "0":
            run_containerd(bench, image, measure)
    print_summary(bench.results)      # type: ignore[arg-type]
    print_load_at_end()
    return bench.status


BENCHMARK = ("exec_sync", "ExecSync p50 and ops/s with concurrent callers vs containerd "
             "(CRI-O's earlier figures as reference)", run)
