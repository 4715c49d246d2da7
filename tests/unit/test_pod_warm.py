"""RunPodSandbox holds the process's cgroup attach warmer (linux/cgroups/
warm.py) from its first step, so the v1 attach's grace period is waited
while the CNI plugins run, not in the first CreateContainer's cgroup
mkdirs; the pod's first create takes the hold over, and a failed run, a
stop, or POD_WARM_SECONDS without a create end it.  A plain file stands in
for cgroup.procs; the managers run over the fakes."""
from __future__ import annotations

import threading
import time

import pytest

from crio_native.linux.cgroups import warm
from crio_native.linux.cgroups.warm import AttachWarmer
from crio_native.sandbox import manager as sandbox_manager_module
from tests.fixtures.fakes import Injected, config_under, pod_request, sandbox_manager
from tests.unit.test_container_rollback import Node


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.002)


def warmer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "cgroup-warmer"]


@pytest.fixture
def warmer(tmp_path, monkeypatch):
    """The process's shared warmer, writing to a plain file."""
    procs = tmp_path / "cgroup.procs"
    procs.write_text("")
    w = AttachWarmer(procs)
    monkeypatch.setattr(warm, "_shared", w)
    yield w
    wait_for(lambda: not warmer_threads())


def test_run_holds_the_warmer_until_released(tmp_path, world, warmer):
    pods = sandbox_manager(config_under(tmp_path), world)
    sandbox_id = pods.run(pod_request())
    # still held after RunPodSandbox returned: the create comes next
    before = warmer.writes
    wait_for(lambda: warmer.writes >= before + 2)
    assert warmer_threads() and list(pods._warm) == [sandbox_id]
    pods.release_warm(sandbox_id)
    pods.release_warm(sandbox_id)              # a second call does nothing
    wait_for(lambda: not warmer_threads())
    assert pods._warm == {} and warmer._holds == {}
    pods.remove(sandbox_id)


def test_the_warmer_is_held_while_the_cni_add_runs(tmp_path, world, warmer):
    pods = sandbox_manager(config_under(tmp_path), world)
    seen = []
    add = pods.cni.add

    def add_watching(net, attachment):
        before = warmer.writes
        wait_for(lambda: warmer.writes > before)
        seen.append(len(warmer._holds))
        return add(net, attachment)

    pods.cni.add = add_watching
    sandbox_id = pods.run(pod_request())
    assert seen == [1]
    pods.release_warm(sandbox_id)
    pods.remove(sandbox_id)


def test_a_failed_run_ends_its_hold(tmp_path, world, warmer):
    pods = sandbox_manager(config_under(tmp_path), world)
    world.fail("cni.add:eth0")
    with pytest.raises(Injected):
        pods.run(pod_request())
    assert pods._warm == {} and warmer._holds == {}
    wait_for(lambda: not warmer_threads())


def test_a_stop_ends_the_hold_of_a_pod_without_containers(tmp_path, world, warmer):
    pods = sandbox_manager(config_under(tmp_path), world)
    sandbox_id = pods.run(pod_request())
    pods.stop(sandbox_id)
    assert pods._warm == {} and warmer._holds == {}
    wait_for(lambda: not warmer_threads())
    pods.remove(sandbox_id)


def test_the_hold_runs_out_without_a_create(tmp_path, world, warmer, monkeypatch):
    monkeypatch.setattr(sandbox_manager_module, "POD_WARM_SECONDS", 0.05)
    pods = sandbox_manager(config_under(tmp_path), world)
    sandbox_id = pods.run(pod_request())
    wait_for(lambda: not warmer_threads())
    assert warmer._holds == {}
    pods.release_warm(sandbox_id)              # late: does nothing
    pods.remove(sandbox_id)


def test_the_first_create_takes_the_hold_over(tmp_path, world, warmer):
    node = Node(tmp_path, world)
    assert list(node.pods._warm) == [node.pod_id]
    manager = node.manager()
    try:
        holds_in_create = []
        create = manager.handler.create

        def create_watching(*args, **kwargs):
            holds_in_create.append((len(warmer._holds), dict(node.pods._warm)))
            return create(*args, **kwargs)

        manager.handler.create = create_watching
        container_id = manager.create(node.request())
        # during the launch: the create's own hold only; after it: none
        assert holds_in_create == [(1, {})]
        assert warmer._holds == {}
        wait_for(lambda: not warmer_threads())
        manager.remove(container_id)
    finally:
        node.stop(manager)
    node.pods.stop(node.pod_id)
    node.pods.remove(node.pod_id)
