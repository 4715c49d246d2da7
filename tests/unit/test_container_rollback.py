"""ContainerManager against fakes (tests/fixtures/fakes.py): a failure, a
failed undo or a crash at every step of CreateContainer leaves nothing
behind once the error is returned (or the daemon restarted); start, stop and
remove against the fake runtime.  No root: the "monitor" of each container
is a plain child process that passes for crio-native-monitor."""
from __future__ import annotations

from pathlib import Path

import pytest

from crio_native._proto import api_pb2
from crio_native.container import events, prepare
from crio_native.container.manager import ContainerManager
from crio_native.container.record import CREATED, CREATING, EXITED, RUNNING
from crio_native.errors import AlreadyExists, InvalidArgument, NotFound
from crio_native.state.files import read_json
from tests.fixtures.fakes import (FakeHandler, FakeHandlerSet, FakeImages, Injected, World,
                                  config_under, pod_request, sandbox_manager)

IMAGE = "docker.io/library/busybox:latest"
# CreateContainer's steps as the fakes see them, in order (each fails before it acts)
CREATE_STEPS = ["images.get", "images.create_rootfs", "handler.features", "images.config",
                "prepare.build_spec", "prepare.write_bundle", "prepare.prepare_log",
                "handler.create", "handler.create:done"]


class Node:
    """One pod on the fake host, and container managers over it (one per
    daemon start); each manager has a fresh handler, the world stays."""

    def __init__(self, tmp_path: Path, world: World):
        self.world = world
        self.config = config_under(tmp_path)
        self.images = FakeImages(world, tmp_path / "rootfs")
        pods = sandbox_manager(self.config, world)
        self.pods = pods
        self.pod_id = pods.run(pod_request(log_directory=str(tmp_path / "logs")))
        self.managers: list[ContainerManager] = []
        world.steps.clear()

    def manager(self) -> ContainerManager:
        handler = FakeHandler(self.world)
        manager = ContainerManager(self.config, self.pods, lambda: self.images,
                                   FakeHandlerSet(self.world, handler))
        manager.handler = handler      # for the tests: the one handler it uses
        self.managers.append(manager)
        return manager

    def stop(self, manager: ContainerManager) -> None:
        """The daemon stops (its containers go on)."""
        if manager in self.managers:
            self.managers.remove(manager)
            manager.close()

    def request(self, name: str = "app", **config) -> api_pb2.CreateContainerRequest:
        return api_pb2.CreateContainerRequest(
            pod_sandbox_id=self.pod_id, sandbox_config=pod_request().config,
            config=api_pb2.ContainerConfig(
                metadata=api_pb2.ContainerMetadata(name=name),
                image=api_pb2.ImageSpec(image=IMAGE), command=["sleep", "100"],
                log_path=f"{name}/0.log", **config))

    def records_on_disk(self) -> list[dict]:
        return [read_json(p) for p in sorted((Path(self.config.root) / "containers").glob("*.json"))]

    def container_dirs(self) -> list[str]:
        run = Path(self.config.runroot) / "containers"
        return sorted(p.name for p in run.iterdir()) if run.exists() else []

    def assert_no_container_left(self, manager: ContainerManager) -> None:
        assert manager.store.all() == []
        assert self.records_on_disk() == []
        assert self.container_dirs() == []
        assert self.world.containers == {}
        assert [p for p in self.world.live if p.startswith(("rootfs@", "container@"))] == []
        assert manager._specs == {}


@pytest.fixture
def node(tmp_path, world, monkeypatch):
    for name in ("build_spec", "write_bundle", "prepare_log"):
        real = getattr(prepare, name)
        monkeypatch.setattr(prepare, name, lambda *a, _real=real, _name=name, **k: (
            world.step(f"prepare.{_name}"), _real(*a, **k))[1])
    n = Node(tmp_path, world)
    yield n
    for manager in n.managers:
        n.stop(manager)


@pytest.fixture
def manager(node):
    return node.manager()


def spin_guard(manager: ContainerManager, limit: int = 50) -> None:
    """Make a create that loops on the name reservation fail instead of hang."""
    reserve, calls = manager.store.reserve, []

    def counting(record):
        calls.append(record.id)
        if len(calls) > limit:
            raise RuntimeError("create() spins on a name reservation")
        return reserve(record)

    manager.store.reserve = counting


