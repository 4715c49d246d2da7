"""systemd's manager over the D-Bus system bus, with jeepney: a pure-Python,
dependency-free D-Bus library with a blocking API, which suits the daemon's
worker threads (no event loop, no GLib, nothing to compile).  Calls are
serialised on one connection; each unit change waits for its job's
JobRemoved signal, as systemctl does, so the unit's cgroup exists (or is
gone) when a call returns.

jeepney is imported at the first call (about 0.4 MiB resident): the
built-in runtime imports this module, but only the systemd cgroup driver
talks to systemd (docs/memory.md)."""
from __future__ import annotations

import functools
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from crio_native.errors import FailedPrecondition, Unavailable
from crio_native.linux.systemd.properties import Property

if TYPE_CHECKING:
    from jeepney import DBusAddress, MatchRule, Message
    from jeepney.io.blocking import DBusConnection


@functools.cache
def manager_address() -> DBusAddress:
    from jeepney import DBusAddress

    return DBusAddress("/org/freedesktop/systemd1", bus_name="org.freedesktop.systemd1",
                       interface="org.freedesktop.systemd1.Manager")


@functools.cache
def job_removed_rule() -> MatchRule:
    from jeepney import MatchRule

    # no sender: the signals carry systemd's unique bus name, which jeepney's
    # local matching would compare with the well-known one
    return MatchRule(type="signal", interface="org.freedesktop.systemd1.Manager",
                     member="JobRemoved", path="/org/freedesktop/systemd1")


def open_dbus_connection(bus: str) -> DBusConnection:
    from jeepney.io.blocking import open_dbus_connection as open_connection

    return open_connection(bus=bus)


def unwrap_msg(reply: Message) -> Any:
    from jeepney.wrappers import unwrap_msg as unwrap

    return unwrap(reply)


NO_SUCH_UNIT = "org.freedesktop.systemd1.NoSuchUnit"
UNIT_EXISTS = "org.freedesktop.systemd1.UnitExists"


class SystemdError(FailedPrecondition):
    """systemd refused a call (the D-Bus error name is kept)."""

    def __init__(self, message: str, name: str = ""):
        super().__init__(message)
        self.name = name


class SystemdManager:
    """The calls the cgroup driver makes, on a lazily opened connection.

    JobRemoved signals are collected for the whole life of the connection,
    so a caller may start a unit, do other work while systemd runs the job,
    and wait for it later (`start_transient_unit(wait=False)` then
    `wait_job`)."""

    def __init__(self, bus: str = "SYSTEM", timeout: float = 30.0):
        self.bus = bus
        self.timeout = timeout
        self._lock = threading.Lock()
        self._conn: DBusConnection | None = None
        self._signals: deque[Any] = deque(maxlen=4096)
        self._pending: dict[str, str | None] = {}   # job path -> result once removed

    def _connection(self) -> DBusConnection:
        if self._conn is None:
            from jeepney import new_method_call
            from jeepney.bus_messages import message_bus
            from jeepney.wrappers import DBusErrorResponse

            try:
                conn = open_dbus_connection(bus=self.bus)
                rule = job_removed_rule()
                conn.filter(rule, queue=self._signals)   # kept while conn lives
                unwrap_msg(conn.send_and_get_reply(message_bus.AddMatch(rule),
                                                   timeout=self.timeout))
                # systemd only emits job signals while some client subscribes
                unwrap_msg(conn.send_and_get_reply(
                    new_method_call(manager_address(), "Subscribe"), timeout=self.timeout))
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
        self._signals.clear()
        self._pending.clear()   # their waits fail: the signals are lost with the connection

    def _failed(self, what: str, e: BaseException) -> Exception:
        """The error to raise for a failed call on the connection."""
        from jeepney.wrappers import DBusErrorResponse

        if isinstance(e, DBusErrorResponse):
            return SystemdError(f"systemd {what}: {e.name}: {' '.join(map(str, e.data))}",
                                e.name or "")
        self._drop()
        return Unavailable(f"systemd {what}: {e or type(e).__name__}")

    def _call(self, method: str, signature: str, body: tuple[Any, ...]) -> Any:
        """Call a Manager method; its reply's body."""
        with self._lock:
            conn = self._connection()
            from jeepney import new_method_call
            from jeepney.wrappers import DBusErrorResponse

            try:
                reply = conn.send_and_get_reply(
                    new_method_call(manager_address(), method, signature, body),
                    timeout=self.timeout)
                out = unwrap_msg(reply)
            except (DBusErrorResponse, OSError, TimeoutError, EOFError) as e:
                raise self._failed(f"{method}{body[:1]}", e) from e
            if out and isinstance(out[0], str) and out[0].startswith("/org/freedesktop/"
                                                                    "systemd1/job/"):
                self._pending[out[0]] = None
            return out

    def _collect(self) -> None:
        """Move the queued JobRemoved signals of jobs we wait for into _pending."""
        while self._signals:
            _id, path, _unit, result = self._signals.popleft().body
            if path in self._pending:
                self._pending[path] = str(result)

    def wait_job(self, job: str) -> str:
        """Wait for a job started by this manager to finish; its result
        ("done" on success)."""
        deadline = time.monotonic() + self.timeout
        with self._lock:
            try:
                while True:
                    self._collect()
                    if job not in self._pending:
                        raise Unavailable(f"systemd: lost track of job {job} (the D-Bus "
                                          "connection was reset)")
                    result = self._pending[job]
                    if result is not None:
                        del self._pending[job]
                        return result
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError(f"job {job} did not finish in {self.timeout:.0f} s")
                    conn = self._connection()
                    conn.recv_messages(timeout=left)
            except (OSError, TimeoutError, EOFError) as e:
                self._pending.pop(job, None)
                raise self._failed(f"waiting for {job}", e) from e

    def forget_job(self, job: str) -> None:
        """Stop tracking a job nobody will wait for."""
        with self._lock:
            self._pending.pop(job, None)

    def start_transient_unit(self, name: str, properties: list[Property],
                             wait: bool = True) -> str:
        """Start a transient unit and return its job; with `wait`, return
        once the job is done (a scope's cgroup then exists with its
        processes in it).  Without it, call wait_job or forget_job."""
        job = str(self._call("StartTransientUnit", "ssa(sv)a(sa(sv))",
                             (name, "fail", properties, []))[0])
        if wait:
            self.check_started(name, job)
        return job

    def check_started(self, name: str, job: str) -> None:
        """Wait for a unit's start job; SystemdError unless it ended "done"."""
        result = self.wait_job(job)
        if result != "done":
            raise SystemdError(f"systemd: starting {name} ended {result!r} (see "
                               f"`journalctl -u {name}`)")

    def stop_unit(self, name: str) -> None:
        """Stop `name` and wait; a unit that is already gone is not an error."""
        try:
            job = str(self._call("StopUnit", "ss", (name, "replace"))[0])
        except SystemdError as e:
            if e.name != NO_SUCH_UNIT:
                raise
            return
        self.wait_job(job)

    def set_unit_properties(self, name: str, properties: list[Property]) -> None:
        """Change a running unit's properties (runtime only, like
        `systemctl set-property --runtime`)."""
        if properties:
            self._call("SetUnitProperties", "sba(sv)", (name, True, properties))


_shared: SystemdManager | None = None
_shared_lock = threading.Lock()


def system_manager() -> SystemdManager:
    """The process's one connection to systemd (opened on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = SystemdManager()
        return _shared
