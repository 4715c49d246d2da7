"""What observability costs (issue 19): pod start and ExecSync on three
crio-native daemons in the same run, built-in handler: metrics off (the
baseline), metrics on (the Prometheus endpoint, every hook observing; the
target: <= 3 % on both p50s), and, as an extra line, tracing on with every
call sampled (rate 1000000) and exported over OTLP/gRPC to a receiver on
loopback (tests/fixtures/otlp.py), metrics off.

Pod start cycles alternate the daemons' order, so that load from elsewhere
on the machine falls on all alike: RunPodSandbox + CreateContainer +
StartContainer of busybox `sleep 1000`, timed, then StopPodSandbox +
RemovePodSandbox.  ExecSync: one running container per daemon, `true` run
round-robin across the three.  Nothing scrapes the endpoint while timing: a
scrape is an HTTP request on another thread, at Prometheus's interval.
Environment: CRN_BENCH_CYCLES (pod starts per daemon, default 60),
CRN_BENCH_EXECS (ExecSyncs per daemon, default 300)."""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cri_setup import (DAEMON_LOG_MARKERS, RPC_TIMEOUT, Peer,  # noqa: E402
                             alternating_pod_starts, bench_run, check_cgroups,
                             crio_native_daemon, log_problems, percentile, pod_config,
                             print_load_at_end, print_machine, pull_images, remove_all_pods,
                             remove_pod, report, start_pod)
from bench.peers import cgroup_dirs  # noqa: E402
from crio_native._proto import api_pb2  # noqa: E402
from tests.e2e.daemon import Daemon  # noqa: E402
from tests.fixtures.oci_builder import ImageBuilder  # noqa: E402
from tests.fixtures.otlp import OtlpReceiver  # noqa: E402

CYCLES = int(os.environ.get("CRN_BENCH_CYCLES", "60"))
EXECS = int(os.environ.get("CRN_BENCH_EXECS", "300"))
WARMUP = 3
TARGET = 1.03           # issue 19: metrics on <= 3 % over metrics off, both p50s
OFF, METRICS, TRACING = "metrics off", "metrics on", "tracing on (all sampled)"


def configure(daemon: Daemon, text: str) -> None:
    drop_ins = daemon.base / "crio-native.conf.d"
    drop_ins.mkdir(parents=True, exist_ok=True)
    (drop_ins / "50-bench-observability.conf").write_text(text)




def exec_syncs(peers: list[Peer], logs: Path) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {p.label: [] for p in peers}
    running = {p.label: start_pod(p, pod_config(p, "exec", logs)) for p in peers}
    try:
        for i in range(WARMUP + EXECS):
            order = peers if i % 2 == 0 else list(reversed(peers))
            for peer in order:
                request = api_pb2.ExecSyncRequest(container_id=running[peer.label][1],
                                                  cmd=["true"], timeout=10)
                began = time.perf_counter()
                reply = peer.runtime.ExecSync(request, timeout=RPC_TIMEOUT)
                elapsed = time.perf_counter() - began
                if reply.exit_code != 0:
                    raise RuntimeError(f"{peer.label}: ExecSync true: exit code "
                                       f"{reply.exit_code}, stderr {reply.stderr[-300:]!r}")
                if i >= WARMUP:
                    samples[peer.label].append(elapsed)
    finally:
        for peer in peers:
            remove_pod(peer, running[peer.label][0])
    return samples


def print_ratio(what: str, samples: dict[str, list[float]], label: str,
                target: float | None) -> bool:
    base, other = statistics.median(samples[OFF]), statistics.median(samples[label])
    ratio = other / base
    verdict = "" if target is None else f", {'met' if ratio <= target else 'not met'}"
    print(f"  {what} p50 {label} / {OFF}: {other * 1000:.2f} / {base * 1000:.2f} ms"
          f" = {ratio:.3f}x{verdict}; p95 {percentile(samples[label], .95) * 1000:.2f}"
          f" / {percentile(samples[OFF], .95) * 1000:.2f} ms")
    return target is None or ratio <= target


def run() -> int:
    if os.geteuid() != 0:
        print("  skipped: needs root")
        return 0
    print_machine(f"{CYCLES} pod starts (+{WARMUP}) and {EXECS} ExecSync (+{WARMUP}) per"
                  " daemon, alternating; built-in handler")
    receiver = OtlpReceiver().start()
    os.environ.setdefault("OTEL_BSP_SCHEDULE_DELAY", "1000")   # the daemons inherit it
    status = 0
    with bench_run("crn-bench-metrics-") as bench:
        bench.pusher.push_image("bench/busybox", "1", ImageBuilder().busybox().build())
        image = bench.image("bench/busybox")
        daemons = {label: crio_native_daemon(bench.tmp / name, bench.netdir)
                   for label, name in ((OFF, "off"), (METRICS, "metrics"), (TRACING, "tracing"))}
        configure(daemons[METRICS], "[metrics]\nenable_metrics = true\nmetrics_port = 0\n")
        configure(daemons[TRACING], f'[tracing]\nenable_tracing = true\ntracing_endpoint = '
                                    f'"{receiver.endpoint}"\n'
                                    "tracing_sampling_rate_per_million = 1000000\n")
        peers = [Peer(label, d, image, handler="builtin") for label, d in daemons.items()]
        cgroups_before = cgroup_dirs()
        try:
            for peer in peers:
                daemons[peer.label].start()
                pull_images(peer.endpoint, image)
            starts = alternating_pod_starts(peers, bench.logs, CYCLES, WARMUP)
            execs = exec_syncs(peers, bench.logs)
        except Exception:
            status = 1
            raise
        finally:
            for peer in peers:
                if daemons[peer.label].proc is not None:
                    remove_all_pods(peer)
                daemons[peer.label].stop()   # the tracing daemon flushes its last batch
                check_cgroups(peer, cgroups_before)
            receiver.stop()
        for peer in peers:
            report(f"{peer.label}: pod start", starts[peer.label], width=40)
            report(f"{peer.label}: ExecSync true", execs[peer.label], width=40, decimals=2)
        for label, d in daemons.items():
            log_problems(label, d.log(), DAEMON_LOG_MARKERS)
        print(f"ratios (issue 19 target for metrics: <= {TARGET}x):")
        ok = print_ratio("pod start", starts, METRICS, TARGET)
        ok &= print_ratio("ExecSync", execs, METRICS, TARGET)
        print_ratio("pod start", starts, TRACING, None)
        print_ratio("ExecSync", execs, TRACING, None)
        print(f"  spans received from the tracing daemon: {len(receiver.spans)}"
              f" in {receiver.exports} exports")
        if not receiver.spans:
            status = 1
        if not ok:
            print("  (a miss is reported, not failed: timings are not asserted)")
    print_load_at_end()
    return status


BENCHMARK = ("metrics-cost", "pod start and ExecSync p50 with metrics on / tracing on vs off",
             run)
