"""Stops that cannot get stuck (ContainerManager.stop over container/stops.py),
against the fakes: a stop in progress with a long deadline is taken over by
a later one with a nearer deadline (the kubelet shortening a grace period
to 0), by RemoveContainer and by StopPodSandbox; a later, farther deadline
never extends it; the waits are woken by the exit, not by polling."""
from __future__ import annotations

import signal
import threading
import time
from types import SimpleNamespace

import pytest

from crio_native._proto import api_pb2
from crio_native.container import manager as manager_mod
from crio_native.container.manager import ContainerManager
from crio_native.container.record import EXITED
from crio_native.cri.sandbox.remove import remove_pod_sandbox
from crio_native.cri.sandbox.stop import stop_pod_sandbox
from crio_native.errors import DeadlineExceeded
from tests.fixtures.fakes import FakeHandler, FakeHandlerSet, World
from tests.unit.test_container_rollback import Node

HANG = 15.0     # a call that has not returned by then waits behind the 60 s stop


class StubbornHandler(FakeHandler):
    """A container whose process ignores the signals in `ignored` (SIGTERM:
    `trap '' TERM`); every signal sent is kept in `signals`."""

    def __init__(self, world: World, ignored=(signal.SIGTERM,)):
        super().__init__(world)
        self.ignored = set(ignored)
        self.signals: list[int] = []
        self.signalled = threading.Condition()

    def kill(self, container_id: str, sig: int, all_processes: bool = False) -> None:
        with self.signalled:
            self.signals.append(int(sig))
            self.signalled.notify_all()
        if sig in self.ignored:
            self.world.step("handler.kill")
            return
        super().kill(container_id, sig, all_processes)

    def wait_signal(self, sig: int, timeout: float = 10.0) -> None:
        with self.signalled:
            assert self.signalled.wait_for(lambda: sig in self.signals, timeout), \
                f"signal {sig} never sent (sent: {self.signals})"


@pytest.fixture
def node(tmp_path, world):
    n = Node(tmp_path, world)
    yield n
    for manager in n.managers:
        n.stop(manager)


def stubborn_manager(node: Node, **kw) -> ContainerManager:
    handler = StubbornHandler(node.world, **kw)
    manager = ContainerManager(node.config, node.pods, lambda: node.images,
                               FakeHandlerSet(node.world, handler))
    manager.handler = handler
    node.managers.append(manager)
    return manager


@pytest.fixture
def manager(node):
    return stubborn_manager(node)


def running(node: Node, manager: ContainerManager, name: str = "app") -> str:
    container_id = manager.create(node.request(name))
    manager.start(container_id)
    return container_id


def pending_stop(world: World, manager: ContainerManager, container_id: str, timeout: int):
    """A StopContainer(timeout) on a thread, once its stop signal was sent."""
    call = world.in_thread(manager.stop, container_id, timeout)
    manager.handler.wait_signal(signal.SIGTERM)
    return call


def returned(call, timeout: float = HANG) -> bool:
    call.thread.join(timeout)
    return not call.thread.is_alive()


def assert_killed(manager: ContainerManager, container_id: str) -> None:
    record = manager.store.get(container_id, "test")
    assert (record.state, record.exit_code, record.reason) == (EXITED, 137, "Error")


@pytest.mark.parametrize("long", [60, 2**62])     # any int64 the kubelet may send
def test_a_stop_with_timeout_0_takes_over_a_pending_long_one(long, node, manager, world):
    container_id = running(node, manager)
    first = pending_stop(world, manager, container_id, long)
    started = time.monotonic()
    manager.stop(container_id, timeout=0)
    assert time.monotonic() - started < HANG
    assert_killed(manager, container_id)            # the exit the monitor wrote
    assert returned(first, 5.0) and first.error is None
    assert manager.handler.signals == [signal.SIGTERM, signal.SIGKILL]   # one of each
    assert manager.stops.pending(container_id) is None
    manager.remove(container_id)
    node.assert_no_container_left(manager)


def test_a_shorter_timeout_brings_the_kill_forward(node, manager, world):
    container_id = running(node, manager)
    first = pending_stop(world, manager, container_id, 60)
    started = time.monotonic()
    manager.stop(container_id, timeout=1)
    assert time.monotonic() - started < HANG
    assert_killed(manager, container_id)
    assert returned(first, 5.0) and first.error is None
    assert manager.handler.signals == [signal.SIGTERM, signal.SIGKILL]
    manager.remove(container_id)


