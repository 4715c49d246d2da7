"""monitor.launch.process_alive: a process that is gone or going is simply
not running; reading its /proc entry never raises (issue 17: ESRCH from
the stat of an exiting task answered StopPodSandbox with INTERNAL)."""
from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from crio_native.monitor import launch


def unused_pid() -> int:
    """A pid no process can have: above the kernel's pid_max."""
    return int(Path("/proc/sys/kernel/pid_max").read_text()) + 1


def stat_reads(monkeypatch, outcome) -> None:
    """Make every /proc/<pid>/stat read answer `outcome` (text, or an
    exception to raise)."""
    real = Path.read_text

    def read_text(self, *args, **kwargs):
        if self.name != "stat" or not str(self).startswith("/proc/"):
            return real(self, *args, **kwargs)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    monkeypatch.setattr(launch.Path, "read_text", read_text)


def test_own_process_runs():
    assert launch.process_alive(os.getpid())


def test_a_pid_without_a_process_is_not_running():
    assert not launch.process_alive(unused_pid())


def test_esrch_while_reading_stat_is_not_running(monkeypatch):
    stat_reads(monkeypatch, ProcessLookupError(errno.ESRCH, "No such process"))
    assert not launch.process_alive(os.getpid())


@pytest.mark.parametrize("stat", ["", "123 (sh", "123 (sh) "],
                         ids=["empty", "cut-in-name", "cut-before-state"])
def test_a_stat_cut_short_is_not_running(monkeypatch, stat):
    stat_reads(monkeypatch, stat)
    assert not launch.process_alive(123)


@pytest.mark.parametrize("state,alive", [("R", True), ("S", True), ("D", True), ("T", True),
                                         ("Z", False), ("X", False), ("x", False)])
def test_state_letter(monkeypatch, state, alive):
    # a comm with ") " inside: only the last parenthesis ends it
    stat_reads(monkeypatch, f"4242 (a) b) {state} 1 4242 4242 0 -1")
    assert launch.process_alive(4242) is alive


def test_other_read_errors_still_raise(monkeypatch):
    # EACCES is not "gone": the caller should hear about it
    stat_reads(monkeypatch, PermissionError(errno.EACCES, "Permission denied"))
    with pytest.raises(PermissionError):
        launch.process_alive(os.getpid())
