"""The managers killed at each named failpoint (crio_native/failpoints.py)
of the seven operations, against the fakes (tests/fixtures/fakes.py): the
dying manager freezes for good at the point, a fresh one over the same
state dirs and the same fake host recovers, and the interrupted object is
finished or undone, and the kubelet's retry and cleanup leave nothing.
The points inside the real runtime (the pod cgroup, the infra, the builtin
create) are not reached with fakes: tests/e2e/test_crash_failpoints.py
kills a real daemon there, and at every other point too."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from crio_native import failpoints
from crio_native.container.manager import STARTING
from crio_native.container.record import CREATED, EXITED, RUNNING
from crio_native.sandbox.record import NOTREADY, READY
from tests.fixtures.fakes import end_monitor, pod_request, sandbox_manager, short
from tests.unit.test_container_rollback import node  # noqa: F401
from tests.unit.test_sandbox_rollback import (assert_nothing_left, config,  # noqa: F401
                                              files_left, manager, records_on_disk)

IN_THE_RUNTIME = {"sandbox.run.cgroup_made", "sandbox.run.infra_launched",
                  "sandbox.run.infra_created",
                  "sandbox.run.infra_started", "sandbox.run.infra_pinned",
                  "container.create.runtime_made", "container.create.monitor_launched"}


def points(operation: str) -> list[str]:
    return [n for n in failpoints.CATALOGUE[operation] if n not in IN_THE_RUNTIME]


@pytest.fixture(autouse=True)
def disarmed():
    failpoints.disarm()
    yield
    failpoints.disarm()


def die_at(point: str, world, call, *args) -> None:  # noqa: F811
    frozen = world.freeze_failpoint(point)
    world.in_thread(call, *args)
    frozen.wait()


# ---- pod sandboxes ---------------------------------------------------------------------

@pytest.mark.parametrize("point", points("sandbox.run"))
def test_a_run_killed_at_each_point_is_undone_or_ready(point, config, world):  # noqa: F811
    die_at(point, world, sandbox_manager(config, world).run, pod_request())
    restarted = sandbox_manager(config, world)
    restarted.recover()
    if point == "sandbox.run.ready":
        [record] = restarted.store.all()
        assert record.state == READY and record.network_attached and record.ips
        assert all(Path(p).exists() for p in record.pins.values())
        restarted.remove(record.id)
    assert_nothing_left(restarted, config, world)


@pytest.mark.parametrize("point", points("sandbox.stop"))
def test_a_stop_killed_at_each_point_leaves_a_not_ready_pod_to_stop_again(
        point, manager, config, world):  # noqa: F811
    sandbox_id = manager.run(pod_request())
    die_at(point, world, manager.stop, sandbox_id)
    restarted = sandbox_manager(config, world)
    restarted.recover()
    record = restarted.store.get(sandbox_id, "test")
    assert record.state == NOTREADY

    restarted.stop(sandbox_id)
    assert (record.network_attached, record.infra, record.ips) == (False, False, [])
    assert not [p for p in world.live if p.startswith(("cni:", "infra@"))]
    restarted.remove(sandbox_id)
    assert_nothing_left(restarted, config, world)


@pytest.mark.parametrize("point", points("sandbox.remove"))
def test_a_remove_killed_at_each_point_leaves_a_not_ready_pod_to_remove_again(
        point, manager, config, world):  # noqa: F811
    sandbox_id = manager.run(pod_request())
    die_at(point, world, manager.remove, sandbox_id)
    restarted = sandbox_manager(config, world)
    restarted.recover()
    assert restarted.store.get(sandbox_id, "test").state == NOTREADY
    restarted.remove(sandbox_id)
    assert_nothing_left(restarted, config, world)


def test_recover_marks_a_ready_pod_without_its_network_not_ready(manager, config,
                                                                  world):  # noqa: F811
    """What an older version's cut StopPodSandbox left: READY, detached."""
    sandbox_id = manager.run(pod_request())
    record = manager.store.get(sandbox_id, "test")
    record.network_attached, record.ips = False, []
    manager.store.save(record)
    restarted = sandbox_manager(config, world)
    restarted.recover()
    recovered = restarted.store.get(sandbox_id, "test")
    assert recovered.state == NOTREADY and recovered.pins == record.pins
    restarted.remove(sandbox_id)
    assert_nothing_left(restarted, config, world)


