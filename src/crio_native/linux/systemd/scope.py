"""The scopes the runtime starts: a container's, made before its process so
the process can be cloned straight into it (CLONE_INTO_CGROUP), and a
monitor's, which takes the monitor out of the daemon's unit so that a
`systemctl restart` of the daemon leaves it (and its container) running,
as CRI-O's crio-conmon-<id>.scope does for conmon."""
from __future__ import annotations

import logging
import subprocess
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
    create that started it."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([str(pause_binary()), "--until-eof"],
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def release(self) -> None:
        """Let it exit and reap it (idempotent)."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _start(manager: SystemdManager, unit: str, properties: list[Property],
           wait: bool = True) -> None:
    try:
        manager.start_transient_unit(unit, properties, wait=wait)
    except SystemdError as e:
        if e.name != UNIT_EXISTS:
            raise
        # ids are unique: a scope of this name is what a create cut short
        # (the daemon killed) left behind
        manager.stop_unit(unit)
        manager.start_transient_unit(unit, properties, wait=wait)


def start_container_scope(manager: SystemdManager, path: SystemdPath,
                          resources: dict[str, Any], description: str) -> ScopeAnchor:
    """Start the container's delegated scope with its limits, held by an
    anchor the caller releases once the container is in it."""
    anchor = ScopeAnchor()
    try:
        _start(manager, path.unit,
               scope_properties(path.slice, [anchor.pid], description, delegate=True)
               + resource_properties(resources))
    except BaseException:
        anchor.release()
        raise
    return anchor


def monitor_unit_of(path: SystemdPath, container_id: str) -> str:
    return f"crio-conmon-{container_id}.scope"


_movers = ThreadPoolExecutor(max_workers=1, thread_name_prefix="monitor-scope")


def move_monitor(manager: SystemdManager, path: SystemdPath, container_id: str,
                 pid: int) -> str:
    """Move the monitor `pid` into a scope of its own beside the
    container's, off the create's path: nothing in the create depends on
    where the monitor sits, and a monitor left in the daemon's unit still
    survives a restart (KillMode=process), so a failure is logged, not
    raised.  Returns the unit's name."""
    unit = monitor_unit_of(path, container_id)
    props = scope_properties(path.slice, [pid], f"crio-native monitor of {container_id}",
                             delegate=False)

    def move() -> None:
        try:
            _start(manager, unit, props, wait=False)
        except Exception as e:  # noqa: BLE001 - see above
            log.warning("monitor %s of container %s stays in the daemon's cgroup: %s",
                        pid, container_id, e)
    _movers.submit(move)
    return unit
