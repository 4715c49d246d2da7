"""Container lifecycle events for GetContainerEvents (the Evented PLEG).

Each subscriber gets its own bounded queue.  A subscriber that falls behind
loses events rather than stalling the lifecycle (the kubelet's relist
catches up); the loss is logged once per overflow."""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

from crio_native.logsetup import fields

log = logging.getLogger(__name__)

CREATED = "created"
STARTED = "started"
STOPPED = "stopped"
DELETED = "deleted"
QUEUE_SIZE = 1000


@dataclass(frozen=True)
class ContainerEvent:
    kind: str                 # CREATED, STARTED, STOPPED or DELETED
    container_id: str
    sandbox_id: str
    created_at: int           # ns since the epoch


class Subscription:
    def __init__(self, bus: "EventBus"):
        self.bus = bus
        self.queue: queue.Queue[ContainerEvent | None] = queue.Queue(QUEUE_SIZE)
        self.overflowed = False

    def next(self, timeout: float) -> ContainerEvent | None:
        """The next event, or None after `timeout` seconds or once closed."""
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None

    @property
    def closed(self) -> bool:
        return self.bus.closed

    def cancel(self) -> None:
        self.bus.unsubscribe(self)


class EventBus:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.subscribers: list[Subscription] = []
        self.closed = False

    def subscribe(self) -> Subscription:
        sub = Subscription(self)
        with self.lock:
            self.subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self.lock:
            if sub in self.subscribers:
                self.subscribers.remove(sub)

    def publish(self, kind: str, container_id: str, sandbox_id: str) -> None:
        event = ContainerEvent(kind, container_id, sandbox_id, time.time_ns())
        with self.lock:
            subscribers = list(self.subscribers)
        for sub in subscribers:
            try:
                sub.queue.put_nowait(event)
                sub.overflowed = False
            except queue.Full:
                if not sub.overflowed:
                    log.warning("container event subscriber is behind; dropping events",
                                extra=fields(container=container_id, event=kind))
                sub.overflowed = True

    def close(self) -> None:
        """Wake every subscriber so streams end (daemon shutdown)."""
        with self.lock:
            self.closed = True
            subscribers = list(self.subscribers)
        for sub in subscribers:
            try:
                sub.queue.put_nowait(None)
            except queue.Full:
                pass
