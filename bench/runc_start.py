"""Where the runc handler's container create + start spends its time (issue
21), against runc's own floor.  In one running pod of the runc handler,
alternating rounds of
  - `runc create` + `runc start` run by hand on a copy of the pod's
    container bundle (its own id and cgroup, a fresh overlay rootfs on the
    same layers, mounted untimed; stdio /dev/null): the floor;
  - the handler alone, in this process (runtime/oci/handler.py: our
    monitor spawned, it runs `runc create`, adopts the container process,
    reports; then `runc start`) on another copy: what our launch chain
    adds to runc, no daemon, no gRPC;
  - the same without the monitor's --warm-cgroup (adopt.c): what keeping
    the kernel's cgroup attach lock warm during `runc create` saves;
  - CreateContainer + StartContainer over the CRI: the whole of ours;
each container deleted after its round (not timed).  Then the daemon's
per-step histogram (steps.py, read from its metrics endpoint before and
after the CRI rounds) says where the CRI calls went, step by step, with
the handler's own sub-steps (the monitor spawned, daemonized, runc's
create reported) inside container.create, and the attestation and
`runc start` inside container.start.

Environment: CRN_BENCH_RUNC_STARTS (rounds, default 20)."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ratio  # noqa: E402
from bench.cri_setup import (RPC_TIMEOUT, DAEMON_LOG_MARKERS, Peer, bench_run,  # noqa: E402
                             check_cgroups, container_config, log_problems,
                             percentile, pod_config, print_load_at_end, print_machine,
                             pull_images, remove_all_pods, start_pod)
from bench.peers import cgroup_dirs  # noqa: E402
from bench.pod_steps import metrics_daemon, per_step_ms, step_totals  # noqa: E402
from crio_native._proto import api_pb2  # noqa: E402
from crio_native.failpoints import CATALOGUE  # noqa: E402
from crio_native.runtime.handler import MonitorOptions  # noqa: E402
from crio_native.runtime.oci.handler import STEPS as HANDLER_STEPS, OciCliHandler  # noqa: E402
from tests.fixtures.oci_builder import ImageBuilder  # noqa: E402

ROUNDS = int(os.environ.get("CRN_BENCH_RUNC_STARTS", "20"))
WARMUP = 2
RUNC = "/usr/sbin/runc"
OPS = ("container.create", "container.start")

Round = Callable[[int], tuple[float, float]]


def overlay_lowerdir(mountpoint: str) -> str:
    """The lowerdir option of the overlay mounted at `mountpoint`."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _source, opts = (right.split() + ["", ""])[:3]
            if left.split()[4] == mountpoint and fstype == "overlay":
                for opt in opts.split(","):
                    if opt.startswith("lowerdir="):
                        return opt.removeprefix("lowerdir=")
    raise RuntimeError(f"no overlay mounted at {mountpoint}")


class BundleCopier:
    """A bundle per call: `cid`'s config.json, all else alike, with a
    cgroupsPath of its own and a fresh overlay rootfs on the same image
    layers (new upper and work dirs, as a CreateContainer mounts; mounted
    before the timing starts, unmounted by `release`)."""

    def __init__(self, root: Path, cid: str, tmp: Path):
        state = json.loads(subprocess.run([RUNC, "--root", str(root), "state", cid],
                                          capture_output=True, check=True).stdout)
        self.spec = json.loads((Path(state["bundle"]) / "config.json").read_text())
        self.lowerdir = overlay_lowerdir(self.spec["root"]["path"])
        self.tmp = tmp
        self.mounted: list[Path] = []

    def __call__(self, name: str) -> Path:
        out = self.tmp / f"bundle-{name}"
        for d in ("upper", "work", "rootfs"):
            (out / d).mkdir(parents=True)
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={self.lowerdir},upperdir={out / 'upper'},"
                        f"workdir={out / 'work'}", str(out / "rootfs")], check=True)
        self.mounted.append(out / "rootfs")
        spec = dict(self.spec, root=dict(self.spec["root"], path=str(out / "rootfs")))
        spec["linux"] = dict(spec["linux"], cgroupsPath=f"crn-bench-{name}")
        (out / "config.json").write_text(json.dumps(spec))
        return out

    def release(self) -> None:
        """Unmount every rootfs made (their containers deleted first)."""
        while self.mounted:
            subprocess.run(["umount", str(self.mounted.pop())], check=True)