def fail_first_created_save(manager: ContainerManager) -> None:
    save, failed = manager.store.save, []

    def save_failing_once_at_created(record, durable=True):
        if record.state == CREATED and not failed:
            failed.append(record.id)
            raise OSError(28, "No space left on device")
        save(record, durable=durable)

    manager.store.save = save_failing_once_at_created


# ---- the way it should go -----------------------------------------------------------

def test_create_start_stop_remove(node, manager, world):
    container_id = manager.create(node.request())
    assert world.steps == ["handlers.get", *CREATE_STEPS]
    [disk] = node.records_on_disk()
    assert (disk["state"], disk["image_id"]) == (CREATED, node.images.images[IMAGE].id)
    assert (Path(disk["directory"]) / "bundle" / "config.json").exists()

    sub = manager.events.subscribe()
    manager.start(container_id)
    assert manager.store.get(container_id, "test").state == RUNNING
    world.steps.clear()
    manager.stop(container_id, timeout=10)
    # SIGTERM was enough; then the stop releases the runtime's part and the mount
    assert world.steps == ["handlers.get", "handler.kill", "handlers.get", "handler.delete",
                           "images.unmount_rootfs"]
    record = manager.store.get(container_id, "test")
    assert (record.state, record.exit_code, record.reason) == (EXITED, 143, "Error")
    assert record.released and node.records_on_disk()[0]["released"]
    assert container_id not in world.containers and not node.images.mounted(container_id)
    assert [e.kind for e in iter(lambda: sub.next(0.0), None)] == [events.STARTED,
                                                                   events.STOPPED]
    world.steps.clear()
    manager.stop(container_id, timeout=10)                              # idempotent
    assert world.steps == []

    manager.remove(container_id)
    assert "handler.delete" not in world.steps                          # released already
    node.assert_no_container_left(manager)


def test_remove_stops_a_running_container_first(node, manager, world):
    container_id = manager.create(node.request())
    manager.start(container_id)
    manager.remove(container_id)
    node.assert_no_container_left(manager)
    manager.remove(container_id)                                        # unknown now: fine
    manager.remove("0123456789abcdef")


def test_stop_of_a_container_never_started_kills_at_once(node, manager):
    container_id = manager.create(node.request())
    manager.stop(container_id, timeout=30)
    assert manager.store.get(container_id, "test").exit_code == 137
    manager.remove(container_id)
    node.assert_no_container_left(manager)


def test_an_exit_on_its_own_is_seen_by_the_watcher(node, manager):
    container_id = manager.create(node.request())
    manager.start(container_id)
    sub = manager.events.subscribe()
    manager.handler.exit(container_id, 0)
    event = sub.next(10)
    assert (event.kind, event.container_id) == (events.STOPPED, container_id)
    assert node.records_on_disk()[0]["reason"] == "Completed"
    manager.remove(container_id)


# ---- a failure at each step ---------------------------------------------------------

@pytest.mark.parametrize("step", CREATE_STEPS)
def test_a_failure_at_each_create_step_is_rolled_back(step, node, manager, world):
    since = world.checkpoint()
    world.fail(step)
    with pytest.raises(Injected) as failure:
        manager.create(node.request())
    assert failure.value.step == step
    world.assert_rolled_back(since)
    node.assert_no_container_left(manager)
    # the name is free again
    container_id = manager.create(node.request())
    assert manager.store.get(container_id, "test").state == CREATED
    manager.remove(container_id)


BAD_REQUESTS = {
    "unknown image": (lambda c: setattr(c.image, "image", "docker.io/library/nothere:1"),
                      NotFound),
    "absolute log_path": (lambda c: setattr(c, "log_path", "/abs/0.log"), InvalidArgument),
}


@pytest.mark.parametrize("spoil, error", BAD_REQUESTS.values(), ids=BAD_REQUESTS)
def test_a_bad_request_is_refused_and_rolled_back(spoil, error, node, manager, world):
    request = node.request()
    spoil(request.config)
    since = world.checkpoint()
    with pytest.raises(error):
        manager.create(request)
    world.assert_rolled_back(since)
    node.assert_no_container_left(manager)


