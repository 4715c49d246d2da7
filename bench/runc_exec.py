"""ExecSync through the runc handler against its floor (issue 21): runc
itself.  One container started by crio-native's runc handler is exec'd
into, in alternating rounds, by
  - `runc exec <id> true` run directly (the floor), and the same while
    this process holds the cgroup attach warmer (linux/cgroups/warm.py:
    the floor moves),
  - `runc exec --process F --pid-file P --log L <id>` run directly, as the
    handler calls it (the floor of our way of calling it), from runc's
    path and from a sealed in-memory copy of runc as the handler runs it
    (runtime/oci/sealed.py: `runc init` then skips cloning itself),
  - the handler's exec path in this process (runtime/oci/exec.py, no
    daemon, no gRPC): what our own bookkeeping around runc adds, as it is
    (holding the shared attach warmer while runc runs) and with a warmer
    that does nothing (what the warmer gains), and with runc run from its
    path instead of the sealed copy (what the copy gains),
  - ExecSync over the CRI to the daemon (the whole of ours),
  - ExecSync over the CRI to containerd (runc through its shim v2), if
    installed;
then N callers at once (CRN_BENCH_EXEC_CALLERS, default 4) for a while,
ops/s for ours and containerd's, and the in-process path with and without
the warmer.  Ratios are printed against runc's floor
and containerd.  (The runtime part of a pod start against its floor, step
by step: bench/runc_start.py.)

Environment: CRN_BENCH_EXECS (rounds, default 100), CRN_BENCH_EXEC_CALLERS
(default 4), CRN_BENCH_EXEC_SECONDS (each throughput run, default 5),
CRN_BENCH_EXEC_GAP_MS (a pause before each timed call, default 0: back to
back; with some 20 ms and more each call's cgroup write comes after a quiet
spell, as a probe's does, instead of within a grace period of the call
before), CRN_BENCH_EXEC_STRACE (default 0: after the timed rounds, this
many ExecSync calls with strace attached to the daemon's threads, split
into the time from the client's send to the daemon's spawn of runc, runc
until the daemon reaps it, and from there to the reply; strace slows
every syscall of the daemon, so the split is a guide, not a figure;
CRN_BENCH_EXEC_STRACE_FILTER: strace's -e for more syscalls in the trace,
CRN_BENCH_EXEC_STRACE_KEEP: a path to keep the trace at)."""
from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ratio  # noqa: E402
from bench.cri_setup import (RPC_TIMEOUT, DAEMON_LOG_MARKERS, Peer, bench_run,  # noqa: E402
                             check_cgroups, crio_native_daemon, log_problems,
                             percentile, pod_config, print_load_at_end, print_machine, pull_images,
                             remove_all_pods, start_pod)
from bench.peers import Containerd, cgroup_dirs, containerd_missing  # noqa: E402
from bench.pod import own_cgroup_parent  # noqa: E402
from crio_native._proto import api_pb2  # noqa: E402
from crio_native.linux.cgroups import warm  # noqa: E402
from crio_native.runtime.oci import exec as oci_exec  # noqa: E402
from crio_native.runtime.oci import sealed  # noqa: E402
from crio_native.runtime.oci.command import RuntimeCommand  # noqa: E402
from tests.e2e import cni  # noqa: E402
from tests.fixtures.oci_builder import ImageBuilder  # noqa: E402

ROUNDS = int(os.environ.get("CRN_BENCH_EXECS", "100"))
CALLERS = int(os.environ.get("CRN_BENCH_EXEC_CALLERS", "4"))
SECONDS = float(os.environ.get("CRN_BENCH_EXEC_SECONDS", "5"))
GAP = float(os.environ.get("CRN_BENCH_EXEC_GAP_MS", "0")) / 1000
STRACED = int(os.environ.get("CRN_BENCH_EXEC_STRACE", "0"))
WARMUP = 5
RUNC = "/usr/sbin/runc"

Call = Callable[[], None]


def exec_sync_call(peer: Peer, cid: str) -> Call:
    request = api_pb2.ExecSyncRequest(container_id=cid, cmd=["true"], timeout=10)

    def call() -> None:
        reply = peer.runtime.ExecSync(request, timeout=RPC_TIMEOUT)
        if reply.exit_code != 0:
            raise RuntimeError(f"{peer.label} ExecSync true: exit code {reply.exit_code}, "
                               f"stderr {reply.stderr[-300:]!r}")
    return call


