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


def measure_ours_runc(root: Path, bundle: Path) -> tuple[int, int]:
    state, cid = root / "ours", "bench-ours"
    state.mkdir()
    mon = launch_monitor(cid, ["runc", "--root", str(root / "runc"), "create", "--bundle",
                               str(bundle), "--pid-file", str(state / "cpid"), cid],
                         state, state / "ctr.log", container_pid_file=state / "cpid")
    try:
        _runc(root, "start", cid)
        time.sleep(0.5)
        return _memory(mon.pid)
    finally:
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


def measure_conmon(root: Path, bundle: Path) -> tuple[int, int]:
    state, cid = root / "conmon", "bench-conmon"
    state.mkdir()
    subprocess.run(["conmon", "-c", cid, "-u", uuid.uuid4().hex, "-n", cid, "-r", shutil.which("runc"),
                    "-b", str(bundle), "-p", str(state / "cpid"), "-l", str(state / "ctr.log"),
                    "--exit-dir", str(state), "--socket-dir-path", str(state),
                    "-P", str(state / "conmon.pid"), "--runtime-arg", "--root",
                    "--runtime-arg", str(root / "runc")], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # without a sync pipe conmon's parent returns before `runc create` is done
    deadline = time.monotonic() + 10
    while not (state / "cpid").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    pid = int((state / "conmon.pid").read_text())
    try:
        _runc(root, "start", cid)
        time.sleep(0.5)
        return _memory(pid)
    finally:
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
        ours = measure_ours_runc(root, bundle)
        have_conmon = shutil.which("conmon") is not None
        peer = measure_conmon(root, bundle) if have_conmon else None
    print(f"  crio-native-monitor (host sleep)   VmRSS {plain[0]:6d} KiB   Pss {plain[1]:6d} KiB")
    print(f"  crio-native-monitor (runc sleep)   VmRSS {ours[0]:6d} KiB   Pss {ours[1]:6d} KiB")
    if peer is None:
        print("  conmon: skipped, not installed (Debian package conmon)")
        return 0
    print(f"  conmon 2.x          (runc sleep)   VmRSS {peer[0]:6d} KiB   Pss {peer[1]:6d} KiB")
    print(f"  ratio VmRSS ours/conmon: {ours[0] / peer[0]:.2f}x   Pss: {ours[1] / peer[1]:.2f}x")
    return 0


BENCHMARK = ("monitor_rss", "RSS of the per-container monitor vs conmon", run)
