"""crio_native._native.proc: pidfds and the child subreaper bit."""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import time

import pytest

from crio_native._native import proc
from crio_native.errors import NativeError
from tests.native.forked import run_in_child

pytestmark = pytest.mark.root


def test_pidfd_signals_the_process():
    child = subprocess.Popen(["/bin/busybox", "sleep", "30"])
    fd = proc.pidfd_open(child.pid)
    try:
        assert os.get_inheritable(fd) is False
        proc.pidfd_send_signal(fd, signal.SIGTERM)
        assert child.wait(timeout=10) == -signal.SIGTERM
    finally:
        os.close(fd)


def test_pidfd_of_reaped_process_refuses_signals():
    child = subprocess.Popen(["/bin/busybox", "true"])
    fd = proc.pidfd_open(child.pid)
    child.wait()
    try:
        with pytest.raises(ProcessLookupError) as info:
            proc.pidfd_send_signal(fd, signal.SIGTERM)
        assert isinstance(info.value, NativeError)
        assert "pidfd_send_signal" in info.value.strerror
    finally:
        os.close(fd)


def test_pidfd_open_missing_pid():
    child = subprocess.Popen(["/bin/busybox", "true"])
    child.wait()
    with pytest.raises(ProcessLookupError):
        proc.pidfd_open(child.pid)


def test_pidfd_send_signal_bad_fd():
    with pytest.raises(NativeError) as info:
        proc.pidfd_send_signal(-1, signal.SIGTERM)
    assert info.value.errno == errno.EBADF


def test_subreaper_adopts_orphans():
    def body():
        proc.set_child_subreaper(True)
        r, w = os.pipe()
        middle = os.fork()
        if middle == 0:
            grandchild = os.fork()
            if grandchild == 0:
                time.sleep(0.2)
                ppid = os.getppid()
                os.write(w, str(ppid).encode())
                os._exit(0)
            os._exit(0)  # orphan the grandchild
        os.waitpid(middle, 0)
        adopter = int(os.read(r, 32))
        os.wait()  # reap the adopted grandchild
        return adopter, os.getpid()

    adopter, me = run_in_child(body, new_mount_ns=False)
    assert adopter == me
