"""SandboxManager against fakes (tests/fixtures/fakes.py): a failure, a failed
undo or a crash at every step of RunPodSandbox leaves nothing behind once
the error is returned (or the daemon restarted), and the record store ends
consistent.  No root, no kernel: the fakes record what they made."""
from __future__ import annotations

from pathlib import Path

import pytest

from crio_native.errors import FailedPrecondition
from crio_native.sandbox.record import CREATING, NOTREADY, READY
from crio_native.state.files import read_json
from tests.fixtures.fakes import Injected, World, config_under, pod_request, sandbox_manager

# RunPodSandbox's steps as the fakes see them, in order (each fails before it acts)
CREATE_STEPS = [
    "handlers.get",
    "host.pin_namespaces",
    "host.apply_sysctls_and_hostname",
    "host.mount_shm",
    "networks.current",
    "host.bring_up_loopback",
    "cni.add:eth0",
    "handler.start_sandbox:cgroup",
    "handler.start_sandbox:infra",
    "handler.start_sandbox:done",
    "host.write_pod_files",
]
UNDO_STEPS = ["handler.remove_sandbox", "cni.delete:eth0", "host.unmount_shm",
              "host.unpin_namespaces", "host.remove_directory"]


@pytest.fixture
def config(tmp_path):
    return config_under(tmp_path)


@pytest.fixture
def manager(config, world):
    return sandbox_manager(config, world)


def records_on_disk(config) -> list[dict]:
    return [read_json(p) for p in sorted((Path(config.root) / "sandboxes").glob("*.json"))]


def files_left(config) -> list[str]:
    """What pods left under the runroot: pod directories, pins (the pin
    directories per namespace kind are shared, and stay)."""
    run = Path(config.runroot)
    return sorted(str(p) for p in run.rglob("*")
                  if not p.is_dir() or p.parent == run / "pods")


def assert_nothing_left(manager, config, world) -> None:
    assert world.live == []
    assert manager.store.all() == []
    assert records_on_disk(config) == []
    assert files_left(config) == []


def crash_at(step: str, config, world: World, request):
    """Run RunPodSandbox on a manager that dies (freezes for good) at `step`."""
    frozen = world.freeze(step)
    dead = sandbox_manager(config, world)
    world.in_thread(dead.run, request)
    frozen.wait()
    return dead


# ---- the way it should go -----------------------------------------------------------

def test_run_makes_every_piece_in_order_and_remove_undoes_them(manager, config, world):
    sandbox_id = manager.run(pod_request())
    assert world.steps == CREATE_STEPS
    assert world.made == [f"{piece}@{sandbox_id[:8]}" for piece in (
        "pin:net", "pin:uts", "pin:ipc", "shm", "cni:eth0", "cgroup", "infra")]
    [disk] = records_on_disk(config)
    assert (disk["id"], disk["state"], disk["ips"]) == (sandbox_id, READY, ["10.88.0.5"])
    assert disk["infra"] and sorted(disk["pins"]) == ["ipc", "net", "pid", "uts"]
    assert (Path(disk["directory"]) / "hosts").read_text().endswith("10.88.0.5\tweb\n")

    manager.remove(sandbox_id)
    assert_nothing_left(manager, config, world)


def test_host_network_pod_attaches_no_network(manager, config, world):
    sandbox_id = manager.run(pod_request(host_network=True, share_pid=False))
    assert not any(s.startswith(("cni.", "networks.")) for s in world.steps)
    assert world.made == [f"{p}@{sandbox_id[:8]}" for p in ("pin:ipc", "shm", "cgroup")]
    manager.remove(sandbox_id)
    assert_nothing_left(manager, config, world)


# ---- a failure at each step ---------------------------------------------------------

@pytest.mark.parametrize("step", CREATE_STEPS)
def test_a_failure_at_each_step_is_rolled_back_in_reverse(step, manager, config, world):
    world.fail(step)
    with pytest.raises(Injected) as failure:
        manager.run(pod_request())
    assert failure.value.step == step
    world.assert_rolled_back()
    assert_nothing_left(manager, config, world)
    # the name is free again: the same request now makes a pod
    assert manager.store.get(manager.run(pod_request()), "test").state == READY


def test_network_not_ready_is_a_precondition_and_rolled_back(manager, config, world):
    for path in Path(config.network.network_dir).iterdir():
        path.unlink()
    with pytest.raises(FailedPrecondition, match="network not ready"):
        manager.run(pod_request())
    world.assert_rolled_back()
    assert_nothing_left(manager, config, world)