def runc_calls(root: Path, cid: str, tmp: Path) -> dict[str, Call]:
    """The floor: runc run directly, plain and as the handler calls it
    (with files of the call's own: runc's --pid-file is not for sharing)."""
    bundle = Path(json.loads(subprocess.run([RUNC, "--root", str(root), "state", cid],
                                            capture_output=True, check=True).stdout)["bundle"])
    process = dict(json.loads((bundle / "config.json").read_text())["process"])
    process.update(args=["true"], terminal=False)
    plain = [RUNC, "--root", str(root), "exec", cid, "true"]

    def as_we_call_it(sealed_copy: bool) -> Call:
        def call() -> None:
            calls = tmp / f"thread-{threading.get_ident()}"
            calls.mkdir(exist_ok=True)
            process_file, pid_file = calls / "process.json", calls / "exec.pid"
            process_file.write_text(json.dumps(process))
            argv = [RUNC, "--root", str(root), "--log-format", "json", "--log",
                    str(calls / "runc.log"), "exec", "--process", str(process_file),
                    "--pid-file", str(pid_file), cid]
            if not sealed_copy:
                spawn(argv)()
                return
            with sealed.shared(RUNC).executable() as executable:
                spawn(argv, executable)()
        return call

    def spawn(argv: list[str], executable: str | None = None) -> Call:
        def call() -> None:
            subprocess.run(argv, executable=executable, stdin=subprocess.DEVNULL,
                           capture_output=True, check=True)
        return call

    command = RuntimeCommand("runc", RUNC, root)
    cold = warm.AttachWarmer(None, probe=False)

    unsealed = RuntimeCommand("runc", RUNC, root, sealed_copy=False)

    def in_process(warmer: warm.AttachWarmer | None, how: RuntimeCommand = command) -> Call:
        def call() -> None:
            result = oci_exec.exec_sync(how, cid, process, 10.0, warmer=warmer)
            if result.exit_code != 0:
                raise RuntimeError(f"exec path: exit code {result.exit_code}")
        return call

    def warm_floor() -> None:
        with warm.shared().held():
            spawn(plain)()

    return {"runc exec true (floor)": spawn(plain),
            "runc exec true, warmer held": warm_floor,
            "runc exec --process (as we call it)": as_we_call_it(False),
            "the same from a sealed copy of runc": as_we_call_it(True),
            "handler exec path, in process": in_process(None),
            "handler exec path, no warmer": in_process(cold),
            "handler exec path, runc from its path": in_process(None, unsealed)}


