"""Streaming (issue #7), crio-native (built-in runtime and runc, one daemon)
vs containerd (its CRI plugin's own streaming server, runc) in the same run,
driven by the same client code: the SPDY/3.1 client of
tests/e2e/stream_clients.py, as kubectl and crictl speak it.

(a) exec round trip: the Exec RPC (cmd `true`, stdout+stderr), the HTTP
    upgrade to SPDY/3.1 on the URL it answers, the error/stdout/stderr
    streams, `true` run in the container, the v4 status (the exit code) on
    the error stream, close; p50/p95 over CRN_BENCH_STREAM_EXECS calls;
(b) port-forward throughput: the PortForward RPC, one SPDY data stream to
    busybox httpd in the pod's network namespace, `GET` of a file of
    CRN_BENCH_PF_MB MiB made in the container, read to the stream's FIN;
    MB/s (10^6 bytes/s) of the best and the median of CRN_BENCH_PF_RUNS.

Both runtimes get the same busybox image from a loopback registry and the
same CNI bridge network (bench/cri_containers.py's).  containerd's stream
server is its default: plain HTTP on 127.0.0.1, a random port.

Environment: CRN_BENCH_STREAM_EXECS (default 200), CRN_BENCH_PF_MB (default
100), CRN_BENCH_PF_RUNS (default 3)."""
from __future__ import annotations

import json
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cri_setup import (DAEMON_LOG_MARKERS, RPC_TIMEOUT, Peer, bench_run,  # noqa: E402
                             check_cgroups, crio_native_daemon, log_problems, measure_guarded,
                             percentile, pod_config, print_load_at_end, print_machine,
                             print_ratios, pull_images, remove_pod, report, run_containerd,
                             seccomp_profile, start_pod)
from bench.peers import cgroup_dirs  # noqa: E402
from crio_native._proto import api_pb2  # noqa: E402
from tests.e2e.stream_clients import SpdyClient  # noqa: E402
from tests.fixtures.oci_builder import ImageBuilder, symlink  # noqa: E402

EXECS = int(os.environ.get("CRN_BENCH_STREAM_EXECS", "200"))
PF_MB = int(os.environ.get("CRN_BENCH_PF_MB", "100"))
PF_RUNS = int(os.environ.get("CRN_BENCH_PF_RUNS", "3"))
WARMUP_EXECS = 10
PORT = 8080
APPLETS = ("httpd", "mkdir", "dd", "grep")
TARGETS = {"exec round trip p50": 0.5}


# busybox httpd serving /www/big (PF_MB MiB of zeros; the page cache holds it)
HTTPD = ["sh", "-c", f"mkdir -p /www && dd if=/dev/zero of=/www/big bs=1048576 count={PF_MB} "
                     f"2>/dev/null && touch /www/ready && exec httpd -f -p {PORT} -h /www"]


@dataclass
class Results:
    exec_rt: list[float] = field(default_factory=list)
    pf_mbps: list[float] = field(default_factory=list)


# ---- the client, the same for every peer ------------------------------------------

def exec_round_trip(peer: Peer, cid: str) -> float:
    """Exec RPC + upgrade + `true` + exit status, in seconds."""
    began = time.perf_counter()
    url = peer.runtime.Exec(api_pb2.ExecRequest(container_id=cid, cmd=["true"], stdout=True,
                                                stderr=True), timeout=RPC_TIMEOUT).url
    client = SpdyClient(url)
    try:
        err = client.open("error")
        client.open("stdout")
        client.open("stderr")
        status = client.wait_ended(err)
    finally:
        client.close()
    took = time.perf_counter() - began
    # v4: an empty error stream would also mean success; both peers send JSON
    if status and json.loads(status).get("status") != "Success":
        raise RuntimeError(f"exec true: {status!r}")
    return took


def forward_download(peer: Peer, pod: str) -> tuple[float, int, int]:
    """(seconds from the GET to the last byte of the response, bytes
    received, DATA frames they came in).  The clock stops at the last byte
    (header + Content-Length), not at the stream's end: busybox httpd
    lingers up to 1 s for the client's FIN after its response, and
    containerd ends the stream only once the pod's connection is closed."""
    url = peer.runtime.PortForward(api_pb2.PortForwardRequest(pod_sandbox_id=pod, port=[PORT]),
                                   timeout=RPC_TIMEOUT).url
    client = SpdyClient(url, protocols=("portforward.k8s.io",))
    try:
        client.open("error", port=str(PORT), requestid="0")
        data = client.open("data", count_only=True, port=str(PORT), requestid="0")
        began = time.perf_counter()
        client.send(data, b"GET /big HTTP/1.0\r\nHost: pod\r\n\r\n")
        expected = [0]

        def complete() -> bool:
            if not expected[0]:
                head = bytes(client.data.get(data, b""))
                end = head.find(b"\r\n\r\n")
                if end < 0:
                    return False
                length = re.search(rb"(?im)^content-length:\s*(\d+)", head[:end])
                if length is None:
                    raise RuntimeError(f"port-forward: no Content-Length in {head[:end]!r}")
                expected[0] = end + 4 + int(length[1])
            return client.counted[data] >= expected[0]

        deadline = began + 600
        while not complete():
            if client.closed or data in client.ended or time.perf_counter() > deadline:
                raise RuntimeError(f"port-forward: the response ended after "
                                   f"{client.counted[data]} bytes")
            client.pump(0.5, until=complete)
        return time.perf_counter() - began, client.counted[data], client.frames.get(data, 0)
    finally:
        client.close()