def fail_first_ready_save(manager) -> None:
    save, failed = manager.store.save, []

    def save_failing_once_at_ready(record, durable=True):
        if record.state == READY and not failed:
            failed.append(record.id)
            raise OSError(28, "No space left on device")
        save(record, durable=durable)

    manager.store.save = save_failing_once_at_ready


def test_a_failure_saving_ready_is_rolled_back(manager, config, world):
    fail_first_ready_save(manager)
    with pytest.raises(OSError, match="No space"):
        manager.run(pod_request())
    world.assert_rolled_back()
    assert_nothing_left(manager, config, world)


def test_a_failed_ready_save_with_a_failed_undo_keeps_the_record_creating(manager, config,
                                                                           world):
    fail_first_ready_save(manager)
    world.fail("host.unmount_shm")
    with pytest.raises(OSError):
        manager.run(pod_request())
    assert [r["state"] for r in records_on_disk(config)] == [CREATING]


# ---- a failed undo -------------------------------------------------------------------

@pytest.mark.parametrize("undo", UNDO_STEPS)
def test_a_failed_undo_keeps_the_record_creating_until_recover(undo, manager, config, world):
    world.fail("host.write_pod_files")
    world.fail(undo)
    with pytest.raises(Injected) as failure:
        manager.run(pod_request())
    assert failure.value.step == "host.write_pod_files"   # the cause, not the undo's error
    assert world.live != [] or files_left(config) != []
    [kept] = manager.store.all()
    assert kept.state == CREATING
    assert [r["id"] for r in records_on_disk(config) if r["state"] == CREATING] == [kept.id]

    sandbox_manager(config, world).recover()              # the next start-up
    assert world.live == []
    assert records_on_disk(config) == []
    assert files_left(config) == []


def test_a_retry_after_a_failed_undo_finishes_the_teardown_first(manager, config, world):
    world.fail("host.write_pod_files")
    world.fail("cni.delete:eth0")
    with pytest.raises(Injected):
        manager.run(pod_request())
    [kept] = manager.store.all()

    sandbox_id = manager.run(pod_request())
    assert sandbox_id != kept.id
    assert [r.id for r in manager.store.all()] == [sandbox_id]
    assert sorted(world.live) == sorted(p for p in world.live if p.endswith(sandbox_id[:8]))
    manager.remove(sandbox_id)
    assert_nothing_left(manager, config, world)


def test_a_bad_pod_cidr_leaves_no_reservation(manager, config, world):
    with pytest.raises(FailedPrecondition, match="pod CIDR '10.244.1.0/33'"):
        manager.run(pod_request(), pod_cidr="10.244.1.0/33")
    assert manager.store.all() == []


# ---- a crash at each step --------------------------------------------------------------

@pytest.mark.parametrize("step", CREATE_STEPS)
def test_recover_rolls_back_a_crash_at_each_step(step, config, world):
    crash_at(step, config, world, pod_request())
    assert [r["state"] for r in records_on_disk(config)] == [CREATING]

    restarted = sandbox_manager(config, world)
    restarted.recover()
    assert_nothing_left(restarted, config, world)


def test_recover_unmounts_shm_of_a_host_network_pod_that_crashed_in_its_handler(config,
                                                                                world):
    crash_at("handler.start_sandbox:cgroup", config, world, pod_request(host_network=True))
    restarted = sandbox_manager(config, world)
    restarted.recover()
    assert_nothing_left(restarted, config, world)


def test_the_journal_persists_what_the_handler_made(config, world):
    dead = crash_at("handler.start_sandbox:done", config, world, pod_request())
    [disk] = records_on_disk(config)
    sandbox_id = disk["id"]
    assert disk["state"] == CREATING
    assert disk["infra"] and disk["pins"]["pid"] == str(Path(disk["directory"]) / "pid-ns")
    assert disk["cgroups_made"] == ["/sys/fs/cgroup/fake/poduid-web"]
    assert disk["network_attached"] and disk["shm_path"]

    world.steps.clear()
    restarted = sandbox_manager(config, world)
    restarted.recover()
    teardown = world.steps[:world.steps.index("host.remove_directory") + 1]
    assert teardown == ["handlers.get", "handler.stop_sandbox", "cni.delete:eth0",
                        "host.unmount_shm", "host.unpin_namespaces",
                        "handler.remove_sandbox", "host.remove_directory"]
    assert_nothing_left(restarted, config, world)
    assert dead.store.find(sandbox_id) is not None   # the dead daemon never got further


