"""systemd's manager over the D-Bus system bus, with jeepney: a pure-Python,
dependency-free D-Bus library with a blocking API, which suits the daemon's
worker threads (no event loop, no GLib, nothing to compile).  Calls are
serialised on one connection; each unit change waits for its job's
JobRemoved signal, as systemctl does, so the unit's cgroup exists (or is
gone) when a call returns."""
from __future__ import annotations

import threading
import time
from typing import Any

from jeepney import DBusAddress, MatchRule, new_method_call
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import DBusConnection, open_dbus_connection
from jeepney.wrappers import DBusErrorResponse, unwrap_msg

from crio_native.errors import FailedPrecondition, Unavailable
from crio_native.linux.systemd.properties import Property

MANAGER = DBusAddress("/org/freedesktop/systemd1", bus_name="org.freedesktop.systemd1",
                      interface="org.freedesktop.systemd1.Manager")
# no sender: the signals carry systemd's unique bus name, which jeepney's
# local matching would compare with the well-known one
JOB_REMOVED = MatchRule(type="signal", interface="org.freedesktop.systemd1.Manager",
                        member="JobRemoved", path="/org/freedesktop/systemd1")
NO_SUCH_UNIT = "org.freedesktop.systemd1.NoSuchUnit"
UNIT_EXISTS = "org.freedesktop.systemd1.UnitExists"


class SystemdError(FailedPrecondition):
    """systemd refused a call (the D-Bus error name is kept)."""

    def __init__(self, message: str, name: str = ""):
        super().__init__(message)
        self.name = name


class SystemdManager:
    """The calls the cgroup driver makes, on a lazily opened connection."""

    def __init__(self, bus: str = "SYSTEM", timeout: float = 30.0):
        self.bus = bus
        self.timeout = timeout
        self._lock = threading.Lock()
        self._conn: DBusConnection | None = None

    def _connection(self) -> DBusConnection:
        if self._conn is None:
            try:
                conn = open_dbus_connection(bus=self.bus)
                unwrap_msg(conn.send_and_get_reply(message_bus.AddMatch(JOB_REMOVED),
                                                   timeout=self.timeout))
                # systemd only emits job signals while some client subscribes
                unwrap_msg(conn.send_and_get_reply(new_method_call(MANAGER, "Subscribe"),
                                                   timeout=self.timeout))
            except (OSError, TimeoutError, DBusErrorResponse) as e:
                raise Unavailable("systemd cgroup driver: cannot talk to systemd on the "
                                  f"D-Bus system bus: {e}; is systemd PID 1? (else set "
                                  "runtime.cgroup_manager = \"cgroupfs\")") from e
            self._conn = conn
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _call(self, method: str, signature: str, body: tuple[Any, ...],
              wait_job: bool) -> str | None:
        """Call a Manager method that returns a job; with `wait_job`, wait
        for the job to finish and return its result ("done" on success)."""
        with self._lock:
            conn = self._connection()
            try:
                with conn.filter(JOB_REMOVED, bufsize=256) as jobs:
                    reply = conn.send_and_get_reply(
                        new_method_call(MANAGER, method, signature, body), timeout=self.timeout)
                    job = unwrap_msg(reply)[0]
                    return self._job_result(conn, jobs, job) if wait_job else None
            except DBusErrorResponse as e:
                raise SystemdError(f"systemd {method}{body[:1]}: {e.name}: "
                                   f"{' '.join(map(str, e.data))}", e.name or "") from e
            except (OSError, TimeoutError, EOFError) as e:
                self._drop()
                raise Unavailable(f"systemd {method}{body[:1]}: "
                                  f"{e or type(e).__name__}") from e

    def _job_result(self, conn: DBusConnection, jobs: Any, job: str) -> str:
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"job {job} did not finish in {self.timeout:.0f} s")
            signal = conn.recv_until_filtered(jobs, timeout=left)
            _id, path, _unit, result = signal.body
            if path == job:
                return str(result)

    def start_transient_unit(self, name: str, properties: list[Property],
                             wait: bool = True) -> None:
        """Start a transient unit; with `wait`, return once its start job
        is done (a scope's cgroup then exists with its processes in it)."""
        result = self._call("StartTransientUnit", "ssa(sv)a(sa(sv))",
                            (name, "fail", properties, []), wait_job=wait)
        if wait and result != "done":
            raise SystemdError(f"systemd: starting {name} ended {result!r} (see "
                               f"`journalctl -u {name}`)")

    def stop_unit(self, name: str) -> None:
        """Stop `name` and wait; a unit that is already gone is not an error."""
        try:
            self._call("StopUnit", "ss", (name, "replace"), wait_job=True)
        except SystemdError as e:
            if e.name != NO_SUCH_UNIT:
                raise

    def set_unit_properties(self, name: str, properties: list[Property]) -> None:
        """Change a running unit's properties (runtime only, like
        `systemctl set-property --runtime`)."""
        if not properties:
            return
        with self._lock:
            conn = self._connection()
            try:
                unwrap_msg(conn.send_and_get_reply(
                    new_method_call(MANAGER, "SetUnitProperties", "sba(sv)",
                                    (name, True, properties)), timeout=self.timeout))
            except DBusErrorResponse as e:
                raise SystemdError(f"systemd SetUnitProperties({name!r}): {e.name}: "
                                   f"{' '.join(map(str, e.data))}", e.name or "") from e
            except (OSError, TimeoutError, EOFError) as e:
                self._drop()
                raise Unavailable(f"systemd SetUnitProperties({name!r}): {e}") from e


_shared: SystemdManager | None = None
_shared_lock = threading.Lock()


def system_manager() -> SystemdManager:
    """The process's one connection to systemd (opened on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = SystemdManager()
        return _shared