def floor_round(copy: BundleCopier, own_root: Path) -> Round:
    runc = [RUNC, "--root", str(own_root)]

    def one(i: int) -> tuple[float, float]:
        bundle = copy(f"floor-{i}")
        began = time.perf_counter()
        # not captured: the container inherits create's stdio and holds it
        subprocess.run([*runc, "--log-format", "json", "--log", str(bundle / "log"), "create",
                        "--bundle", str(bundle), "--pid-file", str(bundle / "pid"),
                        f"floor-{i}"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True)
        created = time.perf_counter()
        subprocess.run([*runc, "start", f"floor-{i}"], capture_output=True, check=True)
        started = time.perf_counter()
        subprocess.run([*runc, "delete", "--force", f"floor-{i}"], capture_output=True,
                       check=True)
        copy.release()
        return created - began, started - created
    return one


def handler_round(copy: BundleCopier, own_root: Path, warm: bool = True) -> Round:
    handler = OciCliHandler("runc", RUNC, own_root)
    tag = "handler" if warm else "cold"
    if not warm:
        handler.warm_cgroup = None       # no --warm-cgroup for its monitors

    def one(i: int) -> tuple[float, float]:
        bundle = copy(f"{tag}-{i}")
        state = bundle / "monitor"
        state.mkdir()
        began = time.perf_counter()
        handler.create(f"{tag}-{i}", bundle, MonitorOptions(state_dir=state,
                                                            log_path=bundle / "c.log"))
        created = time.perf_counter()
        handler.start(f"{tag}-{i}")
        started = time.perf_counter()
        handler.delete(f"{tag}-{i}", force=True)
        copy.release()
        return created - began, started - created
    return one


def cri_round(peer: Peer, pod: str, config: api_pb2.PodSandboxConfig) -> Round:
    rt = peer.runtime

    def one(i: int) -> tuple[float, float]:
        ctr = container_config(peer.image, ["sleep", "1000"])
        ctr.metadata.name = f"c{i}"
        began = time.perf_counter()
        new = rt.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=pod, config=ctr, sandbox_config=config),
            timeout=RPC_TIMEOUT).container_id
        peer.ids.add(new)
        created = time.perf_counter()
        rt.StartContainer(api_pb2.StartContainerRequest(container_id=new), timeout=RPC_TIMEOUT)
        started = time.perf_counter()
        rt.StopContainer(api_pb2.StopContainerRequest(container_id=new, timeout=0),
                         timeout=RPC_TIMEOUT)
        rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=new), timeout=RPC_TIMEOUT)
        return created - began, started - created
    return one


def print_steps(ms: dict[str, float], create_ms: float, start_ms: float) -> None:
    """The CRI calls' steps in the order they are passed: the catalogue's,
    with the handler's sub-steps (HANDLER_STEPS) where they fall."""
    order: list[str] = []
    for op in OPS:
        for step in CATALOGUE[op]:
            order += [s for s in HANDLER_STEPS.get(step, ()) if s not in order]
            order.append(step)
    order += sorted(s for s in ms if s.startswith(OPS) and s not in order)
    for op, wall in zip(OPS, (create_ms, start_ms)):
        print(f"  {op} over the CRI: p50 {wall:.1f} ms; mean per step:")
        named = 0.0
        for step in order:
            if step.startswith(op + ".") and step in ms:
                named += ms[step]
                print(f"    {step:44s} {ms[step]:7.2f} ms")
        print(f"    {'(outside the named steps: gRPC, the edge)':44s} {wall - named:7.2f} ms")


