"""The `oci` runtime handler: runc or crun driven through its command line.

Every container process is a child of its own crio-native-monitor: the
monitor runs `<runtime> create --pid-file F ...` and, being a child
subreaper, adopts the process the runtime leaves at its start barrier
(docs/monitor.md, --container-pid-file), and meanwhile keeps the kernel's
cgroup attach lock warm for runc's own cgroup.procs writes (--warm-cgroup,
`warm_cgroup` below).  Everything else is one runtime
command per call, each with a timeout, run through the handler's
RuntimeCommand (command.py), which puts the runtime's own messages (JSON
lines with "msg", from `--log-format json`: messages.py) into our error
messages.  Exec, run to the end or interactive, is in exec.py; where runc
will put the container's cgroup, in cgroups.py.

Runtime state lives in `runtime_root` (`--root`); the monitor's files and
the runtime's create log live in the container's monitor state dir."""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shlex
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from crio_native import steps
from crio_native.cancellation import Cancellation
from crio_native.config import Config
from crio_native.errors import CrioNativeError, FailedPrecondition, Internal, NotFound
from crio_native.linux import apparmor
from crio_native.linux.mounts import kernel_has_mount_setattr
from crio_native.linux.procfs import process_cgroup_dirs
from crio_native.monitor import launch_monitor
from crio_native.runtime.builtin.pod import pinned_pod_from_config
from crio_native.runtime.pod_half import DelegatedPodHalf, PodHalf
from crio_native.runtime.handler import (Created, ExecProcess, ExecResult, HandlerFeatures,
                                         MonitorOptions, RuntimeHandler)
from crio_native.runtime.registry import runtime_root_of
from crio_native.runtime.oci import exec as exec_paths
from crio_native.linux.cgroups.warm import own_cgroup_procs
from crio_native.runtime.oci.cgroups import cgroups_path_of, memory_cgroup_dir
from crio_native.runtime.oci.command import RuntimeCommand
from crio_native.runtime.oci.messages import runtime_log_messages, runtime_messages

log = logging.getLogger(__name__)


def _runtime_path(name: str, configured: str) -> str:
    """runtime_path, else the handler's name looked up in $PATH (as CRI-O does)."""
    if configured:
        return configured
    found = shutil.which(name)
    if found is None:
        raise FailedPrecondition(f"runtime handler {name}: runtime.runtimes.{name}.runtime_path "
                                 f"is empty and no {name!r} is in $PATH")
    return found


PID_FILE = "container.pid"          # in the monitor's state dir: written by `create`
CREATE_LOG = "runtime-create.log"   # in the monitor's state dir: the runtime's create log
CONSOLE_SOCKET = "console.sock"     # in a private temp dir, for a tty container's create

# The handler's own steps (steps.py: traced per call, timed in the step
# histogram; not failpoints), by the catalogue step they fall before:
# what `bench runc_start` prints where the time of a create and a start goes.
PREPARED = "container.create.runc.prepared"   # argv, paths, the cgroup to watch
LAUNCHED = "container.create.runc.launched"   # monitor up, `runc create` done, pid adopted
CALLED = "container.start.runc.called"        # the start reached the handler
STEPS = {"container.create.runtime_created": (PREPARED, LAUNCHED),
         "container.start.released": (CALLED,)}


def features_from_json(doc: dict[str, Any], kernel_has_mount_setattr: bool) -> HandlerFeatures:
    """What a runtime's `features` document lets us promise, conservatively:
    recursive read-only mounts need "rro" and a kernel with mount_setattr
    (5.12); user namespaces need the user namespace and idmapped mounts."""
    linux = doc.get("linux") or {}
    rro = "rro" in (doc.get("mountOptions") or []) and kernel_has_mount_setattr
    idmap = ((linux.get("mountExtensions") or {}).get("idmap") or {}).get("enabled") is True
    userns = "user" in (linux.get("namespaces") or []) and idmap
    # runc and crun apply process.apparmorProfile; they have no Landlock
    return HandlerFeatures(recursive_read_only_mounts=rro, user_namespaces=userns,
                           apparmor=(linux.get("apparmor") or {}).get("enabled") is True
                           and apparmor.enabled(),
                           extra={"oci_features": doc})


