"""The one interface every runtime handler implements (DESIGN.md invariant 5).

A handler has two halves.  Its pod half makes what the runtime needs of a pod
once the daemon has pinned the pod's namespaces and attached its network:
the pod cgroup, and the process that holds a pod-level PID namespace (the
builtin infra, runtime/builtin/pod.py) or the runtime's own sandbox task
(`vm`, runtime/shim/pod.py).  Its container half turns an OCI bundle into a
running container whose process is a child of its own crio-native-monitor,
so the container, its log and its exit code outlive the daemon.  `builtin`
(runtime/builtin/handler.py) has the monitor launch the plan itself; `oci`
handlers (runtime/oci/: runc, crun) have the monitor run `<runtime> create`
and adopt the process it leaves.  Everything above this interface (the container manager, the CRI
RPCs) is the same for all of them."""
from __future__ import annotations

import abc
import contextlib
import os
import signal as signal_mod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from crio_native.cancellation import Cancellation
from crio_native.errors import Unimplemented

if TYPE_CHECKING:
    from crio_native.stats.cgroup import CgroupStats


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
    # Where the process's terminal is one the runtime relays from `pty`
    # (runc/crun `exec --tty`): its window size (rows, columns) as the
    # process sees it; None while it is not there yet; OSError where it
    # cannot be read (runtime/oci/relayed_tty.py)
    relayed_size: Callable[[], tuple[int, int] | None] | None = None
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
        fds = {self.wait_fd, self.stdin, self.stdout, self.stderr, self.pty}
        for fd in {fd for fd in fds if fd is not None}:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.stdin = self.stdout = self.stderr = self.pty = None
        self.wait_fd = None  # type: ignore[assignment]  # closed: no fd to wait on
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
    # The Landlock ABI the handler applies a container's policy with (0: none)
    landlock_abi: int = 0
    # process.apparmorProfile is applied (AppArmor is on and the runtime does it)
    apparmor: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class PodSandbox(Protocol):
    """What a handler's pod half reads of a pod, and where it records what
    it made for it (sandbox/record.py's SandboxRecord is one).  The caller
    persists the pod whenever the handler calls its `journal`, so a crash
    after that point finds the new fields and can undo them."""

    id: str
    name: str
    namespace: str
    uid: str
    runtime_handler: str
    directory: str              # the pod's own directory under the runroot
    cgroup_parent: str          # the request's linux.cgroup_parent
    annotations: dict[str, str]
    pid_mode: int               # NamespaceMode of the pod's PID namespace (0: POD)
    pins: dict[str, str]        # pinned namespaces; the pod half may add "pid"
    infra: bool                 # an infra process holds the pod's PID namespace
    sandbox_task: bool          # the handler's runtime runs the pod's sandbox task
    cgroup_dirs: list[str]      # the pod cgroup, one directory per hierarchy
    cgroups_made: list[str]     # the part of it that was created for this pod


class RuntimeHandler(abc.ABC):
    """A runtime as the orchestrators see it: a pod half, a container half,
    and optional capabilities, each declared here with what a handler that
    lacks it does."""

    name: str
    # The runtime keeps a container's terminal itself (`vm`: the shim makes
    # the pty), so attach's window sizes go to resize_terminal; elsewhere the
    # monitor holds the pty's master and resizes it (docs/monitor.md).
    holds_terminal: bool = False
    # The runtime reports a container's cgroup usage itself (`vm`: kata's
    # cgroups are in its VM), through cgroup_stats; elsewhere the daemon
    # reads the host files of Created.cgroup_dirs.
    reports_cgroup_stats: bool = False

    # ---- the pod half -----------------------------------------------------------

    @abc.abstractmethod
    def start_sandbox(self, pod: PodSandbox, resources: dict[str, Any],
                      journal: Callable[[], None]) -> None:
        """Make what this runtime needs of a pod whose namespaces are pinned
        and whose network is attached: the pod cgroup (with `resources`, OCI
        linux.resources), and the process that holds a pod-level PID
        namespace or the runtime's sandbox task.  Each thing made is recorded
        on `pod` and followed by `journal()`.  A failure leaves nothing."""

    @abc.abstractmethod
    def stop_sandbox(self, pod: PodSandbox) -> None:
        """Stop the pod's own processes (infra, sandbox task) and unpin what
        start_sandbox pinned.  Idempotent: a retried stop or a rollback may
        call it again."""

    @abc.abstractmethod
    def remove_sandbox(self, pod: PodSandbox) -> None:
        """Stop the pod (as stop_sandbox) and remove what start_sandbox made
        for it (the pod cgroup, never a group someone else made).  Idempotent."""

    # ---- the container half -----------------------------------------------------

    @abc.abstractmethod
    def create(self, container_id: str, bundle: Path, monitor: MonitorOptions) -> Created:
        """Create the container under a new monitor; the process waits at
        the start barrier.  A failure leaves nothing behind."""

    @abc.abstractmethod
    def start(self, container_id: str) -> None:
        """Release the barrier."""

    @abc.abstractmethod
    def state(self, container_id: str) -> dict[str, Any]:
        """The OCI state (status creating|created|running|paused|stopped, pid).
        NotFound when the runtime does not know the container."""

    @abc.abstractmethod
    def kill(self, container_id: str, signal: int, all_processes: bool = False) -> None:
        """Signal the init process (or every process of the container).
        A container that is already gone is not an error."""

    @abc.abstractmethod
    def delete(self, container_id: str, force: bool = False) -> None:
        """Forget the container (force: kill it first).  Unknown ids succeed."""

    @abc.abstractmethod
    def exec_sync(self, container_id: str, process: dict[str, Any],
                  timeout: float | None, cancel: Cancellation | None = None) -> ExecResult:
        """Run `process` (an OCI process object) in the running container and
        collect its output; at the timeout, or once `cancel` is cancelled or
        past its deadline (the caller gave up), the process is killed (with
        what it started, where the handler can tell) and the result has
        timed_out set."""

    @abc.abstractmethod
    def exec_interactive(self, container_id: str, process: dict[str, Any], *, tty: bool,
                         stdin: bool, stdout: bool, stderr: bool) -> ExecProcess:
        """Start `process` in the running container with its stdio for the
        caller to relay: pipes for the streams asked for (/dev/null for the
        others), or one pty for all of them with `tty`."""

    @abc.abstractmethod
    def pause(self, container_id: str) -> None: ...

    @abc.abstractmethod
    def resume(self, container_id: str) -> None: ...

    @abc.abstractmethod
    def update(self, container_id: str, resources: dict[str, Any]) -> None:
        """Apply OCI linux.resources to the running container."""

    @abc.abstractmethod
    def features(self) -> HandlerFeatures: ...

    # ---- optional capabilities -------------------------------------------------

    def resize_terminal(self, container_id: str, width: int, height: int) -> None:
        """A new window size for the container's terminal, where the runtime
        holds it (`holds_terminal`).  Unsupported elsewhere."""
        raise Unimplemented(f"runtime handler {self.name}: the container's terminal is "
                            "resized by its monitor, not by the runtime")

    def cgroup_stats(self, container_id: str) -> CgroupStats:
        """The container's cgroup usage as the runtime reports it, where it
        does (`reports_cgroup_stats`).  Unsupported elsewhere."""
        raise Unimplemented(f"runtime handler {self.name}: cgroup usage is read from the "
                            "host's cgroup files, not reported by the runtime")