def test_a_failure_saving_created_is_rolled_back(node, manager, world):
    fail_first_created_save(manager)
    since = world.checkpoint()
    with pytest.raises(OSError):
        manager.create(node.request())
    world.assert_rolled_back(since)
    node.assert_no_container_left(manager)


# ---- a failed undo, a crash ------------------------------------------------------------

def test_a_failed_undo_keeps_the_record_creating_until_recover(node, manager, world):
    world.fail("handler.create")
    world.fail("images.remove_rootfs")
    with pytest.raises(Injected):
        manager.create(node.request())
    assert [r.state for r in manager.store.all()] == [CREATING]
    assert [r["state"] for r in node.records_on_disk()] == [CREATING]

    node.manager().recover()                                     # the next start-up
    node.assert_no_container_left(node.managers[-1])


def test_a_failed_created_save_with_a_failed_undo_keeps_the_record_creating(node, manager,
                                                                           world):
    fail_first_created_save(manager)
    world.fail("handler.delete")
    with pytest.raises(OSError):
        manager.create(node.request())
    try:
        assert [r["state"] for r in node.records_on_disk()] == [CREATING]
    finally:
        manager.handler.delete(manager.store.all()[0].id, force=True)


@pytest.mark.parametrize("step", CREATE_STEPS)
def test_recover_rolls_back_a_crash_at_each_create_step(step, node, world):
    frozen = world.freeze(step)
    world.in_thread(node.manager().create, node.request())
    frozen.wait()
    assert [r["state"] for r in node.records_on_disk()] == [CREATING]

    restarted = node.manager()
    restarted.recover()
    node.assert_no_container_left(restarted)


def test_recover_picks_up_exits_that_happened_while_down(node, manager, world):
    gone, running = manager.create(node.request("gone")), manager.create(node.request("up"))
    manager.start(gone)
    manager.start(running)
    node.stop(manager)
    manager.handler.exit(gone, 3)

    restarted = node.manager()
    sub = restarted.events.subscribe()
    restarted.recover()
    record = restarted.store.get(gone, "test")
    assert (record.state, record.exit_code, record.reason) == (EXITED, 3, "Error")
    assert restarted.store.get(running, "test").state == RUNNING
    restarted.handler.exit(running, 0)                           # watched again
    assert [(e.kind, e.container_id) for e in (sub.next(10), sub.next(10))] == [
        (events.STOPPED, gone), (events.STOPPED, running)]
    for container_id in (gone, running):
        restarted.remove(container_id)
    node.assert_no_container_left(restarted)


# ---- retries and starts ----------------------------------------------------------------

def test_a_retried_create_returns_the_same_container(node, manager, world):
    first = manager.create(node.request())
    assert manager.create(node.request()) == first
    assert world.steps.count("handler.create") == 1
    changed = node.request()
    changed.config.command.append("--verbose")
    with pytest.raises(AlreadyExists):
        manager.create(changed)
    manager.remove(first)


def test_a_failed_start_kills_the_container(node, manager, world):
    container_id = manager.create(node.request())
    world.fail("handler.start")
    with pytest.raises(Injected):
        manager.start(container_id)
    record = manager.store.get(container_id, "test")
    assert (record.state, record.exit_code) == (EXITED, 137)
    assert node.records_on_disk()[0]["message"].startswith("start failed: injected")
    manager.remove(container_id)
    node.assert_no_container_left(manager)


def test_a_retry_after_a_failed_undo_finishes_the_teardown_first(node, manager, world):
    world.fail("handler.create")
    world.fail("images.remove_rootfs")
    with pytest.raises(Injected):
        manager.create(node.request())
    spin_guard(manager)
    container_id = manager.create(node.request())
    assert [r.id for r in manager.store.all()] == [container_id]
    manager.remove(container_id)


def test_a_failed_handler_lookup_leaves_no_reservation(node, manager, world):
    world.fail("handlers.get")
    with pytest.raises(Injected):
        manager.create(node.request())
    assert manager.store.all() == []


def test_a_failed_teardown_at_recover_does_not_stop_the_start_up(node, manager, world):
    world.fail("handler.create")
    world.fail("images.remove_rootfs", times=2)
    with pytest.raises(Injected):
        manager.create(node.request())
    restarted = node.manager()
    restarted.recover()
    assert [r.state for r in restarted.store.all()] == [CREATING]
