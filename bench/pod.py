"""RunPodSandbox -> StopPodSandbox -> RemovePodSandbox cycles with the same
bridge CNI network, crio-native vs containerd (with runc and its pause
container) in the same run, driven by the same gRPC client code."""
from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.peers import Containerd, cgroup_dirs, containerd_missing, remove_new_cgroups  # noqa: E402,E501
from crio_native._proto import api_pb2  # noqa: E402
from tests.e2e import cni  # noqa: E402
from tests.e2e.daemon import Daemon  # noqa: E402
from tests.fixtures.oci_builder import ImageBuilder, Pusher  # noqa: E402
from tests.fixtures.registry import running_registry  # noqa: E402

CYCLES = 30
WARMUP = 3


def own_cgroup_parent() -> str:
    """A parent below this process's memory cgroup, so the peer's cgroups stay
    inside what the benchmark owns on a hybrid host."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return f"{path.rstrip('/')}/crn-bench-pods"
    return "/crn-bench-pods"


def pod_config(i: int, cgroup_parent: str) -> api_pb2.PodSandboxConfig:
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=f"bench{i}", namespace="bench",
                                            uid=f"bench-uid-{i}", attempt=0),
        hostname=f"bench{i}", log_directory="/tmp")
    config.linux.cgroup_parent = cgroup_parent
    config.linux.security_context.namespace_options.pid = api_pb2.CONTAINER
    return config


def cycles(runtime, cgroup_parent: str) -> list[float]:
    samples = []
    for i in range(WARMUP + CYCLES):
        start = time.perf_counter()
        pod = runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(
            config=pod_config(i, cgroup_parent)), timeout=120).pod_sandbox_id
        runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=120)
        runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=120)
        if i >= WARMUP:
            samples.append(time.perf_counter() - start)
    return samples


def report(label: str, samples: list[float]) -> float:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    print(f"  {label:<12} p50 {p50 * 1000:8.1f} ms   p95 {p95 * 1000:8.1f} ms   n={len(ordered)}")
    return p50


def run() -> int:
    parent = own_cgroup_parent()
    with tempfile.TemporaryDirectory(prefix="crn-bench-pod-") as tmp:
        tmp = Path(tmp)
        netdir = tmp / "net.d"
        cni.write_network(netdir, tmp / "ipam")
        results = {}
        daemon = Daemon(tmp / "crio-native", ["--cni-plugin-dir", cni.PLUGIN_DIR,
                                               "--cni-config-dir", str(netdir)])
        try:
            daemon.start()
            results["crio-native"] = report("crio-native", cycles(daemon.runtime, parent))
        finally:
            daemon.stop()
        missing = containerd_missing()
        if missing:
            print(f"  containerd: skipped, {missing}")
        else:
            results["containerd"] = run_containerd(netdir, parent)
        cni.delete_bridge()
    if "containerd" in results:
        print(f"  ratio crio-native/containerd p50: "
              f"{results['crio-native'] / results['containerd']:.2f}x")
    return 0


def run_containerd(netdir: Path, parent: str) -> float:
    with running_registry() as registry:
        pause = ImageBuilder(cmd=["/bin/sleep", "2147483647"]).busybox().build()
        Pusher(registry.url).push_image("pause", "bench", pause)
        image = f"{registry.host}/pause:bench"
        peer = Containerd(image, registry.host, cni.PLUGIN_DIR, str(netdir))
        cgroups_before = cgroup_dirs()
        try:
            peer.start()
            peer.images.PullImage(api_pb2.PullImageRequest(
                image=api_pb2.ImageSpec(image=image)), timeout=120)
            return report("containerd", cycles(peer.runtime, parent))
        finally:
            peer.stop()
            remove_new_cgroups(cgroups_before)
            subprocess.run(["ip", "link", "del", cni.BRIDGE], capture_output=True)


BENCHMARK = ("pod", "RunPodSandbox/Stop/Remove cycles vs containerd (same CNI network)", run)
