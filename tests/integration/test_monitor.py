"""The per-container monitor (crio-native-monitor) run for real on the host:
busybox commands stand in for container processes, the test process stands
in for the daemon.  Covers the CRI log format, exit recording (also with the
launcher SIGKILLed), daemonizing and fd hygiene."""
from __future__ import annotations

import calendar
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from crio_native.errors import FailedPrecondition, InvalidArgument
from crio_native.monitor import (
    launch_monitor, monitor_binary, process_alive, read_exit,
    reopen_log, wait_exit,
)

BB = "/bin/busybox"
LOG_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{9})Z (stdout|stderr) ([PF]) (.*)$", re.S)


def sh(script: str) -> list[str]:
    return [BB, "sh", "-c", script]


def wait_gone(pid: int, timeout: float = 10.0) -> None:
    """Wait for a process to end; reap it if it was reparented to us (the
    suite makes the test process a child subreaper)."""
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        assert time.monotonic() < deadline, f"process {pid} still running"
        time.sleep(0.01)
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def wait_for(cond, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (value := cond()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)
    return value


def log_entries(path: Path) -> list[tuple[int, str, str, str]]:
    """(timestamp ns, stream, P|F, text) per line of a CRI log file."""
    out = []
    for line in path.read_text().split("\n")[:-1]:
        m = LOG_LINE.match(line)
        assert m, f"not a CRI log line: {line!r}"
        secs = calendar.timegm(time.strptime(m[1], "%Y-%m-%dT%H:%M:%S"))
        out.append((secs * 10**9 + int(m[2]), m[3], m[4], m[5]))
    return out


def joined(entries, stream: str) -> list[str]:
    """Lines of one stream as a reader rebuilds them: P entries joined up to F."""
    lines, part = [], ""
    for _ts, s, tag, text in entries:
        if s != stream:
            continue
        part += text
        if tag == "F":
            lines.append(part)
            part = ""
    return lines + ([part] if part else [])


class Monitors:
    """Launches monitors and makes sure none outlives its test."""

    def __init__(self, root: Path):
        self.root = root
        self.started = []

    def state_dir(self, name: str = "c") -> Path:
        d = self.root / name
        d.mkdir(exist_ok=True)
        return d

    def launch(self, argv, name: str = "c", **kw):
        d = self.state_dir(name)
        mon = launch_monitor(name, argv, d, d / "ctr.log", **kw)
        self.started.append(mon)
        return mon

    def finish(self, mon, timeout: float = 10.0):
        status = wait_exit(mon.state_dir, timeout)
        wait_gone(mon.pid)
        return status

    def cleanup(self):
        for mon in self.started:
            if process_alive(mon.container_pid):
                os.kill(mon.container_pid, signal.SIGKILL)
            wait_gone(mon.pid)


@pytest.fixture
def monitors(tmp_path):
    m = Monitors(tmp_path)
    yield m
    m.cleanup()


# ---- the CRI log -------------------------------------------------------------

def test_log_lines_for_stdout_and_stderr(monitors):
    before = time.time_ns()
    mon = monitors.launch(sh("echo out1; echo err1 >&2; echo out2; echo 'err 2' >&2"))
    monitors.finish(mon)
    after = time.time_ns()
    entries = log_entries(mon.log_path)
    assert joined(entries, "stdout") == ["out1", "out2"]
    assert joined(entries, "stderr") == ["err1", "err 2"]
    assert all(tag == "F" for _, _, tag, _ in entries)
    stamps = [ts for ts, *_ in entries]
    assert before <= stamps[0] and stamps[-1] <= after
    assert stamps == sorted(stamps)


def test_partial_line_then_full_line(monitors):
    mon = monitors.launch(sh("printf abc; sleep 0.3; echo def; printf tail"))
    monitors.finish(mon)
    entries = [(s, tag, text) for _, s, tag, text in log_entries(mon.log_path)]
    # written as it came: "abc" alone as P, the rest of its line as F, and the
    # unterminated last line as a final P
    assert entries == [("stdout", "P", "abc"), ("stdout", "F", "def"),
                       ("stdout", "P", "tail")]
    assert joined(log_entries(mon.log_path), "stdout") == ["abcdef", "tail"]


def test_line_over_16k_is_split(monitors, tmp_path):
    n = 200000
    (tmp_path / "line").write_bytes(b"a" * n + b"\n")
    # one write(2) bigger than the pipe, so the monitor's reads come back full
    mon = monitors.launch(sh(f"{BB} dd if={tmp_path}/line bs={n + 1} count=1 2>/dev/null; "
                             "echo next"))
    monitors.finish(mon)
    entries = log_entries(mon.log_path)
    first_full = next(i for i, e in enumerate(entries) if e[2] == "F")
    long_line = entries[:first_full + 1]   # P chunks, then the F ending it
    assert max(len(text) for *_, text in entries) == 16384
    assert len(long_line) >= n // 16384 + 1
    assert joined(entries, "stdout") == ["a" * n, "next"]


def test_empty_lines_are_logged(monitors):
    mon = monitors.launch(sh("echo; echo x; echo"))
    monitors.finish(mon)
    assert [(tag, text) for _, _, tag, text in log_entries(mon.log_path)] == [
        ("F", ""), ("F", "x"), ("F", "")]


def test_reopen_log_after_rename(monitors, tmp_path):
    go = tmp_path / "go"
    mon = monitors.launch(sh(f"echo before; while [ ! -e {go} ]; do {BB} sleep 0.02; done; "
                             "echo after"))
    wait_for(lambda: "before" in mon.log_path.read_text(), what="first line")
    rotated = mon.log_path.with_name("ctr.log.1")
    os.rename(mon.log_path, rotated)
    reopen_log(mon.state_dir)
    go.touch()
    monitors.finish(mon)
    assert joined(log_entries(rotated), "stdout") == ["before"]
    assert joined(log_entries(mon.log_path), "stdout") == ["after"]


def test_reopen_log_on_sigusr1(monitors, tmp_path):
    go = tmp_path / "go"
    mon = monitors.launch(sh(f"echo one; while [ ! -e {go} ]; do {BB} sleep 0.02; done; "
                             "echo two"))
    wait_for(lambda: "one" in mon.log_path.read_text(), what="first line")
    rotated = mon.log_path.with_name("ctr.log.1")
    os.rename(mon.log_path, rotated)
    os.kill(mon.pid, signal.SIGUSR1)
    wait_for(mon.log_path.exists, what="the reopened log")
    go.touch()
    monitors.finish(mon)
    assert joined(log_entries(rotated), "stdout") == ["one"]
    assert joined(log_entries(mon.log_path), "stdout") == ["two"]


def test_reopen_log_of_exited_container_fails(monitors):
    mon = monitors.launch(sh("true"))
    monitors.finish(mon)
    with pytest.raises(FailedPrecondition):
        reopen_log(mon.state_dir)


def test_background_process_holding_stdout_does_not_keep_the_monitor(monitors, tmp_path):
    bg = tmp_path / "bg.pid"
    mon = monitors.launch(sh(f"{BB} sleep 30 & echo $! > {bg}; echo hi; exit 2"))
    try:
        start = time.monotonic()
        status = monitors.finish(mon)
        # drained once the pipes went quiet, not when the sleep ends
        assert time.monotonic() - start < 5
        assert status.exit_code == 2
        assert joined(log_entries(mon.log_path), "stdout") == ["hi"]
    finally:
        pid = int(bg.read_text())
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid)