def test_recover_sweeps_pod_dirs_and_pins_that_no_record_owns(manager, config,
                                                               world):  # noqa: F811
    kept = manager.run(pod_request())
    run, orphan = Path(config.runroot), "ab" * 32
    (run / "pods" / orphan / "shm").mkdir(parents=True)
    (run / "ns" / "net" / orphan).touch()
    restarted = sandbox_manager(config, world)
    restarted.recover()
    assert not (run / "pods" / orphan).exists() and not (run / "ns" / "net" / orphan).exists()
    record = restarted.store.get(kept, "test")
    assert record.state == READY and all(Path(p).exists() for p in record.pins.values())
    assert Path(record.directory).is_dir()


# ---- containers ----------------------------------------------------------------------

def started(node, manager) -> str:  # noqa: F811
    cid = manager.create(node.request())
    manager.start(cid)
    return cid


def restart(node, manager):  # noqa: F811
    node.stop(manager)
    restarted = node.manager()
    restarted.recover()
    return restarted


@pytest.mark.parametrize("point", points("container.create"))
def test_a_create_killed_at_each_point_is_undone_or_created(point, node, world):  # noqa: F811
    die_at(point, world, node.manager().create, node.request())
    restarted = restart(node, node.managers[0])
    if point == "container.create.created":
        [record] = restarted.store.all()
        assert record.state == CREATED
        restarted.start(record.id)
        restarted.remove(record.id)
    node.assert_no_container_left(restarted)


@pytest.mark.parametrize("point", points("container.start"))
def test_a_start_killed_at_each_point_is_finished_at_restart(point, node, world):  # noqa: F811
    manager = node.manager()
    cid = manager.create(node.request())
    die_at(point, world, manager.start, cid)
    restarted = restart(node, manager)
    record = restarted.store.get(cid, "test")
    assert record.state == RUNNING and world.containers[cid].status == "running"
    assert world.steps.count("handler.start") == 1     # by the restart, if not before
    assert not (Path(record.directory) / STARTING).exists()
    restarted.remove(cid)
    node.assert_no_container_left(restarted)


@pytest.mark.parametrize("point", points("container.stop"))
def test_a_stop_killed_at_each_point_keeps_the_exit(point, node, world):  # noqa: F811
    manager = node.manager()
    cid = started(node, manager)
    grace = 10 if point == "container.stop.signalled" else 0
    die_at(point, world, manager.stop, cid, grace)
    restarted = restart(node, manager)
    record = restarted.store.get(cid, "test")
    assert record.state == EXITED
    assert record.exit_code == (143 if grace else 137) and record.reason == "Error"
    restarted.remove(cid)
    node.assert_no_container_left(restarted)


@pytest.mark.parametrize("point", points("container.remove"))
def test_a_remove_killed_at_each_point_can_be_retried(point, node, world):  # noqa: F811
    manager = node.manager()
    cid = started(node, manager)
    die_at(point, world, manager.remove, cid)
    restarted = restart(node, manager)
    assert restarted.store.get(cid, "test").state == EXITED
    restarted.remove(cid)
    node.assert_no_container_left(restarted)


def test_recover_sweeps_container_dirs_that_no_record_owns(node, world):  # noqa: F811
    orphan = Path(node.config.runroot) / "containers" / ("cd" * 32)
    (orphan / "monitor").mkdir(parents=True)
    restarted = node.manager()
    restarted.recover()
    assert not orphan.exists()
    assert "images.remove_rootfs" in world.steps
    node.assert_no_container_left(restarted)


