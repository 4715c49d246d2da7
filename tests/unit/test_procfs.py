"""linux/procfs.children_of on our own children, with and without the
kernel's children files (CONFIG_PROC_CHILDREN), and descendants_of (the
built-in runtime's walk) on top of it."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from crio_native.linux import procfs
from crio_native.runtime.builtin.process import descendants_of


@pytest.fixture
def child():
    proc = subprocess.Popen(["sleep", "30"])
    yield proc
    proc.kill()
    proc.wait()


def wait_zombie(pid: int) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat", "rb") as f:
            if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                return
        time.sleep(0.01)
    raise AssertionError(f"{pid} did not become a zombie")


@pytest.mark.parametrize("complete", [False, True])
def test_children_of_lists_our_children_and_zombies(child, complete):
    assert child.pid in procfs.children_of(os.getpid(), complete=complete)
    zombie = subprocess.Popen(["true"])
    try:
        wait_zombie(zombie.pid)
        assert zombie.pid in procfs.children_of(os.getpid(), complete=complete)
    finally:
        zombie.wait()
    assert zombie.pid not in procfs.children_of(os.getpid(), complete=complete)


def test_without_children_files_only_complete_scans(child, monkeypatch):
    if not os.path.exists(procfs.CHILDREN_FILE.format(pid=os.getpid(), tid=os.getpid())):
        pytest.skip("this kernel has no CONFIG_PROC_CHILDREN: the plain case is the fallback")
    monkeypatch.setattr(procfs, "CHILDREN_FILE", "/proc/{pid}/task/{tid}/no-such-children")
    assert procfs.children_of(os.getpid()) == set()
    assert child.pid in procfs.children_of(os.getpid(), complete=True)


def test_a_gone_pid_has_no_children():
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert procfs.children_of(proc.pid) == set()
    assert procfs.children_of(proc.pid, complete=True) == set()


def test_descendants_of_walks_the_tree():
    proc = subprocess.Popen(["sh", "-c", "sleep 30 & echo $!; wait"], stdout=subprocess.PIPE)
    grandchild = 0
    try:
        grandchild = int(proc.stdout.readline())
        assert descendants_of(proc.pid) >= {proc.pid, grandchild}
        assert os.getpid() not in descendants_of(proc.pid)
    finally:
        if grandchild:
            os.kill(grandchild, signal.SIGKILL)     # sh reaps it, then ends
        proc.wait(timeout=10)
        proc.stdout.close()
