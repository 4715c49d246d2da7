"""Container lifecycle over a runtime handler: create, start, stop, remove,
exec, and recovery at start-up.

CreateContainer is a list of named steps, each registering its undo at once,
so a failure anywhere leaves nothing.  The monitor of each container records
its exit; the ExitWatcher turns that into the record's EXITED state and a
STOPPED event even while no RPC is looking.  A stop never waits behind
another: it joins the one in progress and may bring its SIGKILL forward
(container/stops.py); once the exit is recorded it releases the runtime's
state and the rootfs mount (_release), so RemoveContainer is left with
files and the record."""
from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import secrets
import shutil
import signal as signal_mod
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from crio_native import failpoints, steps
from crio_native._proto import api_pb2
from crio_native.cancellation import Cancellation
from crio_native.config import Config
from crio_native.container import (events, orphans, prepare, recovery, seccomp_artifact,
                                    seccomp_notifier)
from crio_native.container.events import EventBus
from crio_native.container.record import CREATED, CREATING, EXITED, RUNNING, ContainerRecord
from crio_native.container.recovery import STARTING, monitor_running
from crio_native.container.stops import PendingStop, StopTable
from crio_native.container.store import ContainerStore
from crio_native.container.watcher import ExitWatcher
from crio_native.errors import (AlreadyExists, Cancelled, CrioNativeError, DeadlineExceeded,
                                FailedPrecondition, InvalidArgument, NotFound)
from crio_native.linux.cgroups import warm as cgroup_warm
from crio_native.attestation import signer as attestation_store
from crio_native.metrics import hooks as metrics_hooks
from crio_native.policy.gate import pod_input as policy_pod_input
from crio_native.logsetup import fields
from crio_native.state.rollback import forget_unless_failed, save_state, undo_step
from crio_native.monitor import read_exit, reopen_log
from crio_native.runtime.handler import (ExecProcess, ExecResult, MonitorOptions,
                                         RuntimeHandler)
from crio_native.sandbox.record import READY, SandboxRecord
from crio_native.spec.process import signal_number
from crio_native.stats import CgroupStats, CpuSampler, read_cgroup
from crio_native.state.files import atomic_write_json, read_json
from crio_native.storage.rootfs import RootfsIdmap

if TYPE_CHECKING:
    from crio_native.attestation import Attestor
    from crio_native.image.service import ImageService
    from crio_native.policy import PolicyGate
    from crio_native.runtime.registry import HandlerSet
    from crio_native.sandbox.manager import SandboxManager

log = logging.getLogger(__name__)

UNKNOWN_EXIT_CODE = 255     # CRI-O's, for an exit no one recorded
KILL_WAIT_SECONDS = 10.0    # after SIGKILL, how long to wait for the monitor's exit record
RETRY_WAIT_SECONDS = 240.0  # a retried CreateContainer waits this long for the first try


def request_digest(request: api_pb2.CreateContainerRequest) -> str:
    return hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()


def _observe_launch(record: ContainerRecord, step: str, started: float) -> None:
    """The handler's create or start time, for the launch latency metric."""
    if metrics_hooks.current is not None:
        metrics_hooks.current.observe_launch(record.runtime_handler or "default", step,
                                             time.monotonic() - started)


