"""Starting a container under its own crio-native-monitor.

The monitor daemonizes away from us, so the container, its log and its exit
code survive this process; the one-line readiness report on a stream socket
(the sync fd) tells us the pids or why the start failed.  With a plan
(`--plan`, the built-in runtime) the monitor may first ask us to run the
container's create hooks on the same socket."""
from __future__ import annotations

import errno
import os
import select
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

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
                    plan_file: str | os.PathLike | None = None,
                    console_socket: str | os.PathLike | None = None,
                    binary: Path | None = None, gate: bool = False,
                    warm_cgroup: str | os.PathLike | None = None) -> list[str]:
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
    if console_socket is not None:
        cmd += ["--console-socket", str(console_socket)]
    if warm_cgroup is not None:
        cmd += ["--warm-cgroup", str(warm_cgroup)]
    if plan_file is not None:
        cmd += ["--plan", str(plan_file)]
    cmd += ["--gate"] if gate else []
    return cmd + (["--", *argv] if argv else [])


@dataclass(frozen=True)
class ReportLine:
    """One final line of the monitor: "ok MONITOR_PID CONTAINER_PID",
    "error ERRNO MESSAGE" or, for a failed plan launch, "error ERRNO
    stage=NAME MESSAGE" (NAME: crn_stage_name of the child's step)."""

    ok: bool
    monitor_pid: int = 0
    container_pid: int = 0
    errno: int = 0
    stage: str | None = None
    message: str = ""


def parse_report_line(line: bytes) -> ReportLine | None:
    """The final report line, or None when it is none of the known forms."""
    words = line.decode(errors="replace").strip().split(" ", 2)
    try:
        if len(words) == 3 and words[0] == "ok":
            return ReportLine(True, monitor_pid=int(words[1]), container_pid=int(words[2]))
        if len(words) >= 2 and words[0] == "error":
            err, message, stage = int(words[1]), (words[2:] or [""])[0], None
            if message.startswith("stage="):
                stage, _, message = message.partition(" ")
                stage = stage.removeprefix("stage=")
            return ReportLine(False, errno=err, stage=stage, message=message)
    except ValueError:
        pass
    return None


HookCallback = Callable[[int], None]