class OciCliHandler(DelegatedPodHalf, RuntimeHandler):
    """A RuntimeHandler over an OCI runtime CLI with runc's command line.
    Its pod half (`pod`) is the builtin one, runtime/builtin/pod.py: the pod
    cgroup and, for a pod-level PID namespace, our infra process."""

    def __init__(self, name: str, runtime_path: str | os.PathLike[str],
                 runtime_root: str | os.PathLike[str], *, timeout: float = 30.0,
                 create_timeout: float = 60.0, systemd_cgroup: bool = False,
                 monitor_binary: Path | None = None, pod: PodHalf | None = None):
        self.name = name
        self.pod = pod
        self.command = RuntimeCommand(name, str(runtime_path), Path(runtime_root),
                                      timeout=timeout, systemd_cgroup=systemd_cgroup)
        self.create_timeout = create_timeout
        self.monitor_binary = monitor_binary
        self._features: HandlerFeatures | None = None
        self._features_lock = threading.Lock()

    @classmethod
    def from_config(cls, name: str, config: Config) -> "OciCliHandler":
        """The handler of `runtime.runtimes.<name>` (registry.HANDLER_TYPES)."""
        entry = config.runtime.runtimes[name]
        return cls(name, _runtime_path(name, entry.runtime_path), runtime_root_of(name, config),
                   systemd_cgroup=config.runtime.cgroup_manager == "systemd",
                   pod=pinned_pod_from_config(config))

    @property
    def runtime_path(self) -> str:
        return self.command.runtime_path

    @property
    def runtime_root(self) -> Path:
        return self.command.runtime_root

    @property
    def timeout(self) -> float:
        return self.command.timeout

    @property
    def systemd_cgroup(self) -> bool:
        return self.command.systemd_cgroup

    def __repr__(self) -> str:
        return f"OciCliHandler({self.name!r}, {self.runtime_path!r}, {str(self.runtime_root)!r})"

    # ---- create ------------------------------------------------------------------

    def create(self, container_id: str, bundle: Path, monitor: MonitorOptions) -> Created:
        if not os.access(self.runtime_path, os.X_OK):
            raise self.command.missing_binary()
        if not monitor.terminal:
            return self._create(container_id, Path(bundle), monitor, None)
        # The runtime makes the pty in the container and sends its master
        # to --console-socket, where the monitor takes it.  A socket path
        # has at most 107 bytes, so it goes in a short private temp dir
        # (as conmon's does) rather than the container's state dir.
        console_dir = Path(tempfile.mkdtemp(prefix="crn-tty-"))
        try:
            return self._create(container_id, Path(bundle), monitor,
                                console_dir / CONSOLE_SOCKET)
        finally:
            shutil.rmtree(console_dir, ignore_errors=True)

    def _create(self, container_id: str, bundle: Path, monitor: MonitorOptions,
                console_socket: Path | None) -> Created:
        state_dir = Path(monitor.state_dir)
        pid_file, create_log = state_dir / PID_FILE, state_dir / CREATE_LOG
        for stale in (pid_file, create_log):
            stale.unlink(missing_ok=True)
        cgroup_dir = memory_cgroup_dir(cgroups_path_of(bundle), container_id)
        console_args = ("--console-socket", str(console_socket)) if console_socket else ()
        argv = self.command.argv("create", "--bundle", str(bundle), "--pid-file", str(pid_file),
                                 *console_args, container_id, log_file=create_log)
        log.debug("runtime handler %s: monitor runs %s", self.name, shlex.join(argv))
        steps.reached(PREPARED)
        try:
            mon = launch_monitor(container_id, argv, state_dir, monitor.log_path,
                                 stdin=monitor.stdin, stdin_once=monitor.stdin_once,
                                 cgroup_path=str(cgroup_dir) if cgroup_dir else None,
                                 container_pid_file=pid_file, console_socket=console_socket,
                                 timeout=self.create_timeout, binary=self.monitor_binary,
                                 warm_cgroup=self.warm_cgroup)
        except Internal as e:
            said = runtime_log_messages(create_log)
            self._undo_create(container_id, pid_file, create_log)
            if not said.split(": ", 1)[0].endswith("create failed"):   # runc says so itself
                said = f"{self.name} create failed: {said or e}"
            raise FailedPrecondition(f"container {container_id}: {said}") from e
        except BaseException:
            self._undo_create(container_id, pid_file, create_log)
            raise
        steps.reached(LAUNCHED)
        try:
            dirs = process_cgroup_dirs(mon.container_pid)
        except OSError as e:
            self._undo_create(container_id, pid_file, create_log)
            raise FailedPrecondition(f"container {container_id}: its process {mon.container_pid}"
                                     f" is gone right after {self.name} create: {e}") from e
        if cgroup_dir is not None and cgroup_dir not in dirs:
            log.warning("runtime handler %s put container %s in %s, not in %s as expected: its "
                        "OOM kills will not be seen", self.name, container_id,
                        ", ".join(map(str, dirs)) or "no cgroup", cgroup_dir)
        return Created(pid=mon.container_pid, monitor_pid=mon.pid, cgroup_dirs=dirs)

    @functools.cached_property
    def warm_cgroup(self) -> Path | None:
        """Our own cgroup's cgroup.procs, where the monitor keeps the
        kernel's cgroup attach lock warm while `create` runs (launch_monitor's
        warm_cgroup, monitor/adopt.c): the runtime's own cgroup.procs writes
        then skip an RCU grace period.  None: no warming."""
        try:
            return own_cgroup_procs()
        except OSError as e:
            log.info("runtime handler %s: no cgroup.procs of our own to keep the cgroup "
                     "attach lock warm with: %s", self.name, e)
            return None

    def _undo_create(self, container_id: str, pid_file: Path, create_log: Path) -> None:
        """Leave nothing of a failed create: no runtime state, no process (the
        monitor exits with the container it watches), no files of ours."""
        try:
            self.delete(container_id, force=True)
        except Exception:   # noqa: BLE001 -- the original error matters more; this is logged
            log.exception("runtime handler %s: cannot delete container %s after its failed "
                          "create", self.name, container_id)
        for f in (pid_file, create_log):
            with contextlib.suppress(OSError):
                f.unlink()

    # ---- lifecycle ---------------------------------------------------------------

    def start(self, container_id: str) -> None:
        steps.reached(CALLED)
        self.command.check(container_id, "start")

    def state(self, container_id: str) -> dict[str, Any]:
        return self.command.state(container_id)

    def kill(self, container_id: str, signal: int, all_processes: bool = False) -> None:
        args = ["--all"] if all_processes else []
        p = self.command.run("kill", *args, container_id, str(int(signal)))
        if p.returncode == 0:
            return
        error = self.command.failure(container_id, "kill", p)
        if isinstance(error, NotFound):
            log.debug("%s", error)
            return
        try:
            status = self.state(container_id).get("status")
        except NotFound:
            status = "gone"
        if status not in ("stopped", "gone"):
            raise error
        log.debug("runtime handler %s: kill of stopped container %s: %s", self.name,
                  container_id, error)

    def delete(self, container_id: str, force: bool = False) -> None:
        args = ["--force"] if force else []
        p = self.command.run("delete", *args, container_id)
        if p.returncode == 0:
            return
        error = self.command.failure(container_id, "delete", p)
        if not isinstance(error, NotFound):
            raise error

    def pause(self, container_id: str) -> None:
        self.command.check(container_id, "pause")

    def resume(self, container_id: str) -> None:
        self.command.check(container_id, "resume")

    def update(self, container_id: str, resources: dict[str, Any]) -> None:
        # A file rather than `--resources -`: crun reads "-" as /dev/stdin,
        # which a minimal /dev (the test VM's) does not have.
        with tempfile.NamedTemporaryFile("w", prefix="crn-resources-", suffix=".json") as f:
            json.dump(resources, f)
            f.flush()
            self.command.check(container_id, "update", "--resources", f.name)

    # ---- exec ----------------------------------------------------------------------

    def exec_sync(self, container_id: str, process: dict[str, Any],
                  timeout: float | None, cancel: Cancellation | None = None) -> ExecResult:
        return exec_paths.exec_sync(self.command, container_id, process, timeout,
                                    cancel=cancel)

    def exec_interactive(self, container_id: str, process: dict[str, Any], *, tty: bool,
                         stdin: bool, stdout: bool, stderr: bool) -> ExecProcess:
        """`<runtime> exec --process F` as our child, its stdio (or, with
        `tty`, a pty) handed to the caller: see exec.exec_interactive."""
        return exec_paths.exec_interactive(self.command, container_id, process, tty=tty,
                                           stdin=stdin, stdout=stdout, stderr=stderr)

    # ---- features ----------------------------------------------------------------------

    def features(self) -> HandlerFeatures:
        with self._features_lock:
            if self._features is None:
                self._features = self._probe_features()
            return self._features

    def _probe_features(self) -> HandlerFeatures:
        try:
            p = self.command.run("features")
        except CrioNativeError as e:
            log.warning("runtime handler %s: no features: %s", self.name, e)
            return HandlerFeatures()
        try:
            doc = json.loads(p.stdout) if p.returncode == 0 else None
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            # crun before 1.9 has no `features`: promise nothing
            log.info("runtime handler %s: `features` unavailable (%s): reporting no optional "
                     "features", self.name,
                     runtime_messages(p.stderr) or f"exit status {p.returncode}")
            return HandlerFeatures()
        return features_from_json(doc, kernel_has_mount_setattr())