class ContainerManager:
    def __init__(self, config: Config, sandboxes: SandboxManager,
                 images: Callable[[], ImageService], handlers: HandlerSet,
                 bus: EventBus | None = None, policy: PolicyGate | None = None,
                 attestor: Attestor | None = None):
        self.config = config
        self.policy = policy                  # the final-spec policy gate (policy/)
        self.attestor = attestor              # signs each start's record (attestation/)
        self.sandboxes = sandboxes            # SandboxManager
        self.images = images                  # () -> ImageService, made on first use
        self.handlers = handlers              # runtime.registry.HandlerSet
        self.events = bus or EventBus()
        self.store = ContainerStore(Path(config.root) / "containers")
        self.run_root = Path(config.runroot) / "containers"
        self._done: dict[str, threading.Event] = {}
        self._locks: dict[str, threading.RLock] = {}
        self.sampler = CpuSampler()           # cpu rates for the stats RPCs
        self._specs: dict[str, dict[str, Any]] = {}
        self.stops = StopTable()              # stops in progress, joined by later ones
        self.watcher = ExitWatcher(self._on_monitor_exit)
        self.notifier = seccomp_notifier.SeccompNotifier(Path(config.runroot) / "seccomp",
                                                         self._seccomp_stop)
        # the v1 attach's grace period, waited alongside a create's own work
        self.warmer = cgroup_warm.shared()    # the runc handler's execs hold it too

    def close(self) -> None:
        self.watcher.close()
        self.notifier.close()
        self.events.close()

    # ---- startup -------------------------------------------------------------

    def recover(self, rebooted: bool = False) -> None:
        """At start-up: undo half-made containers, finish cut-short starts,
        pick up exits and sweep what no record owns (container/recovery.py)."""
        recovery.recover(self, rebooted)

    # ---- create ----------------------------------------------------------------

    def create(self, request: api_pb2.CreateContainerRequest) -> str:
        config = request.config
        prepare.check_config(config)
        sandbox = self.sandboxes.store.get(request.pod_sandbox_id, "CreateContainer")
        if sandbox.state != READY:
            raise FailedPrecondition(f"CreateContainer: pod sandbox {sandbox.id} is not ready "
                                     f"({sandbox.state})")
        # before the name is reserved: a failure here leaves nothing to undo
        images = self.images()
        handler = self.handlers.get(sandbox.runtime_handler)
        record = self._new_record(request, sandbox)
        # marked as being made before its name is reserved, so a retry never
        # takes it for the leftover of a failed attempt
        done = self._done.setdefault(record.id, threading.Event())
        try:
            existing = self.store.claim(record, lambda holder: self._existing(holder, record))
            if existing is not None:
                return existing
            self._create(record, config, sandbox, images, handler)
            return record.id
        finally:
            done.set()
            self._done.pop(record.id, None)

    def _new_record(self, request: api_pb2.CreateContainerRequest,
                    sandbox: SandboxRecord) -> ContainerRecord:
        config = request.config
        container_id = secrets.token_hex(32)
        return ContainerRecord(
            id=container_id, sandbox_id=sandbox.id, name=config.metadata.name,
            attempt=config.metadata.attempt, created_at=time.time_ns(),
            **prepare.requested_image(config.image), runtime_handler=sandbox.runtime_handler,
            labels=dict(config.labels), annotations=dict(config.annotations),
            directory=str(self.run_root / container_id),
            rootfs="", mounts=prepare.cri_mounts(config), tty=config.tty,
            stdin=config.stdin, stdin_once=config.stdin_once,
            request_digest=request_digest(request))

    def _existing(self, holder: ContainerRecord, record: ContainerRecord) -> str | None:
        """The id to answer a create whose name is taken: the same container
        for a retry of the same request; None if that attempt failed and
        this one should try again; ALREADY_EXISTS for a different request."""
        if holder.request_digest != record.request_digest:
            raise AlreadyExists(f"CreateContainer: container name {record.name!r} (attempt "
                                f"{record.attempt}) is already used by {holder.id} in pod "
                                f"{record.sandbox_id}")
        event = self._done.get(holder.id)
        if event is not None and not event.wait(steps.wait_budget(RETRY_WAIT_SECONDS)):
            raise DeadlineExceeded(f"CreateContainer: container {record.name!r} is still "
                                   "being created by an earlier request")
        current = self.store.find(holder.id)
        if current is not None and current.state == CREATING and event is None:
            # Nobody is making it: an earlier attempt whose rollback failed.
            # Try the teardown again; if it still fails, say so (no spinning).
            with self._lock(current.id):
                self._teardown(current)
                self.store.drop(current)
            return None
        return current.id if current is not None and current.state != CREATING else None

    def _create(self, record: ContainerRecord, config: api_pb2.ContainerConfig,
                sandbox: SandboxRecord, images: ImageService, handler: RuntimeHandler) -> None:
        failed: list[str] = []
        with ExitStack() as undo, ExitStack() as warm:
            # held until the runtime has launched the process (linux/cgroups/warm.py)
            warm.enter_context(self.warmer.held())
            # ... and RunPodSandbox's hold, which paid the first grace period, ends
            self.sandboxes.release_warm(sandbox.id)
            undo.callback(forget_unless_failed, self.store, record, failed)
            # The create's saves are not fsynced (docs/recovery.md,
            # "Durability"): a reboot ends the container's processes, mounts
            # and run dir, and start-up sweeps a rootfs no record names.
            self.store.save(record, durable=False)
            failpoints.hit("container.create.reserved")
            Path(record.monitor_dir).mkdir(parents=True, mode=0o700)
            undo.callback(undo_step, failed, "remove container directory",
                          lambda: shutil.rmtree(record.directory))
            failpoints.hit("container.create.directory")
            image = images.get(config.image.image)
            if image is None:
                raise NotFound(f"CreateContainer: config.image.image: image "
                               f"{config.image.image!r} not found; pull it first")
            record.image_id = image.id
            record.image_ref = image.repo_digests[0] if image.repo_digests else image.id
            record.rootfs = str(images.create_rootfs(
                record.id, image.id, prepare.rootfs_mount_label(config, sandbox),
                RootfsIdmap.of(sandbox.pins, sandbox.userns_uids, sandbox.userns_gids)))
            undo.callback(undo_step, failed, "remove rootfs",
                          lambda: images.remove_rootfs(record.id))
            failpoints.hit("container.create.rootfs")
            features = handler.features()
            inputs = prepare.inputs_for(
                record, config, sandbox, prepare.image_config_of(images, image), self.config,
                supports_rro=features.recursive_read_only_mounts,
                target_pid=self._target_pid, landlock_abi=features.landlock_abi)
            inputs.image_annotations = prepare.image_annotations_of(images, image)
            inputs.seccomp_artifact = functools.partial(seccomp_artifact.fetch_profile,
                                                        config=self.config.image)
            build = prepare.build_spec(inputs)
            seccomp_notifier.attach(self.notifier, inputs, build, undo)
            if self.policy is not None:
                self.policy.check(build.spec, policy_pod_input(sandbox), record.name)
            prepare.relabel_host_paths(build, inputs.selinux_enabled)
            record.log_path = build.log_path
            record.stop_signal = build.stop_signal
            prepare.write_bundle(record, build)
            self._specs[record.id] = build.spec
            undo.callback(self._specs.pop, record.id, None)
            prepare.prepare_log(record.log_path)
            failpoints.hit("container.create.bundle")
            # no save here: a crash before CREATED is saved rolls back through
            # the directory and the rootfs, which are found by the id
            launch_started = time.monotonic()
            created = handler.create(record.id, Path(record.bundle), MonitorOptions(
                state_dir=Path(record.monitor_dir),
                log_path=Path(record.log_path) if record.log_path else None,
                stdin=record.stdin, stdin_once=record.stdin_once, terminal=record.tty))
            _observe_launch(record, "create", launch_started)
            warm.close()
            undo.callback(undo_step, failed, "delete from runtime",
                          lambda: handler.delete(record.id, force=True))
            failpoints.hit("container.create.runtime_created")
            record.pid, record.monitor_pid = created.pid, created.monitor_pid
            record.cgroup_dirs = [str(d) for d in created.cgroup_dirs]
            save_state(self.store, record, CREATED, CREATING, durable=False)
            failpoints.hit("container.create.created")
            undo.pop_all()
        self.watcher.watch(record.id, record.monitor_pid)
        self.events.publish(events.CREATED, record.id, record.sandbox_id)
        if metrics_hooks.current is not None:
            metrics_hooks.current.observe_created(record.runtime_handler or "default")
        log.info("container created", extra=fields(id=record.id, name=record.name,
                                                   pod=record.sandbox_id,
                                                   handler=record.runtime_handler))

    def _target_pid(self, container_id: str) -> int:
        target = self.store.find(container_id)
        if target is None or self.refresh(target).state != RUNNING:
            raise NotFound(f"CreateContainer: config.linux.security_context.namespace_options."
                           f"target_id: no running container {container_id!r}")
        return target.pid

    # ---- start / stop / remove ---------------------------------------------------

    def start(self, container_id: str) -> None:
        record = self.store.get(container_id, "StartContainer")
        with self._lock(record.id):
            self.refresh(record)
            if record.state != CREATED:
                raise FailedPrecondition(f"StartContainer: container {record.id} is "
                                         f"{record.state}, not created")
            handler = self.handlers.get(record.runtime_handler)
            # The marker (on the runroot's tmpfs: no disk write) journals a
            # start in progress: a restart finds the record RUNNING with the
            # process maybe still at its barrier, and finishes the start.
            marker = Path(record.directory) / STARTING
            marker.touch()
            # RUNNING before the release, so a process that ends at once is
            # seen (by the exit watcher) as a run that ended, in that order
            # not fsynced: after a reboot a RUNNING record and a CREATED one
            # end alike (exited, exit unknown)
            with self.store.lock:
                record.state = RUNNING
                record.started_at = time.time_ns()
                self.store.save(record, durable=False)
            failpoints.hit("container.start.journaled")
            self.events.publish(events.STARTED, record.id, record.sandbox_id)
            try:
                if self.attestor is not None:   # signed before the program runs
                    self.attestor.attest(record, self.spec_of(record),
                                         self.sandboxes.store.find(record.sandbox_id))
                launch_started = time.monotonic()
                handler.start(record.id)
                _observe_launch(record, "start", launch_started)
                failpoints.hit("container.start.released")
            except Exception as e:
                record.message = f"start failed: {e}"
                try:
                    self.stop(record.id, timeout=0, rpc="StartContainer")
                except Exception as undo:  # noqa: BLE001 - the start's error is the answer
                    log.error("killing a container whose start failed failed",
                              extra=fields(id=record.id, error=str(undo)))
                raise
            finally:
                marker.unlink(missing_ok=True)
            failpoints.hit("container.start.done")

    def stop(self, container_id: str, timeout: int, rpc: str = "StopContainer") -> None:
        """Stop signal, then SIGKILL to every process once `timeout` seconds
        have passed (at once for timeout <= 0 or a container never started);
        returns once the exit is recorded.  A stop in progress is joined, not
        waited behind: the earlier SIGKILL of the two holds for both."""
        record = self.store.get(container_id, rpc)
        joined = time.monotonic()
        with self.stops.join(record.id) as pending:
            # before the container's lock, so a stop in progress kills
            # sooner even while this call waits for that lock
            graceful = timeout > 0 and record.state == RUNNING
            if pending.hasten(joined + timeout if graceful else joined) and pending.callers > 1:
                log.info("stop in progress brought forward", extra=fields(
                    id=record.id, rpc=rpc, timeout=timeout))
            with self._lock(record.id):
                if self.refresh(record).state == CREATING:
                    return
                if record.state == EXITED:
                    # exited on its own, or a stop cut short before its release
                    self._release(record, rpc)
                    return
                handler = self.handlers.get(record.runtime_handler)
                if graceful and record.state == RUNNING and pending.claim_signal():
                    with contextlib.suppress(NotFound, FailedPrecondition):
                        handler.kill(record.id, signal_number(record.stop_signal))
                    failpoints.hit("container.stop.signalled")
            self._kill_when_due(record, handler, pending, joined, rpc)
        with self._lock(record.id):
            self._release(record, rpc)

    def _release(self, record: ContainerRecord, rpc: str) -> None:
        """Once the exit is recorded: what only a live container needs goes
        now, not at RemoveContainer (CRI-O unmounts a container's storage in
        StopContainer; containerd deletes the task, and unmounts its rootfs,
        when it exits): the runtime's state of it (monitor, cgroups,
        poststop hooks), the monitor's dir and the rootfs mount.  The upper
        dir (the writable layer the stats report), the bundle (the spec
        ContainerStatus reads) and the record stay.  Each
        step is idempotent; `released` is saved after the last, so a crash
        before it is finished by the next stop, RemoveContainer or start-up
        (container/recovery.py).  A failure is logged and left for
        RemoveContainer, which redoes the release and raises there: the
        container has stopped, which is what a stop answers."""
        if record.released or record.state != EXITED:
            return
        try:
            self._release_runtime(record)
            # the monitor is gone and its exit folded into the record
            shutil.rmtree(record.monitor_dir, ignore_errors=True)
            failpoints.hit("container.stop.runtime_deleted")
            if record.rootfs:
                self.images().unmount_rootfs(record.id)
            failpoints.hit("container.stop.rootfs_unmounted")
        except (CrioNativeError, OSError) as e:
            if isinstance(e, failpoints.FailpointError):
                raise
            log.warning("releasing a stopped container failed; RemoveContainer retries it",
                        extra=fields(id=record.id, rpc=rpc, error=str(e)))
            return
        with self.store.lock:
            record.released = True
            # not fsynced: what it notes (runtime state, cgroups, the mount)
            # ends with a reboot, and a lost flag only repeats the release
            self.store.save(record, durable=False)
        failpoints.hit("container.stop.released")

    def _release_runtime(self, record: ContainerRecord) -> None:
        """The runtime's own delete (runc/crun: `delete`; a shim: the task's
        delete), then the seccomp listener and any group the runtime left."""
        # InvalidArgument: the handler is no longer configured; its
        # containers still get their rootfs and files removed
        with contextlib.suppress(NotFound, InvalidArgument):
            self.handlers.get(record.runtime_handler).delete(record.id, force=True)
        self.notifier.forget(record.id)
        # the handler removes the groups it made; after a reboot (its state
        # gone with the runroot) it no longer knows them: what is left goes
        orphans.remove_leftover_cgroups(record.id, record.cgroup_dirs)

    def _kill_when_due(self, record: ContainerRecord, handler: RuntimeHandler,
                       pending: PendingStop, joined: float, rpc: str) -> None:
        """Wait, without the container's lock, for the exit or for the
        stop's SIGKILL deadline (which a later call may bring forward); then
        SIGKILL every process and wait for the monitor to record the exit."""
        if pending.wait(lambda: pending.kill_at):
            return
        if pending.claim_kill(joined):
            if pending.signalled:
                log.info("container ignored its stop signal; killing it",
                         extra=fields(id=record.id, signal=record.stop_signal, rpc=rpc))
            with contextlib.suppress(NotFound, FailedPrecondition):
                handler.kill(record.id, signal_mod.SIGKILL, all_processes=True)
            failpoints.hit("container.stop.killed")
        deadline = pending.kill_deadline(KILL_WAIT_SECONDS)
        # the files once more at the end, should the watcher have missed it
        if pending.wait(lambda: deadline) or self.refresh(record).state == EXITED:
            failpoints.hit("container.stop.exited")
            return
        raise DeadlineExceeded(f"{rpc}: container {record.id} did not exit "
                               f"{KILL_WAIT_SECONDS}s after SIGKILL")

    def remove(self, container_id: str) -> None:
        record = self.store.find(container_id)
        if record is None:
            return  # CRI: removing an unknown container succeeds
        self.stop(record.id, timeout=0, rpc="RemoveContainer")
        failpoints.hit("container.remove.stopped")
        with self._lock(record.id):
            self._teardown(record)
            failpoints.hit("container.remove.torn_down")
            self.store.drop(record)
        self._locks.pop(record.id, None)
        self.sampler.forget(record.id)
        self._specs.pop(record.id, None)
        self.events.publish(events.DELETED, record.id, record.sandbox_id)
        log.info("container removed", extra=fields(id=record.id, name=record.name))

    def _teardown(self, record: ContainerRecord) -> None:
        """Every step idempotent: a teardown cut short is finished by
        calling it again (RemoveContainer's retry, or start-up's rollback)."""
        if not record.released:     # else the stop did it (_release)
            self._release_runtime(record)
        failpoints.hit("container.remove.runtime_deleted")
        if record.rootfs or Path(record.directory).exists():
            self.images().remove_rootfs(record.id)
        attestation_store.discard(self.store.directory, record.id)
        shutil.rmtree(record.directory, ignore_errors=True)
        failpoints.hit("container.remove.rootfs_removed")

    def of_sandbox(self, sandbox_id: str) -> list[ContainerRecord]:
        return self.store.of_sandbox(sandbox_id)

    # ---- exits -------------------------------------------------------------------

    def refresh(self, record: ContainerRecord) -> ContainerRecord:
        """Fold an exit the monitor recorded into the record."""
        if record.state in (CREATED, RUNNING) and (
                read_exit(record.monitor_dir) is not None
                or not monitor_running(record)):
            self._record_exit(record)
        return record

    def _seccomp_stop(self, container_id: str, message: str) -> None:
        """The seccomp notifier's "stop": the exit is recorded as seccomp killed."""
        record = self.store.find(container_id)
        if record is None:
            return
        seccomp_notifier.mark_killed(record, message)
        log.warning("stopping container: %s", message, extra=fields(id=record.id))
        try:
            self.stop(record.id, timeout=0, rpc="seccomp notifier")
        except CrioNativeError as e:
            log.error("seccomp notifier could not stop container",
                      extra=fields(id=record.id, error=str(e)))

    def _on_monitor_exit(self, container_id: str) -> None:
        record = self.store.find(container_id)
        if record is not None:
            self._record_exit(record)

    def _record_exit(self, record: ContainerRecord) -> None:
        """Once per container (the watcher and an RPC may both get here);
        under the store lock, not the container's, so the watcher never
        waits for a StopContainer in progress."""
        with self.store.lock:
            if record.state not in (CREATED, RUNNING):
                return
            self._fold_exit(record)
            record.state = EXITED
            self.store.save(record)
        self.stops.exited(record.id)
        self.events.publish(events.STOPPED, record.id, record.sandbox_id)
        if metrics_hooks.current is not None:
            metrics_hooks.current.observe_exit(record.reason, record.name)

    def _fold_exit(self, record: ContainerRecord) -> None:
        status = read_exit(record.monitor_dir)
        if status is None:
            # the monitor is gone without a word (killed, or a reboot wiped
            # the run dir): the exit is unknown.  CRI-O's convention for a
            # container its runtime no longer knows: exit code 255, reason
            # Error, finished now (its message stays empty; ours says why).
            record.exit_code, record.reason = UNKNOWN_EXIT_CODE, "Error"
            record.message = record.message or ("exit status unknown: the container's monitor "
                                                "is gone (killed, or the node rebooted)")
            record.finished_at = time.time_ns()
        else:
            record.exit_code = status.exit_code
            record.finished_at = status.finished_at_ns
            record.reason = ("OOMKilled" if status.oom_killed
                             else "Completed" if status.exit_code == 0 else "Error")
        seccomp_notifier.fold_killed(record)

    # ---- exec, logs, resources -----------------------------------------------------

    def exec_sync(self, container_id: str, cmd: list[str], timeout: int,
                  cancel: Cancellation | None = None) -> ExecResult:
        """`cmd` run to its end in the container; killed at `timeout` (0:
        none) or once the caller gives up (`cancel`: the call's end and
        deadline), with a typed error saying which."""
        record = self.running(container_id, "ExecSync")
        process = prepare.process_for_exec(self.spec_of(record), cmd)
        handler = self.handlers.get(record.runtime_handler)
        started = time.monotonic()
        result = handler.exec_sync(record.id, process, timeout if timeout > 0 else None,
                                   cancel=cancel)
        if result.timed_out:
            where = f"ExecSync: command {cmd!r} in container {record.id}"
            if cancel is not None and cancel.cancelled:
                raise Cancelled(f"{where} was killed: the caller cancelled the call")
            if cancel is not None and cancel.expired() and not (
                    timeout > 0 and time.monotonic() - started >= timeout):
                raise DeadlineExceeded(f"{where} was killed: the call's deadline passed")
            raise DeadlineExceeded(f"{where} timed out after {timeout}s and was killed")
        return result

    def running(self, container_id: str, rpc: str) -> ContainerRecord:
        """The record of a running container: NOT_FOUND, else FAILED_PRECONDITION."""
        record = self.store.get(container_id, rpc)
        if self.refresh(record).state != RUNNING:
            raise FailedPrecondition(f"{rpc}: container {record.id} is {record.state}, "
                                     "not running")
        return record

    def exec_interactive(self, container_id: str, cmd: list[str], *, tty: bool, stdin: bool,
                         stdout: bool, stderr: bool) -> ExecProcess:
        """Start `cmd` in the container for a streaming Exec session: a
        runtime.handler.ExecProcess whose stdio the caller relays."""
        record = self.running(container_id, "Exec")
        process = prepare.process_for_exec(self.spec_of(record), cmd)
        handler = self.handlers.get(record.runtime_handler)
        return handler.exec_interactive(record.id, process, tty=tty, stdin=stdin,
                                        stdout=stdout, stderr=stderr)

    def terminal_resizer(self, record: ContainerRecord) -> Callable[[int, int], None] | None:
        """resize(width, height) for a container with a terminal its runtime
        holds (a `vm` handler's); None where the monitor holds the pty, as
        for every other handler, and for a container without a terminal."""
        handler = self.handlers.get(record.runtime_handler)
        if not record.tty or not handler.holds_terminal:
            return None
        return functools.partial(handler.resize_terminal, record.id)

    def cgroup_stats(self, record: ContainerRecord) -> CgroupStats | None:
        """A running container's cgroup usage: as its runtime reports it
        where the handler does (`vm`: the shim's Task/Stats, kata's cgroups
        being in its VM), else read from the host's files of its groups.
        None when there is nothing to read or the runtime could not say
        (logged): cpu and memory stay unset."""
        handler = self.handlers.get(record.runtime_handler)
        if handler.reports_cgroup_stats:
            try:
                stats: CgroupStats = handler.cgroup_stats(record.id)
                return stats
            except CrioNativeError as e:
                log.warning("stats of container %s: %s", record.id, e)
                return None
        dirs = [Path(d) for d in record.cgroup_dirs]
        return read_cgroup(dirs) if dirs else None

    def reopen_log(self, container_id: str) -> None:
        record = self.running(container_id, "ReopenContainerLog")
        reopen_log(record.monitor_dir)

    def update_resources(self, container_id: str, resources: dict[str, Any]) -> None:
        record = self.store.get(container_id, "UpdateContainerResources")
        if self.refresh(record).state not in (CREATED, RUNNING):
            raise FailedPrecondition(f"UpdateContainerResources: container {record.id} is "
                                     f"{record.state}")
        self.handlers.get(record.runtime_handler).update(record.id, resources)
        spec = self.spec_of(record)
        spec.setdefault("linux", {}).setdefault("resources", {}).update(resources)
        atomic_write_json(Path(record.bundle) / "config.json", spec)

    def spec_of(self, record: ContainerRecord) -> dict[str, Any]:
        """The container's OCI spec, read once (status, exec and events all
        want it; only UpdateContainerResources changes it)."""
        spec = self._specs.get(record.id)
        if spec is None:
            try:
                spec = read_json(Path(record.bundle) / "config.json")
            except FileNotFoundError:
                return {}
            self._specs[record.id] = spec
        return spec

    # ---- helpers ---------------------------------------------------------------------

    def _lock(self, container_id: str) -> threading.RLock:
        with self.store.lock:
            return self._locks.setdefault(container_id, threading.RLock())
