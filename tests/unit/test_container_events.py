"""The event bus behind GetContainerEvents and the exit watcher."""
from __future__ import annotations

import subprocess
import threading

from crio_native.container import events
from crio_native.container.events import EventBus
from crio_native.container.watcher import ExitWatcher


def test_every_subscriber_gets_every_event_in_order():
    bus = EventBus()
    a, b = bus.subscribe(), bus.subscribe()
    bus.publish(events.CREATED, "c1", "p1")
    bus.publish(events.STARTED, "c1", "p1")
    for sub in (a, b):
        got = [sub.next(1), sub.next(1)]
        assert [(e.kind, e.container_id, e.sandbox_id) for e in got] == [
            ("created", "c1", "p1"), ("started", "c1", "p1")]
        assert got[0].created_at <= got[1].created_at
    assert a.next(0.01) is None


def test_a_slow_subscriber_loses_events_instead_of_blocking(monkeypatch):
    monkeypatch.setattr(events, "QUEUE_SIZE", 2)
    bus = EventBus()
    sub = bus.subscribe()
    for i in range(5):
        bus.publish(events.CREATED, f"c{i}", "p")
    assert [sub.next(0.1).container_id for _ in range(2)] == ["c0", "c1"]
    assert sub.overflowed and sub.next(0.01) is None
    bus.publish(events.DELETED, "c9", "p")
    assert sub.next(0.1).container_id == "c9" and not sub.overflowed


def test_cancel_and_close():
    bus = EventBus()
    gone, kept = bus.subscribe(), bus.subscribe()
    gone.cancel()
    bus.publish(events.CREATED, "c", "p")
    assert gone.next(0.01) is None
    assert kept.next(0.1).kind == "created"
    bus.close()
    assert kept.next(1) is None and kept.closed


def test_watcher_reports_a_process_end_once():
    seen: list[str] = []
    done = threading.Event()

    def on_exit(cid):
        seen.append(cid)
        done.set()

    watcher = ExitWatcher(on_exit)
    try:
        proc = subprocess.Popen(["sleep", "0.2"])
        watcher.watch("c1", proc.pid)
        assert done.wait(5)
        proc.wait()
        assert seen == ["c1"]
        watcher.watch("c2", proc.pid)     # already gone: reported at once
        assert seen == ["c1", "c2"]
    finally:
        watcher.close()
