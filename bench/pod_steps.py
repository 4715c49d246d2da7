"""Where a built-in pod start spends its time (issue 21): RunPodSandbox +
CreateContainer + StartContainer on the bench's bridge network, with the
daemon's per-step histogram (container_runtime_crio_native_operation_step_
duration_seconds, one series per failpoint step, steps.py) read from its
metrics endpoint before and after the measured starts, and teardown
(StopPodSandbox + RemovePodSandbox) likewise.  The floor of a pod start on
a network is its CNI plugins' own exec time: the chain the daemon runs
(bridge + portmap; lo it sets up itself) is run here directly, ADD then
DEL, in a netns of their own, and that time is printed beside the steps
that contain it (sandbox.run.loopback_added, sandbox.run.network_added);
the loopback plugin is timed too, for comparison with older figures."""
from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crio_native._proto import api_pb2  # noqa: E402
from bench.cri_setup import (Peer, bench_run, crio_native_daemon, pod_config,  # noqa: E402
                             pull_images, remove_pod, start_pod)
from crio_native.failpoints import CATALOGUE  # noqa: E402
from crio_native.network.cni import CNI, Attachment, NetworkList  # noqa: E402
from crio_native.sandbox.manager import LOOPBACK  # noqa: E402
from tests.e2e import cni  # noqa: E402
from tests.ports import free_port  # noqa: E402
from tests.e2e.daemon import Daemon  # noqa: E402
from tests.fixtures.oci_builder import ImageBuilder  # noqa: E402

WARMUP = 3
STARTS = int(os.environ.get("BENCH_POD_STEPS", "20"))
# BENCH_POD_STEPS_SHARED_PID=1: pods share one PID namespace, so each start
# also launches the pod's infra process (sandbox.run.infra_*)
SHARED_PID = os.environ.get("BENCH_POD_STEPS_SHARED_PID") == "1"
# BENCH_POD_STEPS_ORDER=cycle: each start is followed at once by its
# teardown, as bench cri_containers orders them (the default, burst, starts
# them all, then tears them all down); the histogram is then read around
# every start and every teardown
CYCLE = os.environ.get("BENCH_POD_STEPS_ORDER", "burst") == "cycle"
STEP_METRIC = "container_runtime_crio_native_operation_step_duration_seconds"
START_OPS = ("sandbox.run", "container.create", "container.start")
TEARDOWN_OPS = ("sandbox.stop", "sandbox.remove", "container.stop", "container.remove")
CNI_STEPS = ("sandbox.run.loopback_added", "sandbox.run.network_added")
CNI_DEL_STEPS = ("sandbox.stop.network_deleted", "sandbox.stop.network_detached")


def bench_pod_config(peer: Peer, name: str, logs: Path) -> api_pb2.PodSandboxConfig:
    config = pod_config(peer, name, logs)
    if SHARED_PID:
        config.linux.security_context.namespace_options.pid = api_pb2.POD
    return config


def step_totals(port: int) -> dict[str, tuple[float, float]]:
    """step -> (sum of seconds, count) from the daemon's metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict[str, list[float]] = {}
    for kind, step, value in re.findall(
            rf'^{STEP_METRIC}_(sum|count)\{{step="([^"]+)"\}} (\S+)$', text, re.M):
        out.setdefault(step, [0.0, 0.0])[0 if kind == "sum" else 1] = float(value)
    return {k: (v[0], v[1]) for k, v in out.items()}


def per_step_ms(before: dict, after: dict) -> dict[str, float]:
    """Mean milliseconds of each step between two readings."""
    out = {}
    for step, (total, count) in after.items():
        t0, c0 = before.get(step, (0.0, 0.0))
        if count > c0:
            out[step] = (total - t0) / (count - c0) * 1000
    return out


def add_delta(acc: dict[str, tuple[float, float]], before: dict, after: dict) -> None:
    """Add what each step's (sum, count) grew by between two readings."""
    for step, (total, count) in after.items():
        t0, c0 = before.get(step, (0.0, 0.0))
        s, c = acc.get(step, (0.0, 0.0))
        acc[step] = (s + total - t0, c + count - c0)


def burst(peer: Peer, port: int, logs: Path, starts: list[float],
          teardowns: list[float]) -> tuple[dict, dict]:
    """STARTS pods started back to back, then torn down: the step totals
    grown over the starts and over the teardowns."""
    pods = []
    before = step_totals(port)
    for i in range(STARTS):
        t = time.perf_counter()
        pods.append(start_pod(peer, bench_pod_config(peer, f"s{i}", logs))[0])
        starts.append(time.perf_counter() - t)
    middle = step_totals(port)
    for pod in pods:
        t = time.perf_counter()
        remove_pod(peer, pod)
        teardowns.append(time.perf_counter() - t)
    after = step_totals(port)
    start_acc: dict[str, tuple[float, float]] = {}
    stop_acc: dict[str, tuple[float, float]] = {}
    add_delta(start_acc, before, middle)
    add_delta(stop_acc, middle, after)
    return start_acc, stop_acc


def cycle(peer: Peer, port: int, logs: Path, starts: list[float],
          teardowns: list[float]) -> tuple[dict, dict]:
    """As burst, but each pod torn down right after its start."""
    start_acc: dict[str, tuple[float, float]] = {}
    stop_acc: dict[str, tuple[float, float]] = {}
    for i in range(STARTS):
        before = step_totals(port)
        t = time.perf_counter()
        pod = start_pod(peer, bench_pod_config(peer, f"s{i}", logs))[0]
        starts.append(time.perf_counter() - t)
        middle = step_totals(port)
        t = time.perf_counter()
        remove_pod(peer, pod)
        teardowns.append(time.perf_counter() - t)
        add_delta(start_acc, before, middle)
        add_delta(stop_acc, middle, step_totals(port))
    return start_acc, stop_acc


