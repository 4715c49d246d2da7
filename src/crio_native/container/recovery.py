"""What the container manager does once at start-up: undo half-made
containers, finish starts cut short, pick up the exits that happened while
the daemon was down, watch the monitors still running, and sweep run dirs,
runtime states and cgroups that no record owns (orphans.py)."""
from __future__ import annotations

import contextlib
import logging
import shutil
import signal as signal_mod
from pathlib import Path
from typing import TYPE_CHECKING

from crio_native.attestation import signer as attestation_store
from crio_native.container import orphans, seccomp_notifier
from crio_native.container.record import (CREATED, CREATING, EXITED, RUNNING,
                                          ContainerRecord)
from crio_native.errors import FailedPrecondition
from crio_native.logsetup import fields
from crio_native.monitor import process_alive
from crio_native.runtime.registry import runtime_root_of

if TYPE_CHECKING:
    from crio_native.container.manager import ContainerManager

log = logging.getLogger(__name__)

STARTING = "starting"        # in the container's run dir while a start is in progress


def monitor_running(record: ContainerRecord) -> bool:
    """The record's monitor is alive: its pid runs crio-native-monitor for
    this container (after a reboot the pid may name anything)."""
    if not record.monitor_pid or not process_alive(record.monitor_pid):
        return False
    try:
        argv = Path(f"/proc/{record.monitor_pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(argv) and argv[0].endswith(b"crio-native-monitor") \
        and record.id.encode() in argv


def recover(manager: ContainerManager, rebooted: bool = False) -> None:
    """Judge each record by its monitor. `rebooted` (state/boot.py) only
    adds to the log: a reboot ends every monitor."""
    for record in manager.store.load():
        if record.state == CREATING:
            log.warning("rolling back half-made container", extra=fields(id=record.id))
            try:
                manager._teardown(record)
            except Exception as e:  # noqa: BLE001 - one stuck container must not stop the daemon
                log.error("rollback of half-made container failed; record kept",
                          extra=fields(id=record.id, error=str(e)))
                continue
            manager.store.drop(record)
            continue
        starting = Path(record.directory) / STARTING
        if record.state in (CREATED, RUNNING):
            if monitor_running(record):
                if record.state == RUNNING and starting.exists():
                    finish_start(manager, record)
                manager.watcher.watch(record.id, record.monitor_pid)
                seccomp_notifier.relisten(manager.notifier, record.id, manager.spec_of(record))
            else:
                if rebooted:
                    log.warning("container exited with the node's reboot: exit unknown",
                                extra=fields(id=record.id, name=record.name))
                manager._record_exit(record)
        starting.unlink(missing_ok=True)
        if record.state == EXITED and not record.released:
            release(manager, record)
    sweep_run_dirs(manager)
    sweep_rootfs(manager)
    sweep_attestations(manager)
    manager.notifier.sweep()
    sweep_runtime_states(manager)
    sweep_cgroups(manager)


def release(manager: ContainerManager, record: ContainerRecord) -> None:
    """An exited container not yet released: a stop cut short between the
    recorded exit and `released` (or one that exited while the daemon was
    down, or on its own): its runtime state and rootfs mount go now, as
    StopContainer would have let them go; its rootfs is not mounted again."""
    try:
        manager._release(record, "start-up")
    except Exception as e:  # noqa: BLE001 - one container must not stop the daemon
        log.error("releasing an exited container failed; RemoveContainer retries it",
                  extra=fields(id=record.id, error=str(e)))


def finish_start(manager: ContainerManager, record: ContainerRecord) -> None:
    """A StartContainer cut short after it saved RUNNING: release the
    process if it still waits at its barrier, so the record tells the
    truth; if that fails, kill it (the exit is then recorded)."""
    handler = manager.handlers.get(record.runtime_handler)
    try:
        if handler.state(record.id).get("status") != "created":
            return
        log.warning("finishing a container start cut short", extra=fields(id=record.id))
        if manager.attestor is not None and \
                attestation_store.read(manager.store.directory, record.id) is None:
            manager.attestor.attest(record, manager.spec_of(record),
                                    manager.sandboxes.store.find(record.sandbox_id))
        handler.start(record.id)
    except FailedPrecondition:
        return   # no longer waiting at its barrier: it was released
    except Exception as e:  # noqa: BLE001 - one container must not stop the daemon
        log.error("finishing a container start failed; killing it",
                  extra=fields(id=record.id, error=str(e)))
        record.message = f"start failed: {e}"
        with contextlib.suppress(Exception):
            handler.kill(record.id, signal_mod.SIGKILL, all_processes=True)


def sweep_run_dirs(manager: ContainerManager) -> None:
    """Container run dirs that no record names (a record is saved before
    its dir is made, so only a crash in a version that did not journal
    it, or a hand, leaves one): its rootfs, its runtime state in every
    handler and the dir go, each logged.  A record kept on disk but
    unreadable names its dir too: its container may still run from it
    (docs/recovery.md, "Unreadable records")."""
    try:
        dirs = sorted(manager.run_root.iterdir())
    except FileNotFoundError:
        return
    owned = manager.store.known_ids()
    for d in dirs:
        if not d.is_dir() or d.name in owned:
            continue
        for name in manager.handlers.names():
            with contextlib.suppress(Exception):
                manager.handlers.get(name).delete(d.name, force=True)
        manager.images().remove_rootfs(d.name)
        shutil.rmtree(d, ignore_errors=True)
        log.warning("removed a container run dir no record owns", extra=fields(path=str(d)))


def sweep_rootfs(manager: ContainerManager) -> None:
    """Rootfs dirs in the image store (which a reboot keeps) that no
    container record names: a power loss took the record, saved without
    fsync, of a container whose rootfs was made (docs/recovery.md).
    Unmounted if need be and removed, each logged; the image service is
    made only if there is one."""
    from crio_native.image.service import rootfs_root

    try:
        dirs = sorted(rootfs_root(manager.config).iterdir())
    except FileNotFoundError:
        return
    owned = manager.store.known_ids()
    for d in dirs:
        if not orphans.HEX_ID.match(d.name) or d.name in owned or not d.is_dir():
            continue
        try:
            manager.images().remove_rootfs(d.name)
        except Exception as e:  # noqa: BLE001 - one stuck rootfs must not stop the daemon
            log.error("cannot remove a container rootfs no record owns",
                      extra=fields(path=str(d), error=str(e)))
            continue
        log.warning("removed a container rootfs no record owns", extra=fields(path=str(d)))


def sweep_attestations(manager: ContainerManager) -> None:
    """`<id>.attestation` beside the records whose id no record names: the
    record was saved without fsync and a power loss took it, while the
    attestation (fsynced) stayed."""
    directory = manager.store.directory
    owned = manager.store.known_ids()
    for path in sorted(directory.glob("*" + attestation_store.SUFFIX)):
        container_id = path.name[:-len(attestation_store.SUFFIX)]
        if not orphans.HEX_ID.match(container_id) or container_id in owned:
            continue
        attestation_store.discard(directory, container_id)
        log.warning("removed an attestation record no container record owns",
                    extra=fields(path=str(path)))


def sweep_runtime_states(manager: ContainerManager) -> None:
    """A handler's state of an id that neither a container nor a pod
    record names (unreadable ones included), in the runtime roots under
    our runroot (a configured runtime_root may be shared with other users
    of runc): deleted through the handler, each logged; one that stays is
    logged too."""
    config = manager.config
    roots = {name: runtime_root_of(name, config) for name in manager.handlers.names()
             if not config.runtime.runtimes[name].runtime_root}
    owned = manager.store.known_ids() | manager.sandboxes.store.known_ids()
    for name, stray in orphans.stray_runtime_states(roots, owned):
        try:
            manager.handlers.get(name).delete(stray, force=True)
        except Exception as e:  # noqa: BLE001 - one stray must not stop the daemon
            log.error("cannot delete a runtime state no record owns", extra=fields(
                handler=name, id=stray, error=str(e)))
            continue
        log.warning("deleted a runtime state no record owns",
                    extra=fields(handler=name, id=stray))


def sweep_cgroups(manager: ContainerManager) -> None:
    """crio-<id> groups that no container record owns (an unreadable one
    owns its id's), in the pod groups of the pods we know and under the
    cgroup root: removed if empty, each logged (orphans.py)."""
    parents = [Path(d) for pod in manager.sandboxes.store.all() for d in pod.cgroup_dirs]
    parents += orphans.cgroup_root_dirs(manager.config.runtime.cgroup_root or None)
    orphans.sweep_container_cgroups(parents, manager.store.known_ids())