def cpu_seconds(pids: list[int]) -> float:
    """user + system CPU of `pids` themselves (not of their waited-for children: runc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / tick


def containerd_pids(containerd: Containerd) -> list[int]:
    """containerd and the shims it started for its socket."""
    pids = [containerd.proc.pid] if containerd.proc else []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            argv = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"containerd-shim-runc-v2") \
                and containerd.socket.encode() in argv:
            pids.append(int(name))
    return pids


def alternate(calls: dict[str, Call], rounds: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for i in range(WARMUP + rounds):
        for name in (names if i % 2 == 0 else names[::-1]):
            if GAP:
                time.sleep(GAP)
            began = time.perf_counter()
            calls[name]()
            if i >= WARMUP:
                samples[name].append(time.perf_counter() - began)
    return samples


def throughput(call: Call, callers: int, seconds: float) -> float:
    """ops/s of `callers` threads calling `call` for `seconds`."""
    done = [0] * callers
    stop = time.monotonic() + seconds
    errors: list[BaseException] = []

    def caller(i: int) -> None:
        try:
            while time.monotonic() < stop:
                call()
                done[i] += 1
        except BaseException as e:        # noqa: BLE001 - reported below
            errors.append(e)
    began = time.perf_counter()
    threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sum(done) / (time.perf_counter() - began)


# strace -ttt lines of the daemon's threads: a fork's return (the child's
# pid; with vfork, after the child's execve) and a wait4's (the reaped pid).
_FORKED = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+(?:<\.\.\. )?(?:vfork|clone3?)\b.*= (\d+)$")
_REAPED = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+(?:<\.\.\. )?wait4\b.*= (\d+)$")


def strace_split(daemon_pid: int, call: Call, calls: int, out: Path) -> None:
    """`calls` ExecSync calls with strace on the daemon's threads (not on
    runc: -f would slow runc itself), each split into send -> runc spawned,
    spawned -> reaped, reaped -> reply (wall clock, strace's -ttt)."""
    tids = os.listdir(f"/proc/{daemon_pid}/task")
    argv = ["strace", "-ttt", "-qq", "-e", os.environ.get("CRN_BENCH_EXEC_STRACE_FILTER",
                                                       "trace=vfork,clone,clone3,wait4"), "-e",
            "signal=none", "-o", str(out)] + [a for t in tids for a in ("-p", t)]
    tracer = subprocess.Popen(argv, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)       # strace says nothing once attached with -qq
        windows = []
        for _ in range(calls):
            began = time.time()
            call()
            windows.append((began, time.time()))
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait()
    forked: dict[int, float] = {}
    reaped: dict[int, float] = {}
    for line in out.read_text().splitlines():
        if m := _FORKED.match(line):
            forked[int(m.group(3))] = float(m.group(2))
        elif m := _REAPED.match(line):
            reaped[int(m.group(3))] = float(m.group(2))
    parts: list[tuple[float, float, float]] = []
    for began, ended in windows:
        inside = [(forked[p], reaped[p]) for p in forked
                  if p in reaped and began <= forked[p] <= reaped[p] <= ended]
        if len(inside) == 1:
            spawned, done = inside[0]
            parts.append((spawned - began, done - spawned, ended - done))
    keep = os.environ.get("CRN_BENCH_EXEC_STRACE_KEEP")
    if keep:
        Path(keep).write_text(out.read_text() + "".join(
            f"# call sent {began:.6f} answered {ended:.6f}\n" for began, ended in windows))
    if not parts:
        print(f"  strace split: no call matched ({out})")
        return
    before, runc, after = (statistics.median(p[i] for p in parts) * 1000 for i in range(3))
    print(f"  strace split of {len(parts)}/{calls} ExecSync calls (daemon traced, p50): send ->"
          f" runc spawned {before:.1f} ms, runc run and reaped {runc:.1f} ms, reaped -> reply"
          f" {after:.1f} ms")


def run() -> int:
    if os.geteuid() != 0:
        print("  skipped: needs root")
        return 0
    print_machine(f"{ROUNDS} alternating rounds (+{WARMUP}), {CALLERS} callers for "
                  f"{SECONDS:.0f} s; ExecSync `true`; {GAP * 1000:.0f} ms before each call")
    status = 0
    with bench_run("crn-bench-runcexec-") as bench, \
            tempfile.TemporaryDirectory(prefix="crn-bench-runcexec-files-") as files:
        bench.pusher.push_image("bench/busybox", "1", ImageBuilder().busybox().build())
        image = bench.image("bench/busybox")
        daemon = crio_native_daemon(bench.tmp / "daemon", bench.netdir)
        ours = Peer("crio-native runc", daemon, image, handler="runc")
        containerd = None
        cgroups_before = cgroup_dirs()
        try:
            daemon.start()
            pull_images(daemon, image)
            _, cid = start_pod(ours, pod_config(ours, "exec", bench.logs))
            calls = runc_calls(daemon.base / "run" / "runtimes" / "runc", cid, Path(files))
            calls["crio-native runc ExecSync"] = exec_sync_call(ours, cid)
            missing = containerd_missing()
            if missing:
                print(f"  containerd: skipped, {missing}")
            else:
                containerd = Containerd(bench.pause, bench.registry.host, cni.PLUGIN_DIR,
                                        str(bench.netdir))
                peer = Peer("containerd", containerd, image, cgroup_parent=own_cgroup_parent())
                containerd.start()
                pull_images(containerd, bench.pause, image)
                _, peer_cid = start_pod(peer, pod_config(peer, "exec", bench.logs))
                calls["containerd ExecSync"] = exec_sync_call(peer, peer_cid)
            assert daemon.proc is not None
            helpers = {"crio-native runc ExecSync": [daemon.proc.pid]}
            if containerd is not None:
                helpers["containerd ExecSync"] = containerd_pids(containerd)
            cpu_before = {name: cpu_seconds(pids) for name, pids in helpers.items()}
            samples = alternate(calls, ROUNDS)
            for name, pids in helpers.items():
                per_call = (cpu_seconds(pids) - cpu_before[name]) / (WARMUP + ROUNDS) * 1000
                print(f"  {name}: CPU of the daemon side (runc excluded) {per_call:.1f} ms"
                      f" per call ({len(pids)} processes)")
            for name, got in samples.items():
                print(f"  {name:<40} p50 {statistics.median(got) * 1000:7.1f} ms"
                      f"   p95 {percentile(got, .95) * 1000:7.1f} ms   n={len(got)}")
            if STRACED:
                strace_split(daemon.proc.pid, calls["crio-native runc ExecSync"], STRACED,
                             bench.tmp / "daemon.strace")
            rates = {"crio-native runc": throughput(calls["crio-native runc ExecSync"],
                                                    CALLERS, SECONDS)}
            if containerd is not None:
                rates["containerd"] = throughput(calls["containerd ExecSync"], CALLERS, SECONDS)
            rates["runc exec --process (floor)"] = throughput(
                calls["runc exec --process (as we call it)"], CALLERS, SECONDS)
            for name in ("handler exec path, in process", "handler exec path, no warmer"):
                rates[name] = throughput(calls[name], CALLERS, SECONDS)
            for name, rate in rates.items():
                print(f"  {CALLERS} callers, {name:<36} {rate:7.1f} ops/s")
            p50 = {name: statistics.median(got) for name, got in samples.items()}
            floor = p50["runc exec true (floor)"]
            print("ratios:")
            ratio("runc exec floor: runc exec --process / runc exec true",
                  p50["runc exec --process (as we call it)"], floor)
            ratio("runc exec --process: from a sealed copy / from its path",
                  p50["the same from a sealed copy of runc"],
                  p50["runc exec --process (as we call it)"])
            ratio("crio-native runc ExecSync p50 / runc exec --process (as we call it)",
                  p50["crio-native runc ExecSync"], p50["runc exec --process (as we call it)"])
            ratio("crio-native runc ExecSync p50 / runc exec floor",
                  p50["crio-native runc ExecSync"], floor)
            ratio("handler exec path p50 / runc exec --process",
                  p50["handler exec path, in process"],
                  p50["runc exec --process (as we call it)"])
            ratio("runc exec floor: warmer held / not",
                  p50["runc exec true, warmer held"], floor)
            ratio("handler exec path p50: sealed copy of runc / runc from its path",
                  p50["handler exec path, in process"],
                  p50["handler exec path, runc from its path"])
            ratio("handler exec path p50: warmer / no warmer",
                  p50["handler exec path, in process"], p50["handler exec path, no warmer"])
            ratio(f"handler exec path ops/s: warmer / no warmer ({CALLERS} callers)",
                  rates["handler exec path, in process"], rates["handler exec path, no warmer"])
            if containerd is not None:
                ratio("crio-native runc ExecSync p50 / containerd",
                      p50["crio-native runc ExecSync"], p50["containerd ExecSync"])
                ratio(f"containerd ops/s / crio-native runc ops/s ({CALLERS} callers)",
                      rates["containerd"], rates["crio-native runc"])
        except Exception as e:           # noqa: BLE001 - reported; the run exits 1
            import traceback
            print(f"  FAILED: {e}\n{traceback.format_exc()}")
            status = 1
        finally:
            for peer_ in ([ours] + ([peer] if containerd is not None else [])):
                try:
                    remove_all_pods(peer_)
                except Exception as e:   # noqa: BLE001
                    print(f"  warning: could not remove the pods left: {e}")
            daemon.stop()
            if containerd is not None:
                containerd.stop()
            check_cgroups(ours, cgroups_before)
            log_problems("crio-native", daemon.log(), DAEMON_LOG_MARKERS)
    print_load_at_end()
    return status


BENCHMARK = ("runc_exec", "ExecSync through the runc handler vs runc exec itself (its floor) "
             "and containerd, one at a time and N callers at once", run)