def cni_floor_ms(netdir: Path, rounds: int = 10) -> tuple[float, float, float, float]:
    """ADD, then DEL, of the bench network chain in a fresh netns, by the
    plugins alone: the median ms of the ADDs and of the DELs; then the same
    of the loopback plugin (which the daemon no longer runs: it sets lo up
    itself), for comparison with earlier figures."""
    net = NetworkList.load(str(netdir))
    runner = CNI([cni.PLUGIN_DIR], str(netdir.parent / "cni-floor-cache"))
    adds, dels, lo_adds, lo_dels = [], [], [], []
    for i in range(rounds):
        # a netns pinned on a file of the run's own (not `ip netns add`,
        # which leaves a /run/netns mount behind)
        netns = str(netdir.parent / f"cni-floor-netns-{i}")
        Path(netns).touch()
        subprocess.run(["unshare", f"--net={netns}", "true"], check=True)
        try:
            lo = Attachment(f"floor{i}", netns, ifname="lo")
            eth = Attachment(f"floor{i}", netns)
            t0 = time.perf_counter()
            runner.add(LOOPBACK, lo)
            t1 = time.perf_counter()
            runner.add(net, eth)
            t2 = time.perf_counter()
            runner.delete(net, eth)
            t3 = time.perf_counter()
            runner.delete(LOOPBACK, lo)
            t4 = time.perf_counter()
            lo_adds.append(t1 - t0)
            adds.append(t2 - t1)
            dels.append(t3 - t2)
            lo_dels.append(t4 - t3)
        finally:
            subprocess.run(["umount", netns], check=True)
            os.unlink(netns)
    return tuple(statistics.median(v) * 1000  # type: ignore[return-value]
                 for v in (adds, dels, lo_adds, lo_dels))


def print_steps(title: str, ops: tuple[str, ...], ms: dict[str, float],
                wall_ms: float) -> None:
    print(f"  {title}: p50 {wall_ms:.1f} ms")
    for op in ops:
        for step in CATALOGUE[op]:
            if step in ms:
                print(f"    {step:42s} {ms[step]:7.2f} ms  {100 * ms[step] / wall_ms:5.1f} %")
    named = sum(v for k, v in ms.items() if k.split(".")[0] + "." + k.split(".")[1] in ops)
    print(f"    {'(outside the named steps)':42s} {wall_ms - named:7.2f} ms")


def metrics_daemon(base: Path, netdir: Path) -> tuple[Daemon, int]:
    """A prepared (not started) crio-native daemon whose Prometheus endpoint,
    where step_totals reads the step histogram, listens on the port returned."""
    port = free_port()
    daemon = crio_native_daemon(base, netdir)
    daemon.prepare()
    (daemon.base / "crio-native.conf.d" / "60-metrics.conf").write_text(
        f"[metrics]\nenable_metrics = true\nmetrics_port = {port}\n")
    return daemon, port


def run() -> int:
    if os.geteuid() != 0:
        print("  skipped: needs root")
        return 0
    with bench_run("crn-bench-steps-") as bench:
        bench.pusher.push_image("bench/busybox", "1", ImageBuilder().busybox().build())
        image = bench.image("bench/busybox")
        daemon, port = metrics_daemon(bench.tmp / "daemon", bench.netdir)
        peer = Peer("crio-native builtin", daemon, image, handler="builtin")
        try:
            daemon.start()
            pull_images(daemon, image)
            for i in range(WARMUP):
                remove_pod(peer, start_pod(peer, bench_pod_config(peer, f"w{i}", bench.logs))[0])
            starts: list[float] = []
            teardowns: list[float] = []
            start_acc, stop_acc = (cycle if CYCLE else burst)(peer, port, bench.logs, starts,
                                                               teardowns)
        finally:
            daemon.stop()
        add_floor, del_floor, lo_add, lo_del = cni_floor_ms(bench.netdir)
    print(f"  order: {'cycle (each start torn down at once)' if CYCLE else 'burst'}")
    start_ms, stop_ms = per_step_ms({}, start_acc), per_step_ms({}, stop_acc)
    start_p50 = statistics.median(starts) * 1000
    stop_p50 = statistics.median(teardowns) * 1000
    print_steps("pod start (RunPodSandbox + CreateContainer + StartContainer)", START_OPS,
                start_ms, start_p50)
    print_steps("teardown (StopPodSandbox + RemovePodSandbox)", TEARDOWN_OPS, stop_ms, stop_p50)
    print(f"  CNI plugins alone (bridge + portmap): ADD {add_floor:.1f} ms, "
          f"DEL {del_floor:.1f} ms")
    print(f"  (the loopback plugin alone, not run by the daemon: ADD {lo_add:.1f} ms, "
          f"DEL {lo_del:.1f} ms)")
    print(f"  start: its CNI steps {sum(start_ms.get(s, 0.0) for s in CNI_STEPS):.1f} ms; "
          f"the start is {start_p50 / add_floor:.2f}x the ADD floor")
    print(f"  teardown: its CNI steps {sum(stop_ms.get(s, 0.0) for s in CNI_DEL_STEPS):.1f} ms;"
          f" the teardown is {stop_p50 / del_floor:.2f}x the DEL floor")
    return 0


BENCHMARK = ("pod_steps", "where a built-in pod start and teardown spend their time, "
             "step by step, against the CNI plugins' own time", run)
