"""Pod sandbox lifecycle: run, stop, remove, and recovery at startup.

RunPodSandbox is a list of named steps; each registers its undo as soon as it
has made something, so a failure anywhere rolls back everything before it.  A
retried request for the same pod name gets the same sandbox back."""
from __future__ import annotations

import logging
import secrets
import shutil
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from crio_native import failpoints, steps
from crio_native._native import selinux
from crio_native._proto import api_pb2
from crio_native.config import Config
from crio_native.errors import DeadlineExceeded, FailedPrecondition, InvalidArgument
from crio_native.linux import mountinfo
from crio_native.linux.cgroups import warm as cgroup_warm
from crio_native.logsetup import fields
from crio_native.network.cni import CNI, Attachment, NetworkList, ip_ranges_from_cidr, pod_ips
from crio_native.network.cni_config import NoNetworkConfig
from crio_native.network.watch import NetworkConfigWatcher
from crio_native.runtime.handler import RuntimeHandler
from crio_native.runtime.pod_cgroup import SHARED_PARENTS
from crio_native.runtime.registry import HandlerSet
from crio_native.sandbox import mcs, setup, validate
from crio_native.sandbox.overlap import alongside
from crio_native.sandbox.record import CREATING, NOTREADY, READY, SandboxRecord
from crio_native.sandbox.store import SandboxStore
from crio_native.spec import selinux as selinux_spec
from crio_native.spec.pod_resources import pod_resources
from crio_native.state.rollback import forget_unless_failed, save_state, undo_step

log = logging.getLogger(__name__)

# The pod's loopback interface is brought up by the daemon itself (setup.
# bring_up_loopback: one ioctl in the pod's netns), not by exec'ing CNI's
# loopback plugin, which did only that.  Pods attached by an earlier version
# have an ADD of this built-in network cached for lo: their DEL and CHECK
# still run the plugin, and GC keeps their attachment while the pod lives.
LOOPBACK = NetworkList(name="cni-loopback", cni_version="1.0.0", plugins=[{"type": "loopback"}],
                       source="built in")
RETRY_WAIT_SECONDS = 240.0   # a retried RunPodSandbox waits this long for the first try
# How long RunPodSandbox's hold on the cgroup attach warmer lasts at most
# when no CreateContainer of the pod takes it over (release_warm): the
# kubelet sends the pod's first create right after RunPodSandbox, unless it
# must pull an image first, and then the hold simply runs out.
POD_WARM_SECONDS = 2.0


def ready_problem(record: SandboxRecord, vanished_pins: list[str]) -> str:
    """Why the pod cannot be READY ("" when it can)."""
    if vanished_pins:
        return f"namespace pins gone: {', '.join(vanished_pins)}"
    if not record.host_network and not record.network_attached:
        return "not attached to its network"
    return ""


def _children(directory: Path) -> list[Path]:
    try:
        return sorted(directory.iterdir())
    except FileNotFoundError:
        return []


def _mounts_under(directory: Path) -> list[str]:
    """Mount points at or below `directory`, deepest first."""
    return mountinfo.under(mountinfo.read(), str(directory))