class _Report:
    """The monitor's lines on the sync socket: "pid N" once it has
    daemonized, "gate" (plans launched with on_gate) before it clones the
    container process, "hooks PID" (plans with create hooks) while the
    container process waits for us to run them, each answered with "go" or
    "fail MESSAGE", then the final "ok ..." or "error ..." line."""

    def __init__(self, sock: socket.socket, on_hooks: HookCallback | None,
                 on_gate: Callable[[], None] | None = None):
        self.sock = sock
        self.fd = sock.fileno()
        self.on_hooks = on_hooks
        self.on_gate = on_gate
        self.buf = b""
        self.monitor_pid: int | None = None
        self.hook_error: BaseException | None = None

    def final_line(self, deadline: float) -> bytes:
        while True:
            line, sep, rest = self.buf.partition(b"\n")
            if sep and line.startswith(b"pid "):
                self.monitor_pid = int(line.split()[1])
                self.buf = rest
                continue
            if sep and line.startswith(b"hooks "):
                self.buf = rest
                # the hooks' own timeouts bound them, not the launch deadline
                deadline += self._answer(self.on_hooks, int(line.split()[1]))
                continue
            if sep and line == b"gate":
                self.buf = rest
                gate = self.on_gate
                # bounded by its own timeouts (systemd's job wait), like the hooks
                deadline += self._answer(None if gate is None else (lambda _pid: gate()), 0)
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

    def _answer(self, callback: HookCallback | None, pid: int) -> float:
        """Run `callback` (the hooks for the waiting container process `pid`,
        or the gate's); returns the time it took.  Its exception is kept and
        raised by the launch once the monitor has reported the failure (and
        cleaned up)."""
        started = time.monotonic()
        answer = b"go\n"
        if callback is not None:
            try:
                callback(pid)
            except BaseException as e:  # noqa: BLE001 - re-raised by launch_monitor
                self.hook_error = e
                text = " ".join(str(e).split())[:400] or type(e).__name__
                answer = f"fail {text}\n".encode()
        try:
            self.sock.sendall(answer)
        except OSError:
            pass  # the monitor is gone: its report (or EOF) says so
        return time.monotonic() - started


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
    _wait_gone(pid, timeout)
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _wait_gone(pid: int, timeout: float) -> None:
    """Wait up to `timeout` for `pid` to exit (to be a zombie or gone).  A
    pidfd turns readable at the exit, whether or not the process is our
    child; only a kernel without pidfd_open (before 5.3) gets the poll."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except OSError as e:
        if e.errno != errno.ENOSYS:
            raise
        deadline = time.monotonic() + timeout
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.005)
        return
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.poll(timeout * 1000)
    finally:
        os.close(fd)


def _parse_report(container_id: str, report: bytes) -> tuple[int, int]:
    r = parse_report_line(report)
    if r is None:
        raise Internal(f"monitor for container {container_id}: exited without a report "
                       f"({report!r})")
    if r.ok:
        return r.monitor_pid, r.container_pid
    if r.errno == 0:
        # not a failed syscall: an OCI runtime's create failed (its stderr
        # is in the container log), or a hook failed
        raise Internal(f"monitor for container {container_id}: {r.message}")
    if r.stage is not None:
        # the plan launch failed in a step of the child: the same error
        # native_launch.launch raises, stage included, for launch_error()
        exc = native_error(r.errno, r.message)
        exc.stage = r.stage
        raise exc
    raise native_error(r.errno, f"monitor for container {container_id}: {r.message}")


def launch_monitor(container_id: str, argv: Sequence[str], state_dir: str | os.PathLike,
                   log_path: str | os.PathLike | None = None, *, stdin: bool = False,
                   stdin_once: bool = False, terminal: bool = False,
                   cgroup_path: str | None = None, env: Mapping[str, str] | None = None,
                   container_pid_file: str | os.PathLike | None = None,
                   plan_file: str | os.PathLike | None = None,
                   console_socket: str | os.PathLike | None = None,
                   on_hooks: HookCallback | None = None,
                   on_gate: Callable[[], None] | None = None,
                   timeout: float = 10.0, binary: Path | None = None,
                   warm_cgroup: str | os.PathLike | None = None,
                   meanwhile: Callable[[], None] | None = None) -> Monitor:
    """Start `argv` as a container process under a new monitor.

    `state_dir` must exist and belong to this container; the monitor keeps
    its pid files, attach socket and exit file there.  Raises NativeError
    (an OSError) when the monitor cannot start the process, e.g.
    FileNotFoundError for a missing executable.

    With `container_pid_file`, `argv` is an OCI runtime's create (`runc
    create --pid-file FILE ...`): the monitor waits for it and then watches
    the container process named in FILE; the caller runs `start` itself.
    For a container with a terminal the create also has `--console-socket
    PATH` and `console_socket` is that PATH (a short one: a socket path has
    at most 107 bytes, in a directory only we can write): the monitor
    listens there and takes the pty master the runtime sends as the
    container's stdio.  `warm_cgroup`, with `container_pid_file`: the
    cgroup.procs file of the cgroup this process (and so the monitor) is
    in, which the monitor rewrites while the create runs, so the runtime's
    own cgroup.procs writes do not wait for an RCU grace period (the
    monitor's adopt.c says how).
    `cgroup_path` is the container's cgroup directory (v2, or the v1 memory
    controller's), read for the oom_kill count.

    With `plan_file` (and no `argv`), the monitor launches the built-in
    runtime's plan itself; `on_hooks(pid)` runs the create hooks while the
    container process waits, and its exception fails the launch and is
    re-raised here.  `on_gate()`, likewise, runs once the monitor has
    started and before it clones the process, so what the clone needs (a
    systemd scope) can be made meanwhile.  `meanwhile()` (with `plan_file`)
    runs here right after the monitor was spawned, while it execs, loads
    the plan and sets up, and it waits at the same gate until this has
    returned: what the clone needs (the v1 cgroups) is made alongside the
    monitor's start instead of before it; its exception fails the launch
    before any clone, as on_gate's does, and is re-raised here.  A failure
    in a step of the child raises a NativeError with `.stage` set, like
    native_launch.launch."""
    state_dir = Path(state_dir)
    log = Path(log_path) if log_path is not None else None
    deadline = time.monotonic() + timeout
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    reader = _Report(ours, on_hooks, on_gate)
    try:
        cmd = monitor_command(container_id, argv, state_dir, log, sync_fd=theirs.fileno(),
                              stdin=stdin, stdin_once=stdin_once, terminal=terminal,
                              cgroup_path=cgroup_path, container_pid_file=container_pid_file,
                              plan_file=plan_file, console_socket=console_socket,
                              binary=binary,
                              gate=on_gate is not None or meanwhile is not None,
                              warm_cgroup=warm_cgroup)
        first = _spawn_first(cmd, theirs, env)
        if meanwhile is not None:
            _run_meanwhile(reader, meanwhile)
        try:
            line = reader.final_line(deadline)
        except TimeoutError:
            _kill_quietly(first)     # still checking its arguments or loading the plan
            raise
        finally:
            code = _wait_exit_code(first)
        if code == 2:    # it refused its arguments, and said why on the socket
            said = parse_report_line(line) if line else None
            raise InvalidArgument(f"monitor for container {container_id}: "
                                  + (said.message if said is not None and not said.ok
                                     else f"bad arguments {cmd[1:]!r}"))
    except TimeoutError as e:
        _reap(reader.monitor_pid, kill=True)
        raise DeadlineExceeded(f"monitor for container {container_id}: not ready after "
                               f"{timeout}s") from e
    finally:
        theirs.close()
        ours.close()
    try:
        pid, container_pid = _parse_report(container_id, line)
    except BaseException:
        _reap(reader.monitor_pid, kill=False)   # it exits right after reporting
        if reader.hook_error is not None:
            raise reader.hook_error from None
        raise
    return Monitor(container_id, pid, container_pid, state_dir, log)


def _run_meanwhile(reader: _Report, meanwhile: Callable[[], None]) -> None:
    """meanwhile() while the monitor starts; a failure becomes the gate's
    answer ("fail"), so the monitor ends without a clone and reports, and
    launch_monitor re-raises the exception after that report."""
    try:
        meanwhile()
    except BaseException as e:  # noqa: BLE001 - re-raised by launch_monitor
        error = e

        def fail() -> None:
            raise error
        reader.on_gate = fail


def stop_monitor(mon: Monitor, timeout: float = 5.0) -> None:
    """SIGKILL the container process and wait for its monitor to record the
    exit and end (reaping it if it was reparented to us): the undo of a
    launch."""
    try:
        os.kill(mon.container_pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap(mon.pid, kill=False, timeout=timeout)


def _spawn_first(cmd: list[str], theirs: socket.socket, env: Mapping[str, str] | None) -> int:
    """Start the monitor's first process, which checks its arguments, loads
    the plan and forks the daemonized monitor, then exits; its findings,
    argument errors included, come on the sync socket.  posix_spawn, not
    subprocess: nothing of this (large) process is copied, and none of
    Popen's pipes and threads are needed.  Closes our copy of `theirs`."""
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        sync = theirs.fileno()
        # a dup2 onto the same number clears close-on-exec (glibc >= 2.29)
        return os.posix_spawn(cmd[0], cmd, os.environ if env is None else env,
                              file_actions=[(os.POSIX_SPAWN_DUP2, null, 0),
                                            (os.POSIX_SPAWN_DUP2, null, 1),
                                            (os.POSIX_SPAWN_DUP2, null, 2),
                                            (os.POSIX_SPAWN_DUP2, sync, sync)])
    finally:
        os.close(null)
        theirs.close()


def _kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _wait_exit_code(pid: int) -> int:
    """Reap our child `pid` (the monitor's first process exits as soon as
    it has forked) and return its exit code."""
    try:
        _, status = os.waitpid(pid, 0)     # retried on EINTR by Python itself
    except ChildProcessError:
        return -1
    return os.waitstatus_to_exitcode(status)


# States of a process that has ended: a zombie awaiting its reaper, and the
# brief "dead" state the kernel shows while it releases the task.
_GONE_STATES = frozenset("ZXx")


def process_alive(pid: int) -> bool:
    """True while `pid` runs.  A process that is gone or going is not: no
    /proc entry, a read that fails with ESRCH (the kernel answers that for
    the stat of a task being released, seen on pure cgroup v2 hosts), a
    zombie, or a dead task."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    _, paren, rest = stat.rpartition(")")
    if not paren or len(rest) < 2:
        return False   # an empty read: the task went while we read it
    return rest[1] not in _GONE_STATES
