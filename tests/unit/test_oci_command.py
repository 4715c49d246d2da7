"""RuntimeCommand's process runner (runtime/oci/command.py run_to_end):
subprocess.run's contract (output, exit status, TimeoutExpired with the
command killed), waited for on a pidfd."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

import pytest

from crio_native.runtime.oci.command import run_to_end


def test_output_and_exit_status():
    p = run_to_end(["sh", "-c", "echo out; echo err >&2; exit 3"], 10)
    assert (p.returncode, p.stdout, p.stderr) == (3, b"out\n", b"err\n")


def test_killed_by_a_signal():
    p = run_to_end(["sh", "-c", "kill -9 $$"], 10)
    assert p.returncode == -9


def test_timeout_kills_the_command(tmp_path):
    pid_file = tmp_path / "pid"
    began = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        run_to_end(["sh", "-c", f"echo $$ > {pid_file}; exec sleep 30"], 0.5)
    assert time.monotonic() - began < 5
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):    # killed and reaped
        os.kill(pid, 0)


def test_a_background_child_holding_the_output_does_not_hold_the_call(tmp_path):
    pid_file = tmp_path / "pid"
    began = time.monotonic()
    try:
        p = run_to_end(["sh", "-c", f"sleep 30 & echo $! > {pid_file}; echo done"], 60)
        assert (p.returncode, p.stdout) == (0, b"done\n")
        assert time.monotonic() - began < 20
    finally:
        if pid_file.exists():         # the child is the test's to end
            pid = int(pid_file.read_text())
            os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def test_missing_executable():
    with pytest.raises(FileNotFoundError):
        run_to_end(["/nonexistent/runc"], 10)
