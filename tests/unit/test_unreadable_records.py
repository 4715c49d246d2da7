"""A record kept on disk that start-up cannot read (JSON of another shape:
not what a power loss leaves, docs/recovery.md "Unreadable records") owns
what its id names: no start-up sweep removes its pod's directory, pins or
network attachment, or its container's run dir, rootfs, runtime state,
cgroup or attestation.  The same sweeps still remove what no record names
at all, and once the record is put right the next start picks the pod or
container up again.  (An empty or cut-short record is another matter: an
interrupted write, removed and swept by id: test_crash_recovery.py.)"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from crio_native.container import orphans
from crio_native.container.record import RUNNING
from crio_native.image.service import rootfs_root
from crio_native.runtime.registry import runtime_root_of
from crio_native.sandbox.record import READY
from tests.fixtures.fakes import FakeHandler, pod_request, sandbox_manager, short
from tests.unit.test_container_rollback import node  # noqa: F401
from tests.unit.test_sandbox_rollback import assert_nothing_left, config  # noqa: F401

NOT_A_RECORD = json.dumps({"written_by": "something else"})


def spoil(path: Path) -> bytes:
    """Make the record unreadable (keeping its bytes to put back)."""
    saved = path.read_bytes()
    path.write_text(NOT_A_RECORD)
    return saved


# ---- pod sandboxes ---------------------------------------------------------------------

def test_an_unreadable_pod_record_keeps_its_directory_pins_and_network(config, world):  # noqa: F811
    manager = sandbox_manager(config, world)
    pod_id = manager.run(pod_request())
    record = manager.store.get(pod_id, "test")
    attachments = sorted(world.cni)
    assert [(c, i) for _, c, i in attachments] == [(pod_id, "eth0")]
    run, orphan = Path(config.runroot), "ab" * 32
    (run / "pods" / orphan).mkdir(parents=True)
    (run / "ns" / "net" / orphan).touch()
    world.cni[("podnet", orphan, "eth0")] = {}
    path = Path(config.root) / "sandboxes" / f"{pod_id}.json"
    saved = spoil(path)
    world.steps.clear()

    restarted = sandbox_manager(config, world)
    restarted.recover()
    assert restarted.store.all() == [] and restarted.store.unreadable == {pod_id}
    assert path.read_text() == NOT_A_RECORD
    assert Path(record.directory).is_dir()
    assert record.pins and all(Path(p).exists() for p in record.pins.values())
    assert sorted(world.cni) == attachments          # no DEL for the pod's own
    # what no record names is swept as before
    assert not (run / "pods" / orphan).exists() and not (run / "ns" / "net" / orphan).exists()
    assert "cni.delete:eth0" in world.steps

    path.write_bytes(saved)                          # put right by hand
    again = sandbox_manager(config, world)
    again.recover()
    assert again.store.get(pod_id, "test").state == READY
    again.remove(pod_id)
    assert_nothing_left(again, config, world)


# ---- containers ----------------------------------------------------------------------

@pytest.fixture
def cgroup_root(tmp_path, monkeypatch):
    """The cgroup root the sweep looks in: a plain directory here."""
    root = tmp_path / "cgroup-root"
    root.mkdir()
    monkeypatch.setattr(orphans, "cgroup_root_dirs", lambda configured: [root])
    return root


@pytest.fixture
def deleted(monkeypatch):
    """The ids the handler was told to delete."""
    ids: list[str] = []
    real = FakeHandler.delete

    def delete(self, container_id, force=False):
        ids.append(container_id)
        return real(self, container_id, force)

    monkeypatch.setattr(FakeHandler, "delete", delete)
    return ids


def test_an_unreadable_container_record_keeps_what_its_id_owns(
        node, world, cgroup_root, deleted):  # noqa: F811
    node.images.root = rootfs_root(node.config)
    manager = node.manager()
    cid = manager.create(node.request())
    manager.start(cid)
    records = Path(node.config.root) / "containers"
    runtime_root = runtime_root_of("builtin", node.config)
    orphan = "cd" * 32
    for owner in (cid, orphan):
        (records / f"{owner}.attestation").write_text("{}")
        (cgroup_root / f"crio-{owner}").mkdir()
        (runtime_root / owner).mkdir(parents=True)
    (Path(node.config.runroot) / "containers" / orphan).mkdir()
    (node.images.root / orphan).mkdir()
    node.stop(manager)
    path = records / f"{cid}.json"
    saved = spoil(path)
    deleted.clear()

    restarted = node.manager()
    restarted.recover()
    assert restarted.store.all() == [] and restarted.store.unreadable == {cid}
    assert path.read_text() == NOT_A_RECORD
    assert node.container_dirs() == [cid]                       # its run dir, not the orphan's
    assert world.containers[cid].status == "running"            # not deleted by the runtime
    assert f"rootfs@{short(cid)}" in world.live and (node.images.root / cid).is_dir()
    assert not (node.images.root / orphan).exists()
    assert (records / f"{cid}.attestation").exists()
    assert not (records / f"{orphan}.attestation").exists()
    assert sorted(p.name for p in cgroup_root.iterdir()) == [f"crio-{cid}"]
    assert cid not in deleted and orphan in deleted             # runtime states: the stray only
    node.stop(restarted)

    path.write_bytes(saved)                                     # put right by hand
    again = node.manager()
    again.recover()
    assert again.store.get(cid, "test").state == RUNNING
    again.stop(cid, 0)
    again.remove(cid)
    (cgroup_root / f"crio-{cid}").rmdir()       # what the runtime's delete does for real
    (records / f"{cid}.attestation").unlink(missing_ok=True)
    node.assert_no_container_left(again)