# ---- retries, stop, remove ---------------------------------------------------------------

def test_a_retried_run_returns_the_same_sandbox(manager, world):
    first = manager.run(pod_request())
    assert manager.run(pod_request()) == first
    assert world.steps.count("handler.start_sandbox:cgroup") == 1
    assert manager.run(pod_request(attempt=1)) != first


def test_a_retry_during_the_first_run_waits_for_it(manager, world):
    frozen = world.freeze("host.write_pod_files")
    first = world.in_thread(manager.run, pod_request())
    frozen.wait()
    retry = world.in_thread(manager.run, pod_request())
    frozen.resume()
    first.thread.join(10)
    retry.thread.join(10)
    assert first.error is None and retry.error is None
    assert retry.result == first.result
    assert world.steps.count("handler.start_sandbox:cgroup") == 1


def test_stop_runs_cni_del_then_the_handler_and_is_idempotent(manager, config, world):
    sandbox_id = manager.run(pod_request())
    world.steps.clear()
    manager.stop(sandbox_id)
    # DEL first (alongside StopPodSandbox's container kill), the infra last
    assert world.steps == ["cni.delete:eth0", "handlers.get", "handler.stop_sandbox"]
    [disk] = records_on_disk(config)
    assert (disk["state"], disk["network_attached"], disk["infra"], disk["ips"]) == (
        NOTREADY, False, False, [])
    assert "pid" not in disk["pins"]
    assert sorted(p.split("@")[0] for p in world.live) == [
        "cgroup", "pin:ipc", "pin:net", "pin:uts", "shm"]

    world.steps.clear()
    manager.stop(sandbox_id)
    assert world.steps == ["handlers.get", "handler.stop_sandbox"]
    assert records_on_disk(config) == [disk]

    manager.remove(sandbox_id)
    assert_nothing_left(manager, config, world)


def test_stop_deletes_lo_only_where_the_loopback_plugin_added_it(manager, config, world):
    """lo is brought up without a plugin (nothing to DEL); a pod attached by
    an earlier version, with the loopback plugin's ADD cached, gets its DEL."""
    from crio_native.sandbox.manager import LOOPBACK

    sandbox_id = manager.run(pod_request())
    assert (LOOPBACK.name, sandbox_id, "lo") not in world.cni
    world.cni[(LOOPBACK.name, sandbox_id, "lo")] = {"netns": "", "args": {}, "caps": {}}
    world.make(f"cni:lo@{sandbox_id[:8]}")
    world.steps.clear()
    manager.stop(sandbox_id)
    assert world.steps == ["cni.delete:eth0", "cni.delete:lo", "handlers.get",
                           "handler.stop_sandbox"]
    manager.remove(sandbox_id)
    assert_nothing_left(manager, config, world)


def test_stop_and_remove_of_an_unknown_sandbox_succeed(manager, world):
    manager.stop("0123456789abcdef")
    manager.remove("0123456789abcdef")
    assert world.steps == []


@pytest.mark.parametrize("step", ["handler.stop_sandbox", "cni.delete:eth0",
                                  "host.unmount_shm", "handler.remove_sandbox"])
def test_a_failed_remove_keeps_the_record_and_a_retry_finishes(step, manager, config, world):
    sandbox_id = manager.run(pod_request())
    world.fail(step)
    with pytest.raises(Injected):
        manager.remove(sandbox_id)
    assert manager.store.find(sandbox_id) is not None
    assert [r["id"] for r in records_on_disk(config)] == [sandbox_id]
    manager.remove(sandbox_id)
    assert_nothing_left(manager, config, world)


def test_recover_marks_a_pod_whose_pins_vanished_not_ready(manager, config, world):
    sandbox_id = manager.run(pod_request())
    for path in manager.store.get(sandbox_id, "test").pins.values():
        Path(path).unlink()                                 # a reboot
    restarted = sandbox_manager(config, world)
    restarted.recover()
    record = restarted.store.get(sandbox_id, "test")
    assert (record.state, record.pins) == (NOTREADY, {})
    assert read_json(Path(config.root) / "sandboxes" / f"{sandbox_id}.json")["state"] == NOTREADY
