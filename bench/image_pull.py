"""PullImage throughput from a loopback registry: a ≥200 MB image in 5
layers, gzip and zstd variants, pulled by crio-native and (when installed)
by Debian's containerd with its CRI plugin, through the same gRPC client,
with a cold store for every pull.  Prints MB/s (compressed bytes over wall
time) and the ratio against containerd measured in the same run."""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crio_native._proto import api_pb2, api_pb2_grpc  # noqa: E402
from tests.e2e.daemon import Daemon  # noqa: E402
from tests.fixtures.oci_builder import ImageBuilder, Pusher, file  # noqa: E402
from tests.fixtures.registry import running_registry  # noqa: E402

LAYERS = 5
LAYER_MB = 42
FILES_PER_LAYER = 6
RUNS = int(os.environ.get("BENCH_IMAGE_PULL_RUNS", "3"))
CONTAINERD = shutil.which("containerd")


def compressible(n: int) -> bytes:
    """Bytes that compress about 3:1, like typical binaries and text."""
    import base64

    raw = base64.b64encode(os.urandom(n // 2))
    return (raw + bytes(n))[:n]


def build_image(compression: str) -> ImageBuilder:
    builder = ImageBuilder().busybox(compression)
    per_file = LAYER_MB * 1024 * 1024 // FILES_PER_LAYER
    for layer in range(LAYERS):
        builder.add_layer([file(f"data/{layer}/{i}", compressible(per_file))
                           for i in range(FILES_PER_LAYER)], compression)
    return builder


def pull_once(stub: api_pb2_grpc.ImageServiceStub, name: str) -> float:
    started = time.perf_counter()
    stub.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=name)), timeout=600)
    return time.perf_counter() - started


def crio_native_pull(name: str) -> float:
    with tempfile.TemporaryDirectory(prefix="crn-bench-") as tmp:
        daemon = Daemon(Path(tmp))
        daemon.prepare()
        (Path(tmp) / "crio-native.conf.d" / "50-image.conf").write_text(
            f'[image]\nregistries_conf = "{tmp}/none"\nregistries_conf_dir = "{tmp}/none.d"\n'
            f'signature_policy = "{tmp}/none.json"\nmax_concurrent_downloads = 3\n')
        daemon.start()
        try:
            return pull_once(daemon.images, name)
        finally:
            daemon.stop()


def containerd_pull(name: str, registry_host: str) -> float:
    with tempfile.TemporaryDirectory(prefix="ctrd-bench-") as tmp:
        sock = f"{tmp}/containerd.sock"
        config = Path(tmp) / "config.toml"
        config.write_text(f"""version = 2
root = "{tmp}/root"
state = "{tmp}/state"
[grpc]
  address = "{sock}"
[plugins."io.containerd.grpc.v1.cri".registry.mirrors."{registry_host}"]
  endpoint = ["http://{registry_host}"]
""")
        log = open(Path(tmp) / "containerd.log", "wb")
        proc = subprocess.Popen([CONTAINERD, "--config", str(config)], stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            channel = grpc.insecure_channel(f"unix:{sock}")
            stub = api_pb2_grpc.ImageServiceStub(channel)
            deadline = time.monotonic() + 30
            while True:
                try:
                    stub.ListImages(api_pb2.ListImagesRequest(), timeout=1)
                    break
                except grpc.RpcError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError((Path(tmp) / "containerd.log").read_text()[-2000:])
                    time.sleep(0.1)
            elapsed = pull_once(stub, name)
            channel.close()
            return elapsed
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            log.close()
            subprocess.run(["umount", "-R", f"{tmp}/root"], capture_output=True)


def run() -> int:
    with running_registry() as registry:
        push = Pusher(registry.url)
        results: dict[str, dict[str, float]] = {}
        for compression in ("gzip", "zstd"):
            image = push.push_image(f"bench/{compression}", "1",
                                    build_image(compression).build())
            mb = sum(b.size for b in image.layers) / 1e6
            unpacked = LAYERS * LAYER_MB * 1.048576
            print(f"  {compression}: {len(image.layers)} layers, {mb:.0f} MB compressed, "
                  f"{unpacked:.0f} MB unpacked")
            name = f"{registry.host}/bench/{compression}:1"
            ours = statistics.median(crio_native_pull(name) for _ in range(RUNS))
            results.setdefault(compression, {})["crio-native"] = mb / ours
            print(f"    crio-native  {mb / ours:7.1f} MB/s  ({ours:.2f} s, median of {RUNS})")
            if CONTAINERD:
                peer = statistics.median(containerd_pull(name, registry.host)
                                         for _ in range(RUNS))
                results[compression]["containerd"] = mb / peer
                print(f"    containerd   {mb / peer:7.1f} MB/s  ({peer:.2f} s, median of {RUNS})")
                print(f"    ratio crio-native/containerd: {peer / ours:.2f}x")
            else:
                print("    containerd not installed: no peer figure")
        zstd, gz = results["zstd"]["crio-native"], results["gzip"]["crio-native"]
        print(f"  crio-native zstd/gzip throughput: {zstd / gz:.2f}x")
    return 0


BENCHMARK = ("image_pull", "PullImage MB/s from a loopback registry vs containerd", run)

if __name__ == "__main__":
    sys.exit(run())