# ---- one peer --------------------------------------------------------------------

def wait_ready(peer: Peer, cid: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = peer.runtime.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=[
            "sh", "-c", "test -e /www/ready && cat /proc/net/tcp /proc/net/tcp6 2>/dev/null "
                        f"| grep -q ':{PORT:04X} .* 0A '"], timeout=10), timeout=RPC_TIMEOUT)
        if r.exit_code == 0:
            return
        time.sleep(0.2)
    raise RuntimeError("httpd in the pod is not serving")


def measure_exec(peer: Peer, cid: str, out: Results) -> None:
    for i in range(WARMUP_EXECS + EXECS):
        took = exec_round_trip(peer, cid)
        if i >= WARMUP_EXECS:
            out.exec_rt.append(took)
    report("exec round trip (true)", out.exec_rt, width=32, decimals=2)


def measure_port_forward(peer: Peer, pod: str, cid: str, out: Results) -> None:
    wait_ready(peer, cid)
    forward_download(peer, pod)              # warm-up: the file into the page cache
    frames = []
    for _ in range(PF_RUNS):
        seconds, received, count = forward_download(peer, pod)
        frames.append(received / max(count, 1))
        if received < PF_MB << 20:
            raise RuntimeError(f"port-forward: {received} bytes, expected "
                               f"{PF_MB << 20} and the headers")
        out.pf_mbps.append(received / seconds / 1e6)
    print(f"  port-forward {PF_MB} MiB              best {max(out.pf_mbps):8.1f} MB/s"
          f"   median {statistics.median(out.pf_mbps):8.1f} MB/s   n={len(out.pf_mbps)}"
          f"   (DATA frames of {statistics.mean(frames) / 1024:.1f} KiB on average)")


def measure(peer: Peer, logs: Path) -> Results | None:
    def body() -> Results:
        out = Results()
        tag = peer.label.replace(" ", "-")
        exec_pod, sleeper = start_pod(peer, pod_config(peer, f"{tag}-exec", logs),
                                      ["sleep", "100000"])
        measure_exec(peer, sleeper, out)
        web_pod, web = start_pod(peer, pod_config(peer, f"{tag}-web", logs), HTTPD)
        measure_port_forward(peer, web_pod, web, out)
        for pod in (exec_pod, web_pod):
            remove_pod(peer, pod)
        return out
    return measure_guarded(peer, body)


def run_crio_native(base: Path, netdir: Path, image: str, logs: Path) -> dict[str, Results]:
    """One daemon, a peer for each of its handlers."""
    daemon = crio_native_daemon(base, netdir)
    results: dict[str, Results] = {}
    cgroups_before = cgroup_dirs()
    try:
        daemon.start()
        pull_images(daemon, image)
        for label, handler in (("crio-native builtin", "builtin"), ("crio-native runc", "runc")):
            peer = Peer(label, daemon, image, handler=handler)
            got = measure(peer, logs)
            if got is not None:
                results[label] = got
            check_cgroups(peer, cgroups_before)
    finally:
        daemon.stop()
        log_problems("crio-native", daemon.log(), DAEMON_LOG_MARKERS)
    return results


def figures(ours: Results, peer: Results) -> dict[str, tuple[float, float]]:
    return {
        "exec round trip p50": (statistics.median(ours.exec_rt), statistics.median(peer.exec_rt)),
        "exec round trip p95": (percentile(ours.exec_rt, .95), percentile(peer.exec_rt, .95)),
        "port-forward MB/s (median)": (statistics.median(ours.pf_mbps),
                                       statistics.median(peer.pf_mbps)),
    }


def run() -> int:
    if os.geteuid() != 0:
        print("  skipped: needs root")
        return 0
    print_machine(f"{EXECS} execs (+{WARMUP_EXECS}), port-forward {PF_MB} MiB x {PF_RUNS} (+1);"
                  f" seccomp {seccomp_profile()} for all")
    with bench_run("crn-bench-stream-") as bench:
        bench.pusher.push_image("bench/streambox", "1", ImageBuilder().busybox().add_layer(
            [symlink(f"bin/{a}", "busybox") for a in APPLETS]).build())
        image = bench.image("bench/streambox")
        got = run_crio_native(bench.tmp / "crio-native", bench.netdir, image, bench.logs)
        bench.results.update(got)
        if len(got) != 2:
            bench.status = 1
        run_containerd(bench, image, measure)
    print_ratios(bench.results, "issue #7", figures, TARGETS)
    print_load_at_end()
    return bench.status


BENCHMARK = ("streaming",
             "exec round trip and port-forward throughput over SPDY vs containerd", run)
