"""The scopes the runtime starts: a container's, made before its process so
the process can be cloned straight into it (CLONE_INTO_CGROUP), and a
monitor's, which takes the monitor out of the daemon's unit so that a
`systemctl restart` of the daemon leaves it (and its container) running,
as CRI-O's crio-conmon-<id>.scope does for conmon."""
from __future__ import annotations

import atexit
import logging
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from crio_native.monitor.paths import pause_binary
from crio_native.linux.systemd.bus import UNIT_EXISTS, SystemdError, SystemdManager
from crio_native.linux.systemd.names import SystemdPath
from crio_native.linux.systemd.properties import (Property, resource_properties,
                                                  scope_properties)

log = logging.getLogger(__name__)


class ScopeAnchor:
    """A placeholder process: systemd refuses a scope without processes,
    and the container's process does not exist yet when its scope must.
    `crio-native-pause --until-eof` exits at EOF on its stdin pipe, that is
    when we release it or when the daemon dies, so no anchor outlives the
    create that started it (or the daemon, for the spare one)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([str(pause_binary()), "--until-eof"],
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def release(self) -> None:
        """Let it exit; it is reaped later, off the caller's path (idempotent)."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        _anchors.reap_later(self)

    def reap(self, timeout: float) -> bool:
        """Wait up to `timeout` for the exit; SIGKILL after that. True once reaped."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            if timeout > 0:
                self.proc.kill()
                self.proc.wait()
            return timeout > 0
        return True


class _AnchorPool:
    """One spare anchor, started in the background after each take, so a
    create does not wait for a fork and exec; released anchors are reaped
    on later calls."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spare: ScopeAnchor | None = None
        self._released: list[ScopeAnchor] = []

    def take(self) -> ScopeAnchor:
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is None or not spare.alive():
            if spare is not None:
                spare.release()
            spare = ScopeAnchor()
        _background.submit(self._refill)
        return spare

    def _refill(self) -> None:
        with self._lock:
            if self._spare is not None:
                return
        fresh = ScopeAnchor()
        with self._lock:
            if self._spare is None:
                self._spare, fresh = fresh, None   # type: ignore[assignment]
        if fresh is not None:
            fresh.release()
        self._reap(block=False)

    def reap_later(self, anchor: ScopeAnchor) -> None:
        with self._lock:
            self._released.append(anchor)
        _background.submit(self._reap, True)

    def _reap(self, block: bool) -> None:
        with self._lock:
            released, self._released = self._released, []
        left = [a for a in released if not a.reap(5.0 if block else 0)]
        if left:
            with self._lock:
                self._released.extend(left)

    def close(self) -> None:
        """Release the spare and reap every anchor (at daemon shutdown)."""
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            spare.release()
        self._reap(block=True)


# one worker: anchor forks and reaps, and monitor moves, stay off the
# creates' path and in order
_background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="systemd-scopes")
_anchors = _AnchorPool()
atexit.register(_anchors.close)


def _start(manager: SystemdManager, unit: str, properties: list[Property]) -> str:
    """Start `unit` without waiting; its job."""
    try:
        return manager.start_transient_unit(unit, properties, wait=False)
    except SystemdError as e:
        if e.name != UNIT_EXISTS:
            raise
        # ids are unique: a scope of this name is what a create cut short
        # (the daemon killed) left behind
        manager.stop_unit(unit)
        return manager.start_transient_unit(unit, properties, wait=False)


class ContainerScope:
    """A container's scope whose start job may still be running: `ready()`
    waits for it (the cgroup then exists, the anchor in it); the caller
    releases the anchor once the container's process is in the scope."""

    def __init__(self, manager: SystemdManager, unit: str, job: str,
                 anchor: ScopeAnchor) -> None:
        self.manager = manager
        self.unit = unit
        self.anchor = anchor
        self._job: str | None = job

    def ready(self) -> None:
        job, self._job = self._job, None
        if job is not None:
            self.manager.check_started(self.unit, job)

    def abandon(self) -> None:
        """The create failed: nobody waits for the job any more."""
        job, self._job = self._job, None
        if job is not None:
            self.manager.forget_job(job)


def start_container_scope(manager: SystemdManager, path: SystemdPath,
                          resources: dict[str, Any], description: str) -> ContainerScope:
    """Start the container's delegated scope with its limits, held by an
    anchor, without waiting for systemd to finish: see ContainerScope."""
    anchor = _anchors.take()
    try:
        job = _start(manager, path.unit,
                     scope_properties(path.slice, [anchor.pid], description, delegate=True)
                     + resource_properties(resources))
    except BaseException:
        anchor.release()
        raise
    return ContainerScope(manager, path.unit, job, anchor)


def monitor_unit_of(container_id: str) -> str:
    return f"crio-conmon-{container_id}.scope"


def move_monitor(manager: SystemdManager, path: SystemdPath, container_id: str,
                 pid: int) -> str:
    """Move the monitor `pid` into a scope of its own beside the
    container's, off the create's path: nothing in the create depends on
    where the monitor sits, and a monitor left in the daemon's unit still
    survives a restart (KillMode=process), so a failure is logged, not
    raised.  Returns the unit's name."""
    unit = monitor_unit_of(container_id)
    props = scope_properties(path.slice, [pid], f"crio-native monitor of {container_id}",
                             delegate=False)

    def move() -> None:
        try:
            manager.forget_job(_start(manager, unit, props))
        except Exception as e:  # noqa: BLE001 - see above
            log.warning("monitor %s of container %s stays in the daemon's cgroup: %s",
                        pid, container_id, e)
    _background.submit(move)
    return unit
