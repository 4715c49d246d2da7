"""The one interface every runtime handler implements (DESIGN.md invariant 5).

A handler turns an OCI bundle into a running container whose process is a
child of its own crio-native-monitor, so the container, its log and its exit
code outlive the daemon.  `builtin` (runtime/builtin/handler.py) has the
monitor launch the plan itself; `oci` handlers (runtime/oci_cli.py: runc,
crun) have the monitor run `<runtime> create` and adopt the process it
leaves.  Everything above this interface (the container manager, the CRI
RPCs) is the same for all of them."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


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

    def pause(self, container_id: str) -> None: ...

    def resume(self, container_id: str) -> None: ...

    def update(self, container_id: str, resources: dict[str, Any]) -> None:
        """Apply OCI linux.resources to the running container."""

    def features(self) -> HandlerFeatures: ...
