"""Starting a container under its own crio-native-monitor.

The monitor daemonizes away from us, so the container, its log and its exit
code survive this process; the one-line readiness report on a pipe tells us
the pids or why the start failed."""
from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from crio_native.errors import DeadlineExceeded, Internal, InvalidArgument, native_error

from .paths import EXIT_FILE, attach_socket, monitor_binary


@dataclass(frozen=True)
class Monitor:
    container_id: str
    pid: int                 # the monitor process
    container_pid: int       # the container process, a child of the monitor
    state_dir: Path
    log_path: Path | None

    @property
    def attach_path(self) -> Path:
        return attach_socket(self.state_dir)

    @property
    def exit_path(self) -> Path:
        return self.state_dir / EXIT_FILE


def monitor_command(container_id: str, argv: Sequence[str], state_dir: Path,
                    log_path: Path | None, *, sync_fd: int, stdin: bool, stdin_once: bool,
                    terminal: bool, cgroup_path: str | None,
                    container_pid_file: str | os.PathLike | None = None,
                    binary: Path | None = None) -> list[str]:
    cmd = [str(binary or monitor_binary()), "--id", container_id,
           "--state-dir", str(state_dir), "--sync-fd", str(sync_fd)]
    if log_path is not None:
        cmd += ["--log-path", str(log_path)]
    if cgroup_path:
        cmd += ["--cgroup-path", cgroup_path]
    cmd += ["--stdin"] if stdin else []
    cmd += ["--stdin-once"] if stdin_once else []
    cmd += ["--terminal"] if terminal else []
    if container_pid_file is not None:
        cmd += ["--container-pid-file", str(container_pid_file)]
    return cmd + ["--", *argv]


class _Report:
    """The monitor's lines on the sync pipe: "pid N" once it has daemonized,
    then "ok MONITOR_PID CONTAINER_PID" or "error ERRNO MESSAGE"."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buf = b""
        self.monitor_pid: int | None = None

    def final_line(self, deadline: float) -> bytes:
        while True:
            line, sep, rest = self.buf.partition(b"\n")
            if sep and line.startswith(b"pid "):
                self.monitor_pid = int(line.split()[1])
                self.buf = rest
                continue
            if sep:
                return line
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(self.fd, 1024)
            if not chunk:
                return self.buf
            self.buf += chunk


def _reap(pid: int | None, kill: bool, timeout: float = 2.0) -> None:
    """Make sure a monitor that failed or missed its deadline is gone (and
    reaped, if it was reparented to us as a subreaper)."""
    if pid is None:
        return
    if kill:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
    deadline = time.monotonic() + timeout
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.005)
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _parse_report(container_id: str, report: bytes) -> tuple[int, int]:
    words = report.decode(errors="replace").strip().split(" ", 2)
    if len(words) == 3 and words[0] == "ok":
        return int(words[1]), int(words[2])
    if len(words) == 3 and words[0] == "error" and words[1] == "0":
        # not a failed syscall: an OCI runtime's create failed (its stderr
        # is in the container log)
        raise Internal(f"monitor for container {container_id}: {words[2]}")
    if len(words) == 3 and words[0] == "error":
        raise native_error(int(words[1]), f"monitor for container {container_id}: {words[2]}")
    raise Internal(f"monitor for container {container_id}: exited without a report "
                   f"({report!r})")


def launch_monitor(container_id: str, argv: Sequence[str], state_dir: str | os.PathLike,
                   log_path: str | os.PathLike | None = None, *, stdin: bool = False,
                   stdin_once: bool = False, terminal: bool = False,
                   cgroup_path: str | None = None, env: Mapping[str, str] | None = None,
                   container_pid_file: str | os.PathLike | None = None,
                   timeout: float = 10.0, binary: Path | None = None) -> Monitor:
    """Start `argv` as a container process under a new monitor.

    `state_dir` must exist and belong to this container; the monitor keeps
    its pid files, attach socket and exit file there.  Raises NativeError
    (an OSError) when the monitor cannot start the process, e.g.
    FileNotFoundError for a missing executable.

    With `container_pid_file`, `argv` is an OCI runtime's create (`runc
    create --pid-file FILE ...`): the monitor waits for it and then watches
    the container process named in FILE; the caller runs `start` itself.
    `cgroup_path` is the container's cgroup directory (v2, or the v1 memory
    controller's), read for the oom_kill count."""
    state_dir = Path(state_dir)
    log = Path(log_path) if log_path is not None else None
    deadline = time.monotonic() + timeout
    rfd, wfd = os.pipe()
    reader = _Report(rfd)
    try:
        cmd = monitor_command(container_id, argv, state_dir, log, sync_fd=wfd, stdin=stdin,
                              stdin_once=stdin_once, terminal=terminal,
                              cgroup_path=cgroup_path,
                              container_pid_file=container_pid_file, binary=binary)
        _run_launcher(container_id, cmd, wfd, env, timeout)
        line = reader.final_line(deadline)
    except (TimeoutError, subprocess.TimeoutExpired) as e:
        _reap(reader.monitor_pid, kill=True)
        raise DeadlineExceeded(f"monitor for container {container_id}: not ready after "
                               f"{timeout}s") from e
    finally:
        os.close(rfd)
    try:
        pid, container_pid = _parse_report(container_id, line)
    except BaseException:
        _reap(reader.monitor_pid, kill=False)   # it exits right after reporting
        raise
    return Monitor(container_id, pid, container_pid, state_dir, log)


def _run_launcher(container_id: str, cmd: list[str], wfd: int,
                  env: Mapping[str, str] | None, timeout: float) -> None:
    """Run the monitor's first process, which only checks its arguments and
    forks the daemonized monitor; closes our copy of the sync pipe's end."""
    try:
        proc = subprocess.Popen(cmd, pass_fds=(wfd,), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=dict(env) if env is not None else None)
    finally:
        os.close(wfd)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    if proc.returncode == 2:
        raise InvalidArgument(f"monitor for container {container_id}: "
                              f"{err.decode(errors='replace').strip()}")


def process_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie awaiting its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"