# ---- a power loss: records saved without fsync come back empty ------------------------
# (docs/recovery.md, "Durability").  The harsher case is taken at every point:
# every record file is emptied, the fsynced ones too; a reboot also ends
# what the fakes model as namespaces, mounts, cgroups and processes.

REBOOT_ENDS = ("pin:", "shm@", "cgroup@", "infra@", "container@")


def power_loss(directory: Path) -> list[str]:
    """Empty every record in `directory`; returns their ids."""
    ids = []
    for path in sorted(directory.glob("*.json")):
        path.write_bytes(b"")
        ids.append(path.stem)
    return ids


def cut_short_ids(caplog, kind: str) -> list[str]:
    return [r.fields["id"] for r in caplog.records
            if f"removed a {kind} record a power loss cut short" in r.getMessage()]


@pytest.mark.parametrize("point", points("sandbox.run"))
def test_a_run_cut_by_a_power_loss_at_each_point_frees_its_address(
        point, config, world, caplog):  # noqa: F811
    """Whatever a power loss leaves of the pod's record, the restart drops
    the record, DELs the network attachment (its IPAM lease outlives a
    reboot: CNI GC finds it in the result cache) and sweeps the runroot."""
    die_at(point, world, sandbox_manager(config, world).run, pod_request())
    ids = power_loss(Path(config.root) / "sandboxes")
    assert len(ids) == 1
    restarted = sandbox_manager(config, world)
    restarted.recover()
    assert cut_short_ids(caplog, "pod sandbox") == ids
    assert restarted.store.all() == [] and records_on_disk(config) == []
    assert files_left(config) == []
    assert world.cni == {}
    assert [p for p in world.live if not p.startswith(REBOOT_ENDS)] == []


@pytest.mark.parametrize("point", points("container.create") + points("container.start"))
def test_a_container_cut_by_a_power_loss_at_each_point_leaves_no_rootfs(
        point, node, world, caplog):  # noqa: F811
    """The rootfs lies in the image store, which a reboot keeps: with the
    record empty and the runroot gone, start-up finds it by its id."""
    from crio_native.image.service import rootfs_root

    node.images.root = rootfs_root(node.config)
    manager = node.manager()
    if point.startswith("container.start"):
        cid = manager.create(node.request())
        die_at(point, world, manager.start, cid)
    else:
        die_at(point, world, manager.create, node.request())
    node.stop(manager)
    for cid, container in list(world.containers.items()):    # the reboot
        end_monitor(container)
        del world.containers[cid]
        world.unmake(f"container@{short(cid)}")
    shutil.rmtree(Path(node.config.runroot) / "containers", ignore_errors=True)
    ids = power_loss(Path(node.config.root) / "containers")
    restarted = node.manager()
    restarted.recover()
    assert cut_short_ids(caplog, "container") == ids
    assert restarted.store.all() == [] and node.records_on_disk() == []
    assert [p for p in world.live if p.startswith("rootfs@")] == []
    left = sorted(p.name for p in node.images.root.iterdir()) if node.images.root.exists() else []
    assert left == []
    if point not in ("container.create.reserved", "container.create.directory"):
        assert "removed a container rootfs no record owns" in caplog.text
    node.stop(restarted)


def test_recover_sweeps_attestations_that_no_record_owns(node, world):  # noqa: F811
    """An attestation is fsynced, the RUNNING save before it is not: after a
    power loss the attestation may outlive the record."""
    manager = node.manager()
    kept = started(node, manager)
    directory = Path(node.config.root) / "containers"
    (directory / f"{kept}.attestation").write_text("{}")
    orphan = directory / f"{'ef' * 32}.attestation"
    orphan.write_text("{}")
    restarted = restart(node, manager)
    assert not orphan.exists() and (directory / f"{kept}.attestation").exists()
    restarted.remove(kept)
    node.assert_no_container_left(restarted)
