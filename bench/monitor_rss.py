"""Resident memory of crio-native-monitor vs Debian's conmon, each watching
the same runc-created busybox `sleep 30` container (and ours also watching a
plain host `sleep`).  VmRSS counts shared libc pages; Pss splits them."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from crio_native.monitor import launch_monitor, process_alive, wait_exit
from tests.bundles import BUSYBOX, RuncBundle



# monitors running at once in the second measurement: a node runs many, and
# the pages of one static binary are shared among them (Pss splits them)
MANY = 10


def _memory(pid: int) -> tuple[int, int]:
    """(VmRSS, Pss) in KiB."""
    rss = re.search(r"^VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text(), re.M)
    pss = re.search(r"^Pss:\s+(\d+)", Path(f"/proc/{pid}/smaps_rollup").read_text(), re.M)
    return int(rss[1]), int(pss[1])


def _bundle(root: Path) -> Path:
    return RuncBundle(root / "bundle").with_args(BUSYBOX, "sleep", "30")


def _wait_gone(pid: int) -> None:
    while process_alive(pid):
        time.sleep(0.01)
    try:
        os.waitpid(pid, os.WNOHANG)   # ours as the subreaper: no zombie left
    except ChildProcessError:
        pass


def _runc(root: Path, *args: str) -> None:
    subprocess.run(["runc", "--root", str(root / "runc"), *args], check=True,
                   stdout=subprocess.DEVNULL)


def _mean(pairs: list[tuple[int, int]]) -> tuple[int, int]:
    return (sum(p[0] for p in pairs) // len(pairs), sum(p[1] for p in pairs) // len(pairs))


def measure_ours_runc(root: Path, bundle: Path, n: int = 1) -> tuple[int, int]:
    """Mean (VmRSS, Pss) of `n` monitors running at once, each over its own
    runc container: with several, their shared text pages split in Pss."""
    mons = []
    try:
        for i in range(n):
            state, cid = root / f"ours-{n}-{i}", f"bench-ours-{n}-{i}"
            state.mkdir()
            mons.append((cid, state, launch_monitor(
                cid, ["runc", "--root", str(root / "runc"), "create", "--bundle", str(bundle),
                      "--pid-file", str(state / "cpid"), cid],
                state, state / "ctr.log", container_pid_file=state / "cpid")))
            _runc(root, "start", cid)
        time.sleep(0.5)
        return _mean([_memory(mon.pid) for _, _, mon in mons])
    finally:
        for cid, state, mon in mons:
            _runc(root, "kill", cid, "KILL")
            wait_exit(state, 10)
            _wait_gone(mon.pid)
            _runc(root, "delete", "--force", cid)


def measure_ours_plain(root: Path) -> tuple[int, int]:
    state = root / "plain"
    state.mkdir()
    mon = launch_monitor("bench-plain", [BUSYBOX, "sleep", "30"], state, state / "ctr.log")
    try:
        time.sleep(0.5)
        return _memory(mon.pid)
    finally:
        os.kill(mon.container_pid, signal.SIGKILL)
        wait_exit(state, 10)
        _wait_gone(mon.pid)


def measure_conmon(root: Path, bundle: Path, n: int = 1) -> tuple[int, int]:
    """As measure_ours_runc, with Debian's conmon in place of our monitor."""
    started = []
    try:
        for i in range(n):
            state, cid = root / f"conmon-{n}-{i}", f"bench-conmon-{n}-{i}"
            state.mkdir()
            subprocess.run(["conmon", "-c", cid, "-u", uuid.uuid4().hex, "-n", cid,
                            "-r", shutil.which("runc"), "-b", str(bundle),
                            "-p", str(state / "cpid"), "-l", str(state / "ctr.log"),
                            "--exit-dir", str(state), "--socket-dir-path", str(state),
                            "-P", str(state / "conmon.pid"), "--runtime-arg", "--root",
                            "--runtime-arg", str(root / "runc")], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # without a sync pipe conmon's parent returns before `runc create` is done
            deadline = time.monotonic() + 10
            while not (state / "cpid").exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            started.append((cid, int((state / "conmon.pid").read_text())))
            _runc(root, "start", cid)
        time.sleep(0.5)
        return _mean([_memory(pid) for _, pid in started])
    finally:
        for cid, pid in started:
            _runc(root, "kill", cid, "KILL")
            _wait_gone(pid)
            _runc(root, "delete", "--force", cid)


def run() -> int:
    if os.geteuid() != 0:
        print("  skipped: needs root")
        return 0
    # the daemonized monitors and conmon reparent to us, and we reap them
    from crio_native._native import proc
    proc.set_child_subreaper(True)
    with tempfile.TemporaryDirectory(prefix="monitor-rss-") as tmp:
        root = Path(tmp)
        bundle = _bundle(root)
        plain = measure_ours_plain(root)
        ours = {n: measure_ours_runc(root, bundle, n) for n in (1, MANY)}
        have_conmon = shutil.which("conmon") is not None
        peer = {n: measure_conmon(root, bundle, n) for n in (1, MANY)} if have_conmon else None
    print(f"  crio-native-monitor (host sleep)   VmRSS {plain[0]:6d} KiB   Pss {plain[1]:6d} KiB")
    for n, (rss, pss) in ours.items():
        print(f"  crio-native-monitor (runc sleep) x{n:<3d} VmRSS {rss:6d} KiB   Pss {pss:6d} KiB"
              " (mean per monitor)")
    if peer is None:
        print("  conmon: skipped, not installed (Debian package conmon)")
        return 0
    for n, (rss, pss) in peer.items():
        print(f"  conmon 2.x          (runc sleep) x{n:<3d} VmRSS {rss:6d} KiB   Pss {pss:6d} KiB"
              " (mean per monitor)")
    for n in ours:
        print(f"  ratio ours/conmon, {n} at once: VmRSS {ours[n][0] / peer[n][0]:.2f}x   "
              f"Pss {ours[n][1] / peer[n][1]:.2f}x")
    return 0


BENCHMARK = ("monitor_rss", "RSS of the per-container monitor vs conmon", run)