# ---- exit recording ----------------------------------------------------------

def test_exit_code_recorded(monitors):
    before = time.time_ns()
    mon = monitors.launch(sh("exit 42"))
    status = monitors.finish(mon)
    assert (status.exit_code, status.signal, status.oom_killed) == (42, 0, False)
    assert before <= status.finished_at_ns <= time.time_ns()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", status.finished_at)


def test_stale_exit_file_is_removed_at_start(monitors):
    d = monitors.state_dir("c")
    (d / "exit").write_text("code=1\nsignal=0\nfinished=2024-01-02T15:04:05.000000000Z\noom=0\n")
    mon = monitors.launch([BB, "sleep", "30"])
    assert read_exit(mon.state_dir) is None
    os.kill(mon.container_pid, signal.SIGKILL)
    assert monitors.finish(mon).exit_code == 137


def test_signal_recorded(monitors):
    mon = monitors.launch([BB, "sleep", "30"])
    assert read_exit(mon.state_dir) is None
    os.kill(mon.container_pid, signal.SIGKILL)
    status = monitors.finish(mon)
    assert (status.exit_code, status.signal) == (137, 9)


def test_sigterm_to_monitor_is_passed_to_the_container(monitors):
    mon = monitors.launch([BB, "sleep", "30"])
    os.kill(mon.pid, signal.SIGTERM)
    status = monitors.finish(mon)
    assert (status.exit_code, status.signal) == (143, 15)


LAUNCHER = textwrap.dedent("""
    import sys, time
    from crio_native.monitor import launch_monitor
    state, log, script = sys.argv[1:4]
    mon = launch_monitor("c", ["/bin/busybox", "sh", "-c", script], state, log)
    print(mon.pid, mon.container_pid, flush=True)
    time.sleep(60)
""")


def test_exit_recorded_after_launcher_sigkilled(monitors, tmp_path):
    go = tmp_path / "go"
    state = monitors.state_dir("c")
    script = f"echo started; while [ ! -e {go} ]; do {BB} sleep 0.02; done; echo done; exit 7"
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(state),
                                 str(state / "ctr.log"), script], stdout=subprocess.PIPE)
    try:
        mon_pid, ctr_pid = map(int, launcher.stdout.readline().split())
    finally:
        launcher.kill()
        launcher.wait()
        launcher.stdout.close()
    assert process_alive(mon_pid) and process_alive(ctr_pid)
    go.touch()
    status = wait_exit(state, 10)
    wait_gone(mon_pid)
    assert status.exit_code == 7
    assert joined(log_entries(state / "ctr.log"), "stdout") == ["started", "done"]


