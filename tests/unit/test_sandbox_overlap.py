"""StopPodSandbox's container kill runs alongside CNI DEL (sandbox/overlap.py):
both really run at once, the errors of either come back, the infra is
stopped only after both, and the steps of the kill land in the call's
trace.  Against the fakes (tests/fixtures/fakes.py); no root."""
from __future__ import annotations

import threading

import pytest

from crio_native import failpoints, steps
from crio_native.sandbox.overlap import alongside
from crio_native.sandbox.record import NOTREADY
from tests.fixtures.fakes import Injected, config_under, pod_request, sandbox_manager

WAIT = 10.0


@pytest.fixture
def manager(tmp_path, world):
    return sandbox_manager(config_under(tmp_path), world)


def test_no_work_runs_the_body_alone():
    ran = []
    with alongside(None, "nothing"):
        ran.append("body")
    assert ran == ["body"]


def test_work_and_body_run_at_the_same_time():
    # each waits for the other: run one after the other, both would time out
    body_in, work_in = threading.Event(), threading.Event()

    def work() -> None:
        work_in.set()
        assert body_in.wait(WAIT)

    with alongside(work, "test"):
        body_in.set()
        assert work_in.wait(WAIT)


def test_the_body_waits_for_the_work_and_gets_its_error():
    done = threading.Event()

    def work() -> None:
        done.wait(0.05)
        done.set()
        raise Injected("work")

    with pytest.raises(Injected, match="work"):
        with alongside(work, "test"):
            pass
    assert done.is_set()


def test_the_body_error_wins_and_the_work_is_still_waited_for():
    finished = threading.Event()

    def work() -> None:
        finished.wait(0.05)
        finished.set()
        raise Injected("work")

    with pytest.raises(Injected, match="body"):
        with alongside(work, "test"):
            raise Injected("body")
    assert finished.is_set()


def test_steps_of_the_work_land_in_the_callers_trace():
    with steps.tracing("StopPodSandbox", "pod") as trace:
        with alongside(lambda: failpoints.hit("container.stop.killed"), "test"):
            pass
    assert "container.stop.killed" in [name for name, _ in trace.steps]


def test_stop_kills_while_del_runs_then_stops_the_infra(manager, world):
    sandbox_id = manager.run(pod_request())
    frozen = world.freeze("cni.delete:eth0")
    killed = threading.Event()

    def kill() -> None:
        world.step("kill containers")
        killed.set()

    stopping = world.in_thread(manager.stop, sandbox_id, kill)
    frozen.wait()
    # DEL is held: the kill has run all the same, and the infra waits for both
    assert killed.wait(WAIT)
    assert "handler.stop_sandbox" not in world.steps
    assert manager.store.get(sandbox_id, "test").state == NOTREADY
    frozen.resume()
    stopping.thread.join(WAIT)
    assert stopping.error is None
    after_del = world.steps[world.steps.index("cni.delete:eth0"):]
    assert after_del[-1] == "handler.stop_sandbox"
    record = manager.store.get(sandbox_id, "test")
    assert (record.network_attached, record.infra, record.ips) == (False, False, [])
    manager.remove(sandbox_id)


def test_a_failed_kill_fails_the_stop_after_del_and_a_retry_finishes(manager, world):
    sandbox_id = manager.run(pod_request())

    def kill() -> None:
        raise Injected("kill")

    with pytest.raises(Injected, match="kill"):
        manager.stop(sandbox_id, kill)
    record = manager.store.get(sandbox_id, "test")
    # DEL went through; the infra is left for the retry
    assert not record.network_attached
    assert "handler.stop_sandbox" not in world.steps
    manager.stop(sandbox_id, lambda: None)
    assert "handler.stop_sandbox" in world.steps
    manager.remove(sandbox_id)


def test_a_failed_del_still_waits_for_the_kill(manager, world):
    sandbox_id = manager.run(pod_request())
    world.fail("cni.delete:eth0")
    killed = threading.Event()

    def kill() -> None:
        killed.wait(0.05)
        killed.set()

    with pytest.raises(Injected):
        manager.stop(sandbox_id, kill)
    assert killed.is_set()
    assert manager.store.get(sandbox_id, "test").network_attached
    manager.stop(sandbox_id)
    manager.remove(sandbox_id)
