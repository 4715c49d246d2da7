"""Pod start to a RUNNING container with the systemd cgroup driver against
the cgroupfs driver, both on the built-in runtime, in one run on a host
whose PID 1 is systemd (`make bench-systemd` boots `vmrun.sh --init
systemd` for it).  What the systemd driver adds is two D-Bus round trips
per container (its scope and its monitor's), as CRI-O pays them too; the
target is a p50 within 1.2x of cgroupfs.  Host-network pods, so CNI's exec
time does not hide the difference."""
from __future__ import annotations

import itertools
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ratio, summarize  # noqa: E402
from crio_native._proto import api_pb2  # noqa: E402
from crio_native.linux.systemd.bus import SystemdManager  # noqa: E402
from tests.e2e.daemon import Daemon  # noqa: E402
from tests.fixtures.oci_builder import ImageBuilder, Pusher  # noqa: E402
from tests.fixtures.registry import running_registry  # noqa: E402
from tests.hostinfo import systemd_is_init  # noqa: E402

ROUNDS = 3          # alternating drivers, so drift hits both alike
CYCLES = 8          # pods per driver per round
TARGET = 1.2
POD_SLICE = "kubepods-besteffort-podbench.slice"
PARENTS = {"systemd": f"/kubepods.slice/kubepods-besteffort.slice/{POD_SLICE}",
           "cgroupfs": "/kubepods/besteffort/podbench"}


def pod_config(driver: str, logs: Path) -> api_pb2.PodSandboxConfig:
    uid = str(uuid.uuid4())
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=f"b-{uid[:8]}", namespace="bench", uid=uid),
        hostname="bench", log_directory=str(logs))
    config.linux.cgroup_parent = PARENTS[driver]
    opts = config.linux.security_context.namespace_options
    opts.network, opts.pid = api_pb2.NODE, api_pb2.CONTAINER
    return config


def start_pod(d: Daemon, driver: str, image: str, logs: Path) -> tuple[float, str]:
    """Seconds from RunPodSandbox to StartContainer's answer; the pod id."""
    config = pod_config(driver, logs)
    begin = time.perf_counter()
    pod = d.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=config),
                                  timeout=120).pod_sandbox_id
    ctr = api_pb2.ContainerConfig(metadata=api_pb2.ContainerMetadata(name="c"),
                                  image=api_pb2.ImageSpec(image=image),
                                  command=["sleep", "1000"], log_path="c/0.log")
    ctr.linux.resources.memory_limit_in_bytes = 64 << 20
    cid = d.runtime.CreateContainer(api_pb2.CreateContainerRequest(
        pod_sandbox_id=pod, config=ctr, sandbox_config=config), timeout=120).container_id
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=120)
    return time.perf_counter() - begin, pod


def remove_pod(d: Daemon, pod: str) -> None:
    d.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=120)
    d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=120)


def make_cgroupfs_parent() -> list[Path]:
    made = []
    d = Path("/sys/fs/cgroup")
    for part in PARENTS["cgroupfs"].strip("/").split("/"):
        d = d / part
        if not d.exists():
            d.mkdir()
            made.append(d)
    return made


def run() -> int:
    if not systemd_is_init():
        print("  skipped: needs systemd as PID 1 with its bus (run `make bench-systemd`, "
              "which boots vmrun.sh --init systemd)")
        return 0
    manager = SystemdManager()
    manager.start_transient_unit(POD_SLICE, [("Description", ("s", "bench pod slice"))])
    made = make_cgroupfs_parent()
    samples: dict[str, list[float]] = {"cgroupfs": [], "systemd": []}
    with tempfile.TemporaryDirectory(prefix="crn-bench-sd-") as tmp, \
            running_registry() as registry:
        base = Path(tmp)
        Pusher(registry.url).push_image("bench/busybox", "1", ImageBuilder().busybox().build())
        image = f"{registry.host}/bench/busybox:1"
        daemons = {drv: Daemon(base / drv, ["--cgroup-manager", drv]) for drv in samples}
        try:
            for d in daemons.values():
                d.start()
                d.images.PullImage(api_pb2.PullImageRequest(
                    image=api_pb2.ImageSpec(image=image)), timeout=120)
            for (_round, driver) in itertools.product(range(ROUNDS), samples):
                d = daemons[driver]
                remove_pod(d, start_pod(d, driver, image, base / "logs")[1])   # warm-up
                for _ in range(CYCLES):
                    took, pod = start_pod(d, driver, image, base / "logs")
                    samples[driver].append(took)
                    remove_pod(d, pod)
        finally:
            for d in daemons.values():
                d.stop()
            for level in (POD_SLICE, "kubepods-besteffort.slice", "kubepods.slice"):
                manager.stop_unit(level)
            for d in reversed(made):
                d.rmdir()
    p50 = {drv: summarize(f"pod start to RUNNING, {drv}", s) for drv, s in samples.items()}
    ratio("systemd/cgroupfs p50", p50["systemd"], p50["cgroupfs"], TARGET)
    return 0


BENCHMARK = ("systemd-driver", "pod start with the systemd cgroup driver vs cgroupfs "
             "(built-in runtime, systemd as PID 1)", run)
