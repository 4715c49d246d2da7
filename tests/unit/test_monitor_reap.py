"""monitor.launch._reap: waiting for a monitor to end on a pidfd, and on the
5 ms poll where pidfd_open is missing (ENOSYS)."""
from __future__ import annotations

import errno
import os
import subprocess
import threading
import time

import pytest

from crio_native.monitor import launch


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "30"])
    yield proc
    proc.kill()
    proc.wait()


def no_pidfd(pid):
    raise OSError(errno.ENOSYS, "pidfd_open")


@pytest.mark.parametrize("pidfd", [True, False])
def test_wait_gone_returns_at_the_exit(sleeper, monkeypatch, pidfd):
    if not pidfd:
        monkeypatch.setattr(launch.os, "pidfd_open", no_pidfd)
    threading.Timer(0.2, sleeper.kill).start()
    began = time.monotonic()
    launch._wait_gone(sleeper.pid, 10)
    assert 0.15 < time.monotonic() - began < 5
    assert not launch.process_alive(sleeper.pid)     # a zombie until reaped


@pytest.mark.parametrize("pidfd", [True, False])
def test_wait_gone_gives_up_at_the_timeout(sleeper, monkeypatch, pidfd):
    if not pidfd:
        monkeypatch.setattr(launch.os, "pidfd_open", no_pidfd)
    began = time.monotonic()
    launch._wait_gone(sleeper.pid, 0.3)
    assert 0.25 < time.monotonic() - began < 5
    assert launch.process_alive(sleeper.pid)


def test_reap_kills_and_reaps_a_child(sleeper):
    launch._reap(sleeper.pid, kill=True)
    with pytest.raises(ChildProcessError):
        os.waitpid(sleeper.pid, os.WNOHANG)
    sleeper.returncode = -9          # reaped here, not by Popen


def test_reap_of_a_gone_pid_returns_at_once():
    proc = subprocess.Popen(["true"])
    proc.wait()
    began = time.monotonic()
    launch._reap(proc.pid, kill=False)      # (never kill=True here: the pid may be reused)
    assert time.monotonic() - began < 1
