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
import platform
import re
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cri_containers import (BRIDGE, Peer, check_cgroups, check_leftovers,  # noqa: E402
                                  host_state, log_problems, percentile, pod_config,
                                  remove_all_pods, write_network)
from bench.peers import Containerd, cgroup_dirs, containerd_missing  # noqa: E402
from bench.pod import own_cgroup_parent  # noqa: E402
from crio_native._proto import api_pb2  # noqa: E402
from tests.e2e import cni  # noqa: E402
from tests.e2e.daemon import Daemon  # noqa: E402
from tests.e2e.stream_clients import SpdyClient  # noqa: E402
from tests.fixtures.oci_builder import ImageBuilder, Pusher, symlink  # noqa: E402
from tests.fixtures.registry import running_registry  # noqa: E402

EXECS = int(os.environ.get("CRN_BENCH_STREAM_EXECS", "200"))
PF_MB = int(os.environ.get("CRN_BENCH_PF_MB", "100"))
PF_RUNS = int(os.environ.get("CRN_BENCH_PF_RUNS", "3"))
WARMUP_EXECS = 10
RPC_TIMEOUT = 120
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

def start_container(peer: Peer, name: str, command: list[str], logs: Path) -> tuple[str, str]:
    config = pod_config(peer, name, logs)
    rt = peer.runtime
    pod = rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(
        config=config, runtime_handler=peer.handler), timeout=RPC_TIMEOUT).pod_sandbox_id
    peer.ids.add(pod)
    cid = rt.CreateContainer(api_pb2.CreateContainerRequest(
        pod_sandbox_id=pod, sandbox_config=config, config=api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name="c"), image=api_pb2.ImageSpec(
                image=peer.image), command=command, log_path="c.log")),
        timeout=RPC_TIMEOUT).container_id
    peer.ids.add(cid)
    rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=RPC_TIMEOUT)
    return pod, cid


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


def measure(peer: Peer, logs: Path) -> Results | None:
    print(f"{peer.label}:")
    out = Results()
    try:
        tag = peer.label.replace(" ", "-")
        _, sleeper = start_container(peer, f"{tag}-exec", ["sleep", "100000"], logs)
        for i in range(WARMUP_EXECS + EXECS):
            took = exec_round_trip(peer, sleeper)
            if i >= WARMUP_EXECS:
                out.exec_rt.append(took)
        report("exec round trip (true)", out.exec_rt)
        pod, web = start_container(peer, f"{tag}-web", HTTPD, logs)
        wait_ready(peer, web)
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
        return out
    except Exception:                          # noqa: BLE001 - report, go on with the others
        print(f"  FAILED:\n{traceback.format_exc()}")
        return None
    finally:
        try:
            remove_all_pods(peer)
        except Exception as e:                 # noqa: BLE001
            print(f"  warning: could not remove the pods: {e}")


def report(label: str, samples: list[float]) -> None:
    print(f"  {label:<32} p50 {statistics.median(samples) * 1000:8.2f} ms"
          f"   p95 {percentile(samples, 0.95) * 1000:8.2f} ms   n={len(samples)}")


def run_crio_native(base: Path, netdir: Path, image: str, logs: Path) -> dict[str, Results]:
    daemon = Daemon(base, ["--cni-plugin-dir", cni.PLUGIN_DIR, "--cni-config-dir", str(netdir)])
    results: dict[str, Results] = {}
    cgroups_before = cgroup_dirs()
    try:
        daemon.start()
        daemon.images.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image)),
                                timeout=RPC_TIMEOUT)
        for label, handler in (("crio-native builtin", "builtin"), ("crio-native runc", "runc")):
            peer = Peer(label, daemon, image, handler=handler)
            got = measure(peer, logs)
            if got is not None:
                results[label] = got
            check_cgroups(peer, cgroups_before)
    finally:
        daemon.stop()
        log_problems("crio-native", daemon.log(), ("level=error", "level=warning", "Traceback"))
    return results


def run_containerd(registry_host: str, pause: str, netdir: Path, image: str,
                   logs: Path) -> Results | None:
    proc = Containerd(pause, registry_host, cni.PLUGIN_DIR, str(netdir))
    cgroups_before = cgroup_dirs()
    peer = Peer("containerd", proc, image, cgroup_parent=own_cgroup_parent())
    try:
        proc.start()
        for ref in (pause, image):
            proc.images.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=ref)),
                                  timeout=RPC_TIMEOUT)
        results = measure(peer, logs)
        if results is None:
            print("  containerd log tail:\n" + (proc.base / "containerd.log").read_text()[-3000:])
        return results
    finally:
        log = proc.base / "containerd.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        proc.stop()
        check_cgroups(peer, cgroups_before)
        log_problems("containerd", text, ("level=error",))


def summary(results: dict[str, Results]) -> None:
    peer = results.get("containerd")
    if peer is None:
        return
    print("ratios crio-native/containerd (issue #7 targets):")
    for label, ours in results.items():
        if label == "containerd":
            continue
        figures = {
            "exec round trip p50": (statistics.median(ours.exec_rt),
                                    statistics.median(peer.exec_rt)),
            "exec round trip p95": (percentile(ours.exec_rt, .95),
                                    percentile(peer.exec_rt, .95)),
            "port-forward MB/s (median)": (statistics.median(ours.pf_mbps),
                                           statistics.median(peer.pf_mbps)),
        }
        for name, (a, b) in figures.items():
            target = TARGETS.get(name)
            verdict = "" if target is None else \
                f"   target <= {target}x: {'met' if a / b <= target else 'NOT met'}"
            print(f"  ratio {label} {name}: {a / b:.2f}x{verdict}")


def run() -> int:
    if os.geteuid() != 0:
        print("  skipped: needs root")
        return 0
    print(f"  machine: {platform.node()} {platform.release()}, {os.cpu_count()} cpus;"
          f" {EXECS} execs (+{WARMUP_EXECS}), port-forward {PF_MB} MiB x {PF_RUNS} (+1);"
          f" load average {os.getloadavg()[0]:.2f}")
    before = host_state()
    results: dict[str, Results] = {}
    status = 0
    with tempfile.TemporaryDirectory(prefix="crn-bench-stream-") as tmp, \
            running_registry() as registry:
        tmp = Path(tmp)
        netdir = tmp / "net.d"
        write_network(netdir, tmp / "ipam")
        pusher = Pusher(registry.url)
        pusher.push_image("bench/streambox", "1", ImageBuilder().busybox().add_layer(
            [symlink(f"bin/{a}", "busybox") for a in APPLETS]).build())
        pusher.push_image("bench/pause", "1", ImageBuilder(
            cmd=["/bin/sleep", "2147483647"]).busybox().build())
        image = f"{registry.host}/bench/streambox:1"
        try:
            got = run_crio_native(tmp / "crio-native", netdir, image, tmp / "logs")
            status |= 0 if len(got) == 2 else 1
            results.update(got)
            missing = containerd_missing()
            if missing:
                print(f"containerd: skipped, {missing}")
            else:
                got = run_containerd(registry.host, f"{registry.host}/bench/pause:1", netdir,
                                     image, tmp / "logs")
                if got is None:
                    status = 1
                else:
                    results["containerd"] = got
            check_leftovers(before)
        finally:
            import subprocess
            subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
    summary(results)
    print(f"  load average at the end: {os.getloadavg()[0]:.2f} (1 min)")
    return status


BENCHMARK = ("streaming",
             "exec round trip and port-forward throughput over SPDY vs containerd", run)