def run() -> int:
    if os.geteuid() != 0:
        print("  skipped: needs root")
        return 0
    print_machine(f"{ROUNDS} alternating rounds (+{WARMUP}) of create + start, runc handler")
    status = 0
    with bench_run("crn-bench-runcstart-") as bench, \
            tempfile.TemporaryDirectory(prefix="crn-bench-runcstart-files-") as files:
        bench.pusher.push_image("bench/busybox", "1", ImageBuilder().busybox().build())
        image = bench.image("bench/busybox")
        daemon, port = metrics_daemon(bench.tmp / "daemon", bench.netdir)
        ours = Peer("crio-native runc", daemon, image, handler="runc")
        own_root = Path(files) / "runc-root"
        own_root.mkdir()
        cgroups_before = cgroup_dirs()
        copy: BundleCopier | None = None
        try:
            daemon.start()
            pull_images(daemon, image)
            config = pod_config(ours, "start", bench.logs)
            pod, cid = start_pod(ours, config)
            copy = BundleCopier(daemon.base / "run" / "runtimes" / "runc", cid, Path(files))
            rounds: dict[str, Round] = {
                "runc create + start by hand (floor)": floor_round(copy, own_root),
                "handler create + start, in process": handler_round(copy, own_root),
                "the same without --warm-cgroup": handler_round(copy, own_root, warm=False),
                "CreateContainer + StartContainer (CRI)": cri_round(ours, pod, config)}
            names = list(rounds)
            times: dict[str, list[tuple[float, float]]] = {name: [] for name in rounds}
            before: dict[str, tuple[float, float]] = {}
            for i in range(WARMUP + ROUNDS):
                if i == WARMUP:
                    before = step_totals(port)
                for name in (names if i % 2 == 0 else names[::-1]):
                    pair = rounds[name](i)
                    if i >= WARMUP:
                        times[name].append(pair)
            ms = per_step_ms(before, step_totals(port))
            p50: dict[str, tuple[float, float, float]] = {}
            for name, pairs in times.items():
                both = [c + s for c, s in pairs]
                p50[name] = (statistics.median(c for c, _ in pairs) * 1000,
                             statistics.median(s for _, s in pairs) * 1000,
                             statistics.median(both) * 1000)
                print(f"  {name:<40} create {p50[name][0]:6.1f}  start {p50[name][1]:5.1f}"
                      f"  both {p50[name][2]:6.1f} ms (p95 {percentile(both, .95) * 1000:6.1f})")
            floor, alone, cold, cri = (p50[n] for n in names)
            print_steps(ms, cri[0], cri[1])
            print("ratios and differences (p50):")
            ratio("CRI create+start / runc floor", cri[2], floor[2])
            ratio("handler in process / runc floor", alone[2], floor[2])
            print(f"  the monitor's --warm-cgroup (handler - without): create "
                  f"{alone[0] - cold[0]:+.1f} ms")
            print(f"  our launch chain (handler - floor): create {alone[0] - floor[0]:+.1f} ms,"
                  f" start {alone[1] - floor[1]:+.1f} ms")
            print(f"  the daemon around it (CRI - handler): create {cri[0] - alone[0]:+.1f} ms,"
                  f" start {cri[1] - alone[1]:+.1f} ms")
        except Exception as e:           # noqa: BLE001 - reported; the run exits 1
            import traceback
            print(f"  FAILED: {e}\n{traceback.format_exc()}")
            status = 1
        finally:
            for left in subprocess.run([RUNC, "--root", str(own_root), "list", "-q"],
                                       capture_output=True, text=True).stdout.split():
                subprocess.run([RUNC, "--root", str(own_root), "delete", "--force", left],
                               capture_output=True)
            if copy is not None:
                copy.release()
            try:
                remove_all_pods(ours)
            except Exception as e:   # noqa: BLE001
                print(f"  warning: could not remove the pods left: {e}")
            daemon.stop()
            check_cgroups(ours, cgroups_before)
            log_problems("crio-native", daemon.log(), DAEMON_LOG_MARKERS)
    print_load_at_end()
    return status


BENCHMARK = ("runc_start", "the runc handler's CreateContainer + StartContainer, step by "
             "step, against runc create + start run by hand and the handler alone", run)