def test_a_longer_timeout_waits_for_the_pending_stop_without_extending_it(node, manager,
                                                                           world):
    container_id = running(node, manager)
    first = pending_stop(world, manager, container_id, 1)
    started = time.monotonic()
    manager.stop(container_id, timeout=60)
    assert time.monotonic() - started < HANG         # the first stop's SIGKILL, not 60 s
    assert_killed(manager, container_id)
    assert returned(first, 5.0) and first.error is None
    assert manager.handler.signals == [signal.SIGTERM, signal.SIGKILL]   # no second SIGTERM
    manager.remove(container_id)


def test_a_stop_signal_heeded_ends_every_caller(node, world):
    manager = stubborn_manager(node, ignored=())
    container_id = running(node, manager)
    calls = [world.in_thread(manager.stop, container_id, 60) for _ in range(3)]
    assert all(returned(call) and call.error is None for call in calls)
    record = manager.store.get(container_id, "test")
    assert (record.state, record.exit_code) == (EXITED, 128 + signal.SIGTERM)
    assert signal.SIGKILL not in manager.handler.signals
    manager.remove(container_id)


def test_remove_takes_over_a_pending_stop(node, manager, world):
    container_id = running(node, manager)
    first = pending_stop(world, manager, container_id, 60)
    started = time.monotonic()
    manager.remove(container_id)
    assert time.monotonic() - started < HANG
    assert returned(first, 5.0) and first.error is None
    node.assert_no_container_left(manager)


def test_stop_and_remove_pod_sandbox_take_over_pending_stops(node, manager, world):
    ids = [running(node, manager, name) for name in ("a", "b")]
    firsts = [pending_stop(world, manager, cid, 60) for cid in ids]
    ctx = SimpleNamespace(sandboxes=node.pods, containers=manager)
    started = time.monotonic()
    stop_pod_sandbox(ctx, api_pb2.StopPodSandboxRequest(pod_sandbox_id=node.pod_id))
    assert time.monotonic() - started < HANG
    for cid in ids:
        assert_killed(manager, cid)
    assert all(returned(first, 5.0) and first.error is None for first in firsts)
    remove_pod_sandbox(ctx, api_pb2.RemovePodSandboxRequest(pod_sandbox_id=node.pod_id))
    node.assert_no_container_left(manager)


def test_remove_pod_sandbox_takes_over_a_pending_stop(node, manager, world):
    container_id = running(node, manager)
    first = pending_stop(world, manager, container_id, 60)
    ctx = SimpleNamespace(sandboxes=node.pods, containers=manager)
    remove_pod_sandbox(ctx, api_pb2.RemovePodSandboxRequest(pod_sandbox_id=node.pod_id))
    assert returned(first) and first.error is None
    node.assert_no_container_left(manager)


def test_a_sigkill_that_does_not_take_fails_every_caller_in_bounded_time(node, world,
                                                                          monkeypatch):
    monkeypatch.setattr(manager_mod, "KILL_WAIT_SECONDS", 0.5)
    manager = stubborn_manager(node, ignored=(signal.SIGTERM, signal.SIGKILL))
    container_id = running(node, manager)
    first = pending_stop(world, manager, container_id, 60)
    with pytest.raises(DeadlineExceeded, match="after SIGKILL"):
        manager.stop(container_id, timeout=0)
    assert returned(first) and isinstance(first.error, DeadlineExceeded)
    manager.handler.exit(container_id, 137)         # it ends after all (a D-state wait)
    manager.remove(container_id)
    node.assert_no_container_left(manager)


def test_the_waits_are_woken_by_the_exit_not_by_polling(node, manager, world):
    container_id = running(node, manager)
    refresh, calls = manager.refresh, []
    manager.refresh = lambda record: (calls.append(record.id), refresh(record))[1]
    manager.stop(container_id, timeout=1)           # a second of SIGTERM ignored
    assert_killed(manager, container_id)
    assert len(calls) < 5, f"refresh polled {len(calls)} times"
    manager.remove(container_id)