class SandboxManager:
    def __init__(self, config: Config, handlers: HandlerSet | None = None,
                 host: setup.PodHost = setup):
        self.config = config
        # what is made on this host for a pod (namespaces, /dev/shm, files):
        # the setup module, or a fake in the fast tests of this manager
        self.host = host
        # the runtime handlers: each pod's handler does the runtime's part of it
        self.handlers = handlers or HandlerSet(config)
        self.store = SandboxStore(Path(config.root) / "sandboxes")
        self.pin_root = Path(config.runroot) / "ns"
        self.pod_root = Path(config.runroot) / "pods"
        self.cni = CNI(config.network.plugin_dirs, str(Path(config.root) / "cni" / "results"))
        # The daemon starts it (inotify); unstarted, it scans the directory per question.
        self.networks = NetworkConfigWatcher(
            config.network.network_dir, config.network.cni_default_network,
            status_probe=lambda found: self.cni.status(NetworkList.from_file(found)))
        # whether this host runs SELinux (a callable, so tests can say yes)
        self.selinux_enabled = selinux.enabled
        # the SELinux label of a file (a callable, so tests can give one)
        self.read_file_label: Callable[[Path], str] = mcs.file_label_of
        self._done: dict[str, threading.Event] = {}
        self._locks: dict[str, threading.Lock] = {}
        # The v1 attach's grace period (linux/cgroups/warm.py), paid while
        # RunPodSandbox waits for its CNI plugins rather than in the middle
        # of the first CreateContainer's cgroup mkdirs: pod id -> release.
        self.warmer = cgroup_warm.shared()
        self._warm: dict[str, Callable[[], None]] = {}

    def release_warm(self, sandbox_id: str) -> None:
        """End RunPodSandbox's hold on the attach warmer for this pod (a
        CreateContainer that holds it itself takes over; unknown ids and
        second calls do nothing)."""
        release = self._warm.pop(sandbox_id, None)
        if release is not None:
            release()

    # ---- startup -------------------------------------------------------------

    def recover(self, rebooted: bool = False) -> None:
        """Roll back sandboxes a crash left half-made; mark pods not ready
        that are missing a piece (a stop or remove cut short, a reboot);
        sweep what no record owns under the daemon's pod dirs and pins.
        `rebooted` (state/boot.py) only adds to the log: each pod is judged
        on what is there, and a reboot takes its pins and its directory."""
        for record in self.store.load():
            if record.state == CREATING:
                log.warning("rolling back half-made pod sandbox", extra=fields(id=record.id))
                try:
                    self._teardown(record)
                except Exception as e:  # noqa: BLE001 - one stuck pod must not stop the daemon
                    log.error("rollback of half-made pod sandbox failed; record kept",
                              extra=fields(id=record.id, error=str(e)))
                    continue
                self.store.drop(record)
            else:
                self._recheck(record, rebooted)
        self._sweep_orphans()
        self.collect_network_garbage()

    def _recheck(self, record: SandboxRecord, rebooted: bool = False) -> None:
        """A pod is READY only if everything it needs is there: its pinned
        namespaces and its /dev/shm (gone after a reboot: forgotten, as
        nothing is left to undo), its directory of files for the containers,
        and its network attachment.  The attachment itself stays recorded
        while the pod does: its IPAM reservation outlives a reboot, and the
        kubelet's StopPodSandbox runs CNI DEL (without a netns) to free it."""
        before = record.to_dict()
        vanished = [kind for kind, pin in record.pins.items() if not Path(pin).exists()]
        if vanished:
            record.pins = {k: p for k, p in record.pins.items() if k not in vanished}
        if record.shm_path and not Path(record.shm_path).exists():
            record.shm_path = ""
        if record.state == READY:
            problem = ready_problem(record, vanished)
            if not problem and record.directory and not Path(record.directory).is_dir():
                problem = f"pod directory {record.directory} gone"
            if problem and rebooted:
                problem = f"the node rebooted: {problem}"
            if problem:
                log.warning("pod sandbox not ready after restart",
                            extra=fields(id=record.id, pod=record.name_key, reason=problem))
                record.state = NOTREADY
        if record.to_dict() != before:
            self.store.save(record)

    def _sweep_orphans(self) -> None:
        """Pod directories and namespace pins under the runroot that no
        record names (a record is saved before either is made, so these
        are left by a crash in a version that did not journal them, or by
        hand): unmounted and removed, each logged.  An unreadable record
        kept on disk owns its id's: its pod may still be running."""
        owned = self.store.known_ids()
        for d in _children(self.pod_root):
            if d.name in owned:
                continue
            for mount_point in _mounts_under(d):
                self.host.unmount_path(mount_point)
            shutil.rmtree(d, ignore_errors=True)
            log.warning("removed a pod directory no record owns", extra=fields(path=str(d)))
        for kind_dir in _children(self.pin_root):
            for pin in _children(kind_dir):
                if pin.name in owned:
                    continue
                self.host.unpin_path(pin)
                log.warning("removed a namespace pin no record owns",
                            extra=fields(path=str(pin)))

    def collect_network_garbage(self) -> None:
        """CNI GC at start-up: every network with cached attachments (and the
        configured one) is told which attachments pods still own; stale ones
        get DEL, and spec 1.1 plugins a GC with the valid list.  A pod whose
        record is kept but unreadable owns every attachment cached under its
        id: what it was attached to is in that record."""
        valid: dict[str, set[tuple[str, str]]] = {LOOPBACK.name: set()}
        for record in self.store.all():
            if record.network_attached:
                valid.setdefault(record.network_name, set()).add((record.id, "eth0"))
                valid[LOOPBACK.name].add((record.id, "lo"))
        names = set(valid) | self.cni.cached_network_names()
        state = self.networks.current()
        if state.ready and state.config is not None:
            names.add(state.config.name)
        unreadable = set(self.store.unreadable)
        if unreadable:
            for name in names:
                valid.setdefault(name, set()).update(
                    (entry["containerId"], entry.get("ifName", ""))
                    for entry in self.cni.cached_entries(name)
                    if entry.get("containerId") in unreadable)
        for name in sorted(names):
            try:
                net = LOOPBACK if name == LOOPBACK.name else NetworkList.load(
                    self.config.network.network_dir, name)
            except NoNetworkConfig as e:
                log.warning("CNI GC skipped a network without config",
                            extra=fields(network=name, error=str(e)))
                continue
            self.cni.gc(net, valid.get(name, set()))

    # ---- run -------------------------------------------------------------------

    def run(self, request: api_pb2.RunPodSandboxRequest, pod_cidr: str = "") -> str:
        """`pod_cidr`: the node's pod CIDR from UpdateRuntimeConfig, offered to
        plugins that declare the ipRanges capability."""
        record = self._new_record(request)
        try:
            record.ip_ranges = ip_ranges_from_cidr(pod_cidr)
        except ValueError as e:
            raise FailedPrecondition(f"RunPodSandbox: the node's pod CIDR {pod_cidr!r} (from "
                                     f"UpdateRuntimeConfig) is unusable: {e}") from None
        # marked as being made before its name is reserved, so a retry never
        # takes it for the leftover of a failed attempt
        done = self._done.setdefault(record.id, threading.Event())
        try:
            existing = self.store.claim(record, self._wait_for)
            if existing is not None:
                return existing
            try:
                self._assign_selinux_level(record, request)
            except BaseException:
                self.store.drop(record)   # nothing made yet: only the name to free
                raise
            self._create(record, request)
            return record.id
        finally:
            done.set()
            self._done.pop(record.id, None)

    def _check_selinux_level(self, level: str) -> None:
        """The pod's level goes into mount options (its /dev/shm): a
        malformed one is refused before anything is made.  Without SELinux
        it is ignored, as the containers' SELinuxOptions are."""
        problem = selinux_spec.level_problem(level) if level else None
        if problem and self.selinux_enabled():
            raise InvalidArgument("RunPodSandbox: config.linux.security_context."
                                  f"selinux_options.level: {problem}")

    def _assign_selinux_level(self, record: SandboxRecord,
                              request: api_pb2.RunPodSandboxRequest) -> None:
        """The pod's MCS level on an SELinux host: the request's, else a
        category pair no other pod holds (chosen under the store lock, after
        the record joined the store, so two pods never get the same), those
        whose records are unreadable included (_levels_in_use)."""
        if not self.selinux_enabled():
            return
        asked = request.config.linux.security_context.selinux_options.level
        if asked:
            record.selinux_level = asked
            return
        with self.store.lock:
            record.selinux_level = mcs.allocate_level(self._levels_in_use(record))

    def _levels_in_use(self, record: SandboxRecord) -> list[str]:
        """The levels of the other pods: of their records, and for a pod
        whose record is unreadable (kept, its containers running on) what is
        left of it tells (mcs.level_left_by).  Where nothing does, no level
        is chosen: any could be that pod's."""
        levels = [r.selinux_level for r in self.store.all() if r.id != record.id]
        for pod_id in sorted(self.store.unreadable):
            path, pod_dir = self.store.directory / f"{pod_id}.json", self.pod_root / pod_id
            level = mcs.level_left_by(path, pod_dir, self.read_file_label)
            if level is None:
                log.error("no SELinux level chosen for a new pod: the level of a pod whose "
                          "record is unreadable is unknown", extra=fields(
                              path=str(path), directory=str(pod_dir)))
                raise FailedPrecondition(
                    f"RunPodSandbox: no SELinux MCS level can be chosen: pod sandbox record "
                    f"{path} is unreadable and neither it nor the files of {pod_dir} tell "
                    "the level its pod may still hold (docs/recovery.md, \"Unreadable "
                    "records\"); put the record right or remove it, or ask for a level "
                    "(config.linux.security_context.selinux_options.level)")
            levels.append(level)
        return levels

    def _wait_for(self, holder: SandboxRecord) -> str | None:
        """The id of a sandbox another request made (or is making) under the
        same name; None if that attempt failed and this one should try again."""
        event = self._done.get(holder.id)
        if event is not None and not event.wait(steps.wait_budget(RETRY_WAIT_SECONDS)):
            raise DeadlineExceeded(f"RunPodSandbox: pod {holder.name_key} is still being "
                                   "created by an earlier request")
        current = self.store.find(holder.id)
        if current is not None and current.state == CREATING and event is None:
            # Nobody is making it: an earlier attempt whose rollback failed.
            # Try the rollback again; if it still fails, say so (no spinning).
            with self._lock(current.id):
                self._teardown(current)
                self.store.drop(current)
            return None
        return current.id if current is not None and current.state != CREATING else None

    def _new_record(self, request: api_pb2.RunPodSandboxRequest) -> SandboxRecord:
        config = request.config
        validate.check_metadata(config)
        handler = request.runtime_handler or self.config.runtime.default_runtime
        if handler not in self.config.runtime.runtimes:
            have = ", ".join(sorted(self.config.runtime.runtimes))
            raise InvalidArgument(f"RunPodSandbox: runtime_handler: no handler {handler!r} "
                                  f"configured (have {have})")
        validate.check_hostname(config.hostname)
        self._check_selinux_level(config.linux.security_context.selinux_options.level)
        opts = config.linux.security_context.namespace_options
        sandbox_id = secrets.token_hex(32)
        record = SandboxRecord(
            id=sandbox_id, name=config.metadata.name, namespace=config.metadata.namespace,
            uid=config.metadata.uid, attempt=config.metadata.attempt,
            created_at=time.time_ns(), runtime_handler=handler, hostname=config.hostname,
            log_directory=config.log_directory, cgroup_parent=config.linux.cgroup_parent,
            labels=dict(config.labels), annotations=dict(config.annotations),
            network_mode=opts.network, pid_mode=opts.pid, ipc_mode=opts.ipc,
            directory=str(self.pod_root / sandbox_id),
            dns=validate.check_dns(config.dns_config),
            port_mappings=validate.check_port_mappings(config.port_mappings),
            sysctls=validate.check_sysctls(dict(config.linux.sysctls),
                                           host_network=opts.network == 2,
                                           host_ipc=opts.ipc == 2),
            shm_size=validate.shm_size(dict(config.annotations)),
            bandwidth=validate.bandwidth(dict(config.annotations)),
        )
        self._check_user_namespace(record, opts)
        return record

    def _check_user_namespace(self, record: SandboxRecord,
                              opts: api_pb2.NamespaceOption) -> None:
        """KEP-127: the pod's user namespace mappings, on a handler that
        says it can run them (Status's user_namespaces)."""
        maps = validate.check_userns(opts.userns_options) if opts.HasField(
            "userns_options") else None
        if maps is None:
            return
        if not self.handlers.get(record.runtime_handler).features().user_namespaces:
            raise InvalidArgument(f"RunPodSandbox: config.{validate.USERNS_FIELD}.mode: "
                                  f"runtime handler {record.runtime_handler!r} does not "
                                  "support user namespaces")
        record.userns_uids = [list(m) for m in maps[0]]
        record.userns_gids = [list(m) for m in maps[1]]

    def _create(self, record: SandboxRecord, request: api_pb2.RunPodSandboxRequest) -> None:
        failed: list[str] = []
        with ExitStack() as undo:
            # Warmed from the start: the first write's grace period (6-16 ms)
            # then runs alongside the CNI ADD, which waits on the plugins.
            self._warm[record.id] = self.warmer.hold(at_most=POD_WARM_SECONDS)
            undo.callback(self.release_warm, record.id)
            undo.callback(forget_unless_failed, self.store, record, failed)
            # Not fsynced (docs/recovery.md, "Durability"): until the network
            # is journaled, all a pod holds (pins, /dev/shm, its runroot dir,
            # cgroups) ends with a reboot, and a daemon crash loses no write.
            self.store.save(record, durable=False)
            failpoints.hit("sandbox.run.reserved")
            handler = self.handlers.get(record.runtime_handler)
            resources = pod_resources(request.config.linux)
            Path(record.directory).mkdir(parents=True, exist_ok=True)
            undo.callback(undo_step, failed, "remove pod directory",
                          lambda: self.host.remove_directory(record))
            failpoints.hit("sandbox.run.directory")
            # The pins and the shm mount point are saved before anything is
            # pinned or mounted there, so a crash at any later point (even
            # inside the pinning) unpins and unmounts them.
            record.pins = setup.planned_pins(record, self.pin_root)
            record.shm_path = setup.shm_mount_point(record)
            undo.callback(undo_step, failed, "unpin namespaces",
                          lambda: self.host.unpin_namespaces(record))
            undo.callback(undo_step, failed, "unmount shm", lambda: self.host.unmount_shm(record))
            self.store.save(record, durable=False)
            failpoints.hit("sandbox.run.pins_journaled")
            self.host.pin_namespaces(record, self.pin_root)
            failpoints.hit("sandbox.run.pinned")
            self.host.apply_sysctls_and_hostname(record)
            failpoints.hit("sandbox.run.sysctls")
            self.host.mount_shm(record)
            failpoints.hit("sandbox.run.shm_mounted")
            self._attach_network(record, undo, failed)
            # After the network: kata boots the pod's VM with the interfaces
            # it finds in the pod's network namespace.
            # registered first, as it journals as it goes: a part it made and
            # failed to undo itself is undone here, or stays visible
            undo.callback(undo_step, failed, "remove the runtime's part of the pod",
                          lambda: handler.remove_sandbox(record))
            handler.start_sandbox(record, resources,
                                  lambda: self.store.save(record, durable=False))
            failpoints.hit("sandbox.run.handler_done")
            self.host.write_pod_files(record)
            failpoints.hit("sandbox.run.files_written")
            # A power loss that takes this save leaves the durable CREATING
            # record (or an empty one): rolled back at start-up, its address
            # freed (by the record, or by CNI GC from the durable cache).
            save_state(self.store, record, READY, CREATING, durable=False)
            failpoints.hit("sandbox.run.ready")
            undo.pop_all()
        log.info("pod sandbox ready", extra=fields(id=record.id, pod=record.name_key,
                                                  ips=",".join(record.ips)))

    def _attach_network(self, record: SandboxRecord, undo: ExitStack, failed: list[str]) -> None:
        if record.host_network:
            return
        state = self.networks.current()   # the same answer NetworkReady gives
        if not state.ready or state.config is None:
            raise FailedPrecondition(f"RunPodSandbox: network not ready: {state.problem}")
        net = NetworkList.from_file(state.config)
        record.network_name = net.name
        record.network_attached = True
        # Fsynced: the IPAM lease ADD takes outlives a reboot, and until the
        # CNI result cache is written this record alone says to DEL it.
        self.store.save(record)  # a crash from here on runs DEL at restart
        undo.callback(undo_step, failed, "CNI DEL", lambda: self._detach_network(record))
        failpoints.hit("sandbox.run.network_journaled")
        self.host.bring_up_loopback(record)
        failpoints.hit("sandbox.run.loopback_added")
        result = self.cni.add(net, self._attachment(record))
        failpoints.hit("sandbox.run.network_added")
        # No save here: the READY save follows at once, and a crash before it
        # rolls back through the network_attached flag saved above.
        record.ips = pod_ips(result)

    # ---- stop and remove ----------------------------------------------------------

    def stop(self, sandbox_id: str, kill_containers: Callable[[], None] | None = None) -> None:
        """`kill_containers` (StopPodSandbox's kill of what still runs in the
        pod) runs alongside CNI DEL (overlap.py says why), before the
        handler stops the pod's own part (the infra), as CRI-O orders it."""
        self.release_warm(sandbox_id)      # no container of it is coming
        record = self.store.find(sandbox_id)
        if record is None:
            if kill_containers is not None:
                kill_containers()
            return  # CRI: stopping an unknown sandbox succeeds
        with self._lock(record.id):
            # NOTREADY is saved before anything is stopped: a stop cut short
            # leaves a pod that says so, and the kubelet's retry finishes it
            self._mark_not_ready(record)
            failpoints.hit("sandbox.stop.begin")
            with alongside(kill_containers, "kill the pod's containers"):
                self._detach_network(record, between="sandbox.stop.network_deleted")
                failpoints.hit("sandbox.stop.network_detached")
            with self._saved_if_changed(record):
                self._handler_of(record).stop_sandbox(record)
            failpoints.hit("sandbox.stop.handler_stopped")

    def remove(self, sandbox_id: str) -> None:
        record = self.store.find(sandbox_id)
        if record is None:
            return
        with self._lock(record.id):
            self._mark_not_ready(record)
            failpoints.hit("sandbox.remove.begin")
            self._teardown(record)
            self.store.drop(record)
        self._locks.pop(record.id, None)
        log.info("pod sandbox removed", extra=fields(id=record.id, pod=record.name_key))

    def _mark_not_ready(self, record: SandboxRecord) -> None:
        if record.state == READY:
            record.state = NOTREADY
            # not fsynced (docs/recovery.md, "Durability"): a daemon crash
            # keeps it; a power loss that takes it also takes the pins, shm
            # and run dir, and start-up marks the READY record NOTREADY
            # for their absence (_recheck)
            self.store.save(record, durable=False)

    def _teardown(self, record: SandboxRecord) -> None:
        """Undo every piece of the pod, each step idempotent: a teardown cut
        short (an error, a crash) is finished by calling it again."""
        handler = self._handler_of(record)
        with self._saved_if_changed(record):
            handler.stop_sandbox(record)
        failpoints.hit("sandbox.remove.handler_stopped")
        self._detach_network(record)
        failpoints.hit("sandbox.remove.network_detached")
        self.host.unmount_shm(record)
        failpoints.hit("sandbox.remove.shm_unmounted")
        self.host.unpin_namespaces(record)
        failpoints.hit("sandbox.remove.unpinned")
        with SHARED_PARENTS:     # no pod is made under a parent while it changes hands
            self._hand_over_shared_cgroups(record)
            handler.remove_sandbox(record)
            # gone: no later hand-over may pick this pod as an heir
            record.cgroup_dirs = []
        failpoints.hit("sandbox.remove.handler_removed")
        self.host.remove_directory(record)
        failpoints.hit("sandbox.remove.directory_removed")

    def _hand_over_shared_cgroups(self, record: SandboxRecord) -> None:
        """A parent group this pod made that another pod's group lies in
        (two pods under one new /kubepods/burstable) becomes that pod's to
        remove, so it goes with the last pod that needs it."""
        keep = []
        with self.store.lock:
            for made in record.cgroups_made:
                heir = next((other for other in self.store.all() if other.id != record.id and any(
                    d.startswith(made.rstrip("/") + "/") for d in other.cgroup_dirs)), None)
                if heir is None:
                    keep.append(made)
                    continue
                # saved before this record drops it: a crash in between leaves
                # it listed twice, and the next teardown hands it over again
                if made not in heir.cgroups_made:
                    heir.cgroups_made = [*heir.cgroups_made, made]
                    self.store.save(heir)
                log.info("pod cgroup handed over", extra=fields(id=record.id, heir=heir.id,
                                                                 cgroup=made))
        if keep != record.cgroups_made:
            record.cgroups_made = keep
            self.store.save(record)

    def _handler_of(self, record: SandboxRecord) -> RuntimeHandler:
        return self.handlers.get(record.runtime_handler)

    @contextmanager
    def _saved_if_changed(self, record: SandboxRecord) -> Iterator[None]:
        """Save the record after a step that may have changed it (even when
        the step failed part-way), and only then."""
        before = record.to_dict()
        try:
            yield
        finally:
            if record.to_dict() != before:
                self.store.save(record)

    def _detach_network(self, record: SandboxRecord, between: str = "") -> None:
        """CNI DEL of eth0 (`between`: the failpoint after it); lo needs none
        unless the loopback plugin attached it."""
        if not record.network_attached:
            return
        try:
            net = NetworkList.load(self.config.network.network_dir, record.network_name)
        except NoNetworkConfig as e:
            raise FailedPrecondition(f"pod {record.id}: cannot detach from network "
                                     f"{record.network_name!r}: {e}") from None
        self.cni.delete(net, self._attachment(record))
        if between:
            failpoints.hit(between)
        lo = self._attachment(record, "lo")
        if self.cni.cached_entry(LOOPBACK.name, lo) is not None:
            self.cni.delete(LOOPBACK, lo)    # attached by the loopback plugin (older version)
        record.network_attached = False
        record.ips = []
        # not fsynced: a power loss that takes it leaves network_attached,
        # and the kubelet's StopPodSandbox (or the rollback) runs DEL again,
        # which CNI requires plugins to take (nothing cached, nothing leased)
        self.store.save(record, durable=False)

    def check_network(self, sandbox_id: str) -> str:
        """CNI CHECK of the pod's attachment: "ok", "skipped: why", or the
        plugins' complaint.  Never changes the pod; only reported."""
        record = self.store.get(sandbox_id, "PodSandboxStatus")
        with self._lock(record.id):
            if record.host_network:
                return "skipped: host network"
            if not record.network_attached:
                return "skipped: not attached"
            try:
                net = NetworkList.load(self.config.network.network_dir, record.network_name)
                lo = self._attachment(record, "lo")
                if self.cni.cached_entry(LOOPBACK.name, lo) is not None:
                    self.cni.check(LOOPBACK, lo)
                else:
                    self.host.check_loopback(record)
                self.cni.check(net, self._attachment(record))
            except (NoNetworkConfig, FailedPrecondition) as e:
                return f"skipped: {e}"
            except Exception as e:  # noqa: BLE001 - a failed CHECK is the answer, not an error
                return f"failed: {e}"
        return "ok"

    # ---- helpers ----------------------------------------------------------------

    def _attachment(self, record: SandboxRecord, ifname: str = "eth0") -> Attachment:
        args = {"IgnoreUnknown": "1", "K8S_POD_NAMESPACE": record.namespace,
                "K8S_POD_NAME": record.name, "K8S_POD_INFRA_CONTAINER_ID": record.id,
                "K8S_POD_UID": record.uid}
        caps: dict[str, Any] = {}
        if record.port_mappings:
            caps["portMappings"] = record.port_mappings
        if record.bandwidth:
            caps["bandwidth"] = record.bandwidth
        if record.ip_ranges:
            # Kept on the record: DEL, even a rollback's, must get what ADD got.
            caps["ipRanges"] = record.ip_ranges
        return Attachment(container_id=record.id, netns=record.netns_path, ifname=ifname,
                          args=args, capability_args=caps if ifname != "lo" else {})

    def _lock(self, sandbox_id: str) -> threading.Lock:
        with self.store.lock:
            return self._locks.setdefault(sandbox_id, threading.Lock())
