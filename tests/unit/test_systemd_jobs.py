"""SystemdManager's job tracking, over a scripted connection: a unit's
start job may finish (JobRemoved) before anyone waits for it, jobs finish
out of order, and signals of other clients' jobs are dropped.  The real bus
is exercised by tests/e2e/test_systemd_*.py under systemd."""
from __future__ import annotations

from collections import deque
from types import SimpleNamespace

import pytest

from jeepney import HeaderFields

from crio_native.errors import Unavailable
from crio_native.linux.systemd import bus
from crio_native.linux.systemd.bus import SystemdError, SystemdManager

JOB = "/org/freedesktop/systemd1/job/{}"


class ScriptedConnection:
    """Answers each method call with the next job number; JobRemoved
    signals are delivered, one per recv_messages, from `self.incoming`."""

    def __init__(self) -> None:
        self.queues: list[deque] = []
        self.incoming: deque = deque()
        self.next_job = 1
        self.calls: list[str] = []

    def filter(self, _rule, *, queue):
        self.queues.append(queue)

    def send_and_get_reply(self, msg, timeout=None):
        member = msg.header.fields[HeaderFields.member]
        self.calls.append(member)
        if member in ("AddMatch", "Subscribe", "SetUnitProperties"):
            return SimpleNamespace(body=(), header=msg.header)
        job = JOB.format(self.next_job)
        self.next_job += 1
        return SimpleNamespace(body=(job,), header=msg.header)

    def recv_messages(self, timeout=None):
        if not self.incoming:
            raise TimeoutError("nothing more from systemd")
        for q in self.queues:
            q.append(self.incoming.popleft())

    def close(self):
        pass


def removed(n: int, result: str = "done") -> SimpleNamespace:
    return SimpleNamespace(body=(n, JOB.format(n), f"u{n}.scope", result))


@pytest.fixture
def conn(monkeypatch):
    c = ScriptedConnection()
    monkeypatch.setattr(bus, "open_dbus_connection", lambda bus: c)
    monkeypatch.setattr(bus, "unwrap_msg", lambda reply: reply.body)
    return c


def test_job_finished_before_the_wait_is_not_lost(conn):
    m = SystemdManager(timeout=5)
    first = m.start_transient_unit("a.scope", [], wait=False)
    second = m.start_transient_unit("b.scope", [], wait=False)
    conn.incoming.extend([removed(99), removed(2), removed(1, "failed")])
    assert m.wait_job(second) == "done"          # read past job 1's signal
    assert m.wait_job(first) == "failed"         # kept from then
    assert m._pending == {}                       # the unknown job 99 was dropped


def test_start_that_does_not_end_done_is_an_error(conn):
    m = SystemdManager(timeout=5)
    conn.incoming.append(removed(1, "dependency"))
    with pytest.raises(SystemdError, match="ended 'dependency'"):
        m.start_transient_unit("a.scope", [])


def test_forgotten_job_is_not_tracked(conn):
    m = SystemdManager(timeout=5)
    job = m.start_transient_unit("a.scope", [], wait=False)
    m.forget_job(job)
    conn.incoming.append(removed(1))
    m._collect()
    assert m._pending == {}


def test_lost_connection_fails_the_wait_and_forgets_the_jobs(conn):
    m = SystemdManager(timeout=5)
    job = m.start_transient_unit("a.scope", [], wait=False)
    with pytest.raises(Unavailable, match="waiting for"):
        m.wait_job(job)                          # recv raises: the connection is dropped
    assert m._pending == {} and m._conn is None