# ---- process and fd hygiene --------------------------------------------------

def _stat_fields(pid: int) -> list[str]:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2:].split()


def test_monitor_is_daemonized_and_parents_the_container(monitors):
    mon = monitors.launch([BB, "sleep", "30"])
    session = int(_stat_fields(mon.pid)[3])
    assert session == mon.pid          # its own session, away from the launcher's
    assert int(_stat_fields(mon.container_pid)[1]) == mon.pid
    assert Path(mon.state_dir / "pid").read_text().strip() == str(mon.container_pid)
    assert Path(mon.state_dir / "monitor.pid").read_text().strip() == str(mon.pid)
    os.kill(mon.container_pid, signal.SIGKILL)
    monitors.finish(mon)


def _fd_targets(pid: int) -> dict[int, str]:
    d = f"/proc/{pid}/fd"
    return {int(fd): os.readlink(f"{d}/{fd}") for fd in os.listdir(d)}


def test_no_fds_leak_to_monitor_or_container(monitors, tmp_path):
    marker = tmp_path / "marker"
    leaked = os.open(marker, os.O_CREAT | os.O_RDWR)   # inheritable on purpose
    os.set_inheritable(leaked, True)
    state = monitors.state_dir("c")
    rfd, wfd = os.pipe()
    os.set_inheritable(wfd, True)
    try:
        # started by hand without close_fds: the monitor must shed the fd itself
        subprocess.run([str(monitor_binary()), "--state-dir", str(state), "--sync-fd",
                        str(wfd), "--log-path", str(state / "ctr.log"), "--",
                        BB, "sleep", "30"], close_fds=False, check=True)
        os.close(wfd)
        report = b""
        while chunk := os.read(rfd, 100):   # EOF once the monitor closed its end
            report += chunk
    finally:
        os.close(rfd)
        os.close(leaked)
    lines = report.decode().splitlines()
    assert lines[0].startswith("pid ") and lines[1].startswith("ok "), lines
    _, mon_pid, ctr_pid = map(lambda w: int(w) if w.isdigit() else w, lines[1].split())
    try:
        mon_fds = _fd_targets(mon_pid)
        ctr_fds = _fd_targets(ctr_pid)
    finally:
        os.kill(ctr_pid, signal.SIGKILL)
        wait_exit(state, 10)
        wait_gone(mon_pid)
    assert str(marker) not in mon_fds.values()
    assert sorted(ctr_fds) == [0, 1, 2]
    assert ctr_fds[0] == "/dev/null" and ctr_fds[1].startswith("pipe:")
    assert all(mon_fds[i] == "/dev/null" for i in (0, 1, 2))
    allowed = re.compile(r"(anon_inode:\[(eventpoll|signalfd)\]|socket:\[\d+\]|pipe:\[\d+\]|"
                         + re.escape(str(state)) + r"(/ctr\.log)?)$")
    assert all(allowed.match(t) for fd, t in mon_fds.items() if fd > 2), mon_fds


def test_launch_leaves_no_fds_in_the_launcher(monitors):
    before = set(os.listdir("/proc/self/fd"))
    mon = monitors.launch(sh("echo hi"))
    monitors.finish(mon)
    assert set(os.listdir("/proc/self/fd")) == before


def test_missing_executable_fails_the_launch_and_leaves_nothing(monitors):
    d = monitors.state_dir("c")
    with pytest.raises(FileNotFoundError, match="execvp `/no/such/binary`"):
        launch_monitor("c", ["/no/such/binary"], d, d / "ctr.log")
    assert not (d / "attach").exists()
    assert not (d / "pid").exists()


def test_missing_state_dir_fails_the_launch(tmp_path):
    with pytest.raises(FileNotFoundError, match="open `"):
        launch_monitor("c", [BB, "true"], tmp_path / "nope", tmp_path / "log")


def test_bad_arguments_are_invalid_argument_and_leave_no_child(monitors):
    """The first process refuses its arguments on the sync socket (its
    stderr is /dev/null) and is reaped."""
    d = monitors.state_dir("c")
    children = Path(f"/proc/self/task/{os.getpid()}/children")
    before = children.read_text()
    with pytest.raises(InvalidArgument, match="--stdin-once needs `--stdin`"):
        launch_monitor("c", [BB, "true"], d, d / "ctr.log", stdin_once=True)
    assert children.read_text() == before
    assert not (d / "pid").exists()


def test_monitor_rss_is_small(monitors):
    mon = monitors.launch([BB, "sleep", "30"])
    rss = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{mon.pid}/status").read_text(), re.M)
    os.kill(mon.container_pid, signal.SIGKILL)
    monitors.finish(mon)
    # a bound, not a benchmark: bench/monitor_rss.py compares with conmon
    assert int(rss[1]) < 4096
