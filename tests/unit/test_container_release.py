"""A stopped container is released at its stop (ContainerManager._release):
the runtime's state of it (monitor, cgroups) and the rootfs mount go once
the exit is recorded, not at RemoveContainer, as CRI-O (StopContainer
unmounts the container's storage) and containerd (the task is deleted on
exit) do; the record, run dir and upper dir stay until RemoveContainer.
A release cut short, or one that failed, is finished by the next stop, by
RemoveContainer or at start-up; nothing is left behind."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from crio_native import failpoints
from crio_native.container.record import EXITED
from crio_native.sandbox.record import NOTREADY
from tests.fixtures.fakes import pod_request, sandbox_manager
from tests.unit.test_container_rollback import manager, node  # noqa: F401
from tests.unit.test_crash_recovery import REBOOT_ENDS, die_at, restart, started
from tests.unit.test_sandbox_rollback import config, files_left, records_on_disk  # noqa: F401

RELEASE_POINTS = ("container.stop.runtime_deleted", "container.stop.rootfs_unmounted",
                  "container.stop.released")


@pytest.fixture(autouse=True)
def disarmed():
    failpoints.disarm()
    yield
    failpoints.disarm()


def assert_released(node, manager, cid: str) -> None:  # noqa: F811
    record = manager.store.get(cid, "test")
    assert record.state == EXITED and record.released
    assert cid not in node.world.containers                     # the runtime forgot it
    assert not node.images.mounted(cid)
    assert (node.images.root / cid).is_dir()                   # the upper dir stays
    assert (Path(record.bundle) / "config.json").exists()        # the spec stays (status)
    assert not Path(record.monitor_dir).exists()               # the exit is in the record


def test_the_release_points_are_in_the_stop_catalogue():
    assert set(RELEASE_POINTS) <= set(failpoints.CATALOGUE["container.stop"])
    stop = failpoints.CATALOGUE["container.stop"]
    assert stop.index("container.stop.exited") < stop.index(RELEASE_POINTS[0])


def test_a_stop_releases_the_runtime_and_the_mount(node, manager):  # noqa: F811
    cid = started(node, manager)
    assert node.images.mounted(cid)
    manager.stop(cid, timeout=0)
    assert_released(node, manager, cid)
    node.world.steps.clear()
    manager.remove(cid)
    assert node.world.steps.count("handler.delete") == 0
    assert "images.remove_rootfs" in node.world.steps
    node.assert_no_container_left(manager)


def test_a_stop_of_a_container_that_exited_on_its_own_releases_it(node, manager):  # noqa: F811
    cid = started(node, manager)
    manager.handler.exit(cid, 0)
    record = manager.refresh(manager.store.get(cid, "test"))
    assert record.state == EXITED and not record.released and node.images.mounted(cid)
    manager.stop(cid, timeout=0)        # StopPodSandbox's kill of what is in the pod
    assert_released(node, manager, cid)
    assert record.reason == "Completed"
    manager.remove(cid)
    node.assert_no_container_left(manager)


def test_a_failed_release_is_logged_and_finished_by_remove(node, manager,  # noqa: F811
                                                           caplog):
    cid = started(node, manager)
    node.world.fail("handler.delete", error=OSError(16, "Device or resource busy"))
    with caplog.at_level(logging.WARNING):
        manager.stop(cid, timeout=0)    # the container has stopped: the stop succeeds
    assert "releasing a stopped container failed" in caplog.text
    record = manager.store.get(cid, "test")
    assert record.state == EXITED and not record.released and node.images.mounted(cid)
    node.world.steps.clear()
    manager.remove(cid)
    assert node.world.steps.count("handler.delete") == 1
    node.assert_no_container_left(manager)


def test_a_failed_release_is_retried_by_the_next_stop(node, manager):  # noqa: F811
    cid = started(node, manager)
    node.world.fail("images.unmount_rootfs", error=OSError(16, "Device or resource busy"))
    manager.stop(cid, timeout=0)
    assert not manager.store.get(cid, "test").released
    manager.stop(cid, timeout=0)
    assert_released(node, manager, cid)
    manager.remove(cid)
    node.assert_no_container_left(manager)


@pytest.mark.parametrize("point", RELEASE_POINTS)
def test_a_release_cut_short_is_finished_at_start_up(point, node, world):  # noqa: F811
    manager = node.manager()
    cid = started(node, manager)
    die_at(point, world, manager.stop, cid, 0)
    restarted = restart(node, manager)
    assert_released(node, restarted, cid)
    node.world.steps.clear()
    restarted.remove(cid)
    assert node.world.steps.count("handler.delete") == 0
    node.assert_no_container_left(restarted)


@pytest.mark.parametrize("point", RELEASE_POINTS)
def test_a_release_cut_short_is_finished_by_remove(point, node, world):  # noqa: F811
    manager = node.manager()
    cid = started(node, manager)
    die_at(point, world, manager.stop, cid, 0)
    node.stop(manager)
    again = node.manager()          # no recover(): RemoveContainer alone finishes it
    again.store.load()
    again.remove(cid)
    node.assert_no_container_left(again)


def test_start_up_releases_an_exit_it_finds(node, world):  # noqa: F811
    manager = node.manager()
    cid = started(node, manager)
    node.stop(manager)                       # the daemon is down when it exits
    manager.handler.exit(cid, 3)
    restarted = node.manager()
    restarted.recover()
    assert_released(node, restarted, cid)
    assert restarted.store.get(cid, "test").exit_code == 3
    restarted.remove(cid)
    node.assert_no_container_left(restarted)


def test_rootfs_unmount_keeps_the_upper_dir_and_the_image_file(tmp_path, monkeypatch):
    from crio_native.storage import rootfs as rootfs_mod
    from crio_native.storage.images import ImageRecord
    from crio_native.storage.layers import LayerStore

    digest = "sha256:" + "ab" * 32
    unmounted: list[str] = []
    store = rootfs_mod.RootfsStore(tmp_path / "containers", LayerStore(tmp_path / "layers"),
                                   mount=lambda *a: None, unmount=unmounted.append)
    merged = store.create("c1", ImageRecord(id=digest, manifest_digest=digest,
                                            config_digest=digest, layers=[digest], size=0))
    (merged.parent / "upper" / "data").write_text("written")
    (merged.parent / "work" / "work").mkdir()
    mounted = {str(merged)}
    monkeypatch.setattr(rootfs_mod.os.path, "ismount", lambda p: str(p) in mounted)
    store.unmount("c1")
    assert unmounted == [str(merged)]
    mounted.clear()
    assert sorted(p.name for p in merged.parent.iterdir()) == ["image", "upper"]
    assert store.users_of(digest) == ["c1"]         # RemoveImage still sees the user
    store.unmount("c1")                             # again: nothing to do
    store.unmount("c2")                             # no rootfs at all: fine
    assert unmounted == [str(merged)]
    store.remove("c1")
    assert not merged.parent.exists()


# ---- the pod's stop saves, not fsynced (docs/recovery.md, "Durability") -------------

def test_a_pod_stop_whose_saves_a_power_loss_took_is_stopped_again(config, world):  # noqa: F811
    """NOTREADY and network_attached=False are saved without fsync: a
    power loss may bring back the READY, attached record.  Start-up marks
    it NOTREADY (its pins are gone), and the kubelet's StopPodSandbox runs
    DEL again; nothing is left."""
    manager = sandbox_manager(config, world)
    pod = manager.run(pod_request())
    path = Path(config.root) / "sandboxes" / f"{pod}.json"
    before = path.read_bytes()
    manager.stop(pod)
    assert world.cni == {}
    path.write_bytes(before)                            # the stop's saves lost
    shutil.rmtree(config.runroot)                       # the reboot: pins, shm, run dir
    for piece in [p for p in world.live if p.startswith(REBOOT_ENDS)]:
        world.unmake(piece)
    restarted = sandbox_manager(config, world)
    restarted.recover(rebooted=True)
    [record] = restarted.store.all()
    assert record.state == NOTREADY and record.network_attached
    dels = world.steps.count("cni.delete:eth0")
    restarted.stop(pod)
    assert world.steps.count("cni.delete:eth0") == dels + 1 and not record.network_attached
    restarted.remove(pod)
    assert restarted.store.all() == [] and records_on_disk(config) == []
    assert files_left(config) == []
    assert world.live == []
