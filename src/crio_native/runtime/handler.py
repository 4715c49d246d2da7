"""The one interface every runtime handler implements (DESIGN.md invariant 5).

A handler turns an OCI bundle into a running container whose process is a
child of its own crio-native-monitor, so the container, its log and its exit
code outlive the daemon.  `builtin` (runtime/builtin/handler.py) has the
monitor launch the plan itself; `oci` handlers (runtime/oci_cli.py: runc,
crun) have the monitor run `<runtime> create` and adopt the process it
leaves.  Everything above this interface (the container manager, the CRI
RPCs) is the same for all of them."""
from __future__ import annotations

import contextlib
import os
import signal as signal_mod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol


@dataclass(frozen=True)
class MonitorOptions:
    """How the container's stdio is handled, given to the monitor."""

    state_dir: Path             # the monitor's files: pid, exit, attach socket
    log_path: Path | None       # the CRI log file
    stdin: bool = False
    stdin_once: bool = False
    terminal: bool = False


@dataclass(frozen=True)
class Created:
    """A container made up to its start barrier."""

    pid: int                    # the container's init process
    monitor_pid: int
    cgroup_dirs: tuple[Path, ...] = ()   # its cgroup directories, one per hierarchy


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False


@dataclass
class ExecProcess:
    """An exec'd process whose stdio the caller relays (the streaming
    server): our ends of its pipes, or the pty master when it has a
    terminal.  `wait_fd` (a pidfd) turns readable once it has ended; then
    `reap()` returns its exit code.  `kill()` ends it early (the client went
    away); `close()` releases every fd and file."""

    pid: int
    wait_fd: int
    stdin: int | None = None        # write end (the pty master with a terminal)
    stdout: int | None = None       # read end (the pty master with a terminal)
    stderr: int | None = None
    pty: int | None = None          # the pty master, for TIOCSWINSZ
    reap_fn: Callable[[], int] | None = None
    kill_fn: Callable[[], None] | None = None
    cleanup: Callable[[], None] | None = None
    resized: Callable[[], None] | None = None   # after a TIOCSWINSZ on `pty`
    # A terminal held by someone else (a shim v2 runtime): no local `pty`;
    # stdin/stdout carry the terminal's bytes and a new window size goes
    # to resize_fn(width, height).
    terminal: bool = False
    resize_fn: Callable[[int, int], None] | None = None
    # End of input: close_stdin_fn(fd) takes over `stdin` (and closes it)
    # where closing our end alone would not reach the process.
    close_stdin_fn: Callable[[int], None] | None = None
    exit_code: int | None = None

    def reap(self) -> int:
        if self.exit_code is None:
            self.exit_code = self.reap_fn() if self.reap_fn else _reap_child(self.pid)
        return self.exit_code

    def kill(self) -> None:
        if self.exit_code is not None:
            return
        if self.kill_fn is not None:
            self.kill_fn()
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal_mod.SIGKILL)   # our unreaped child: not recycled

    def close(self) -> None:
        for fd in {self.wait_fd, self.stdin, self.stdout, self.stderr, self.pty} - {None}:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.wait_fd = self.stdin = self.stdout = self.stderr = self.pty = None
        if self.cleanup is not None:
            self.cleanup()
            self.cleanup = None


def _reap_child(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


@dataclass(frozen=True)
class HandlerFeatures:
    """What Status reports per handler (RuntimeHandlerFeatures)."""

    recursive_read_only_mounts: bool = False
    user_namespaces: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class RuntimeHandler(Protocol):
    name: str

    def create(self, container_id: str, bundle: Path, monitor: MonitorOptions) -> Created:
        """Create the container under a new monitor; the process waits at
        the start barrier.  A failure leaves nothing behind."""

    def start(self, container_id: str) -> None:
        """Release the barrier."""

    def state(self, container_id: str) -> dict[str, Any]:
        """The OCI state (status creating|created|running|paused|stopped, pid).
        NotFound when the runtime does not know the container."""

    def kill(self, container_id: str, signal: int, all_processes: bool = False) -> None:
        """Signal the init process (or every process of the container).
        A container that is already gone is not an error."""

    def delete(self, container_id: str, force: bool = False) -> None:
        """Forget the container (force: kill it first).  Unknown ids succeed."""

    def exec_sync(self, container_id: str, process: dict[str, Any],
                  timeout: float | None) -> ExecResult:
        """Run `process` (an OCI process object) in the running container and
        collect its output; at the timeout the process is killed and the
        result has timed_out set."""

    def exec_interactive(self, container_id: str, process: dict[str, Any], *, tty: bool,
                         stdin: bool, stdout: bool, stderr: bool) -> ExecProcess:
        """Start `process` in the running container with its stdio for the
        caller to relay: pipes for the streams asked for (/dev/null for the
        others), or one pty for all of them with `tty`."""

    def pause(self, container_id: str) -> None: ...

    def resume(self, container_id: str) -> None: ...

    def update(self, container_id: str, resources: dict[str, Any]) -> None:
        """Apply OCI linux.resources to the running container."""

    def features(self) -> HandlerFeatures: ...

    # A handler whose runtime holds a container's terminal itself (`vm`:
    # the shim makes the pty) also has
    #
    #     def resize_terminal(self, container_id: str, width: int, height: int) -> None
    #
    # for attach's window sizes.  Elsewhere the monitor holds the pty's
    # master and resizes it (docs/monitor.md).  One whose runtime keeps the
    # container's cgroups out of the daemon's reach (`vm`: kata's are in
    # its VM) also has
    #
    #     def cgroup_stats(self, container_id: str) -> stats.cgroup.CgroupStats
    #
    # for the CRI stats; elsewhere the daemon reads Created.cgroup_dirs.
