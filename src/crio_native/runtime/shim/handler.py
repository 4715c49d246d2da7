"""The `vm` runtime handler: a containerd shim v2 runtime (kata's
containerd-shim-kata-v2, or any shim speaking the same task API, such as
containerd-shim-runc-v2) driven over ttrpc.

One shim per container, or per pod: a shim may serve several containers.
containerd's shims group the containers of a pod into one shim process
(containerd-shim-runc-v2 by the `io.kubernetes.cri.sandbox-id` annotation,
kata into the pod's VM): `start` for a second container of the pod prints
the address of the shim already serving it.  A shared shim is shut down
and reaped only with the last container that uses it.

Create: FIFOs for the task's stdio, `shim start`
(runtime/shim/process.py), then a crio-native-monitor in spawn mode whose
"container process" is the relay (crio-native-shim-relay, a small static C
program: src/_native/shimrelay/): it copies the FIFOs into the monitor, so
the CRI log is written as for every handler, and exits with the task's
status from `Wait`, so the monitor's exit file holds the container's exit
code.  Then the task is created; `Created.pid` is the task's pid as the
shim reports it (for kata, a process of the VM side, not one in the
container), `monitor_pid` the monitor's.

Per container, <runtime_root>/<id>/ keeps the shim's address and pid, the
FIFOs and the shim's log; a new handler object (a restarted daemon) finds
the shim from there."""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal as signal_mod
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from crio_native.cancellation import Cancellation
from crio_native.config import Config
from crio_native.errors import CrioNativeError, FailedPrecondition, NotFound, Unavailable
from crio_native.monitor import launch_monitor
from crio_native.monitor.launch import Monitor, stop_monitor
from crio_native.monitor.paths import shim_relay_binary
from crio_native.runtime.handler import (Created, ExecProcess, ExecResult, HandlerFeatures,
                                         MonitorOptions, RuntimeHandler)
from crio_native.linux.procfs import process_cgroup_dirs
from crio_native.runtime.exec_output import collect_exec_output
from crio_native.runtime.exec_output import EXEC_TIMED_OUT_MESSAGE, EXEC_TIMEOUT_EXIT_CODE
from crio_native.runtime.registry import runtime_root_of
from crio_native.runtime.pod_cgroup import PodCgroup
from crio_native.runtime.pod_half import DelegatedPodHalf, PodHalf
from crio_native.runtime.shim.exec_io import ExecFifos, wait_drained
from crio_native.runtime.shim.pod import SandboxTask
from crio_native.runtime.shim.process import (SHIM_LOG_FIFO, ShimCommand, ShimFiles,
                                              process_start_matches, wait_process_gone)
from crio_native.runtime.shim.metrics import cgroup_stats_from_any
from crio_native.runtime.shim.task import OCI_STATUS, TaskClient
from crio_native.stats.cgroup import CgroupStats

log = logging.getLogger(__name__)

NAMESPACE = "crio-native"
PUBLISH_BINARY = "/bin/true"     # takes `publish ...` and discards the event
SHIM_LOG_FILE = "shim.log"       # in <root>/<id>/: the shim's own log, via the relay
RELAY_EXIT_WAIT = 10.0          # for the relay to get the exit and the monitor to end
SHUTDOWN_GRACE = 1.0            # seconds a shim may take to exit after Shutdown
STDIN_DRAIN_WAIT = 2.0          # for the shim to read an exec's stdin before CloseIO


class VmShimHandler(DelegatedPodHalf, RuntimeHandler):
    """A RuntimeHandler over a shim v2 binary (runtime_type `vm`).  The shim
    holds a tty container's terminal and reports its cgroup usage (kata's
    cgroups are inside its VM)."""

    holds_terminal = True
    reports_cgroup_stats = True

    def __init__(self, name: str, shim_path: str | os.PathLike[str],
                 runtime_root: str | os.PathLike[str], *, address: str | None = None,
                 namespace: str = NAMESPACE, timeout: float = 30.0,
                 create_timeout: float = 120.0, monitor_binary: Path | None = None,
                 relay_binary: Path | None = None):
        self.name = name
        self.runtime_path = str(shim_path)
        self.runtime_root = Path(runtime_root)
        self.timeout = timeout
        self.create_timeout = create_timeout
        self.monitor_binary = monitor_binary
        self.relay_binary = relay_binary or shim_relay_binary()
        self.shim = ShimCommand(self.runtime_path, namespace,
                                address or str(self.runtime_root / "crio-native.sock"),
                                PUBLISH_BINARY)
        self._clients: dict[str, TaskClient] = {}
        self._lock = threading.Lock()
        self.pod: PodHalf | None = None   # the pod cgroup and sandbox task, set by from_config

    @classmethod
    def from_config(cls, name: str, config: Config) -> "VmShimHandler":
        """The handler of `runtime.runtimes.<name>` (registry.HANDLER_TYPES):
        runtime_path, else containerd's name for the shim of runtime
        io.containerd.<name>.v2 (containerd-shim-kata-v2 for kata)."""
        shim = config.runtime.runtimes[name].runtime_path or shutil.which(
            f"containerd-shim-{name}-v2")
        if not shim:
            raise FailedPrecondition(f"runtime handler {name}: runtime.runtimes.{name}."
                                     f"runtime_path is empty and no containerd-shim-{name}-v2 "
                                     "is in $PATH")
        handler = cls(name, shim, runtime_root_of(name, config), address=config.api.listen)
        handler.pod = PodHalf(
            PodCgroup(config.runtime.cgroup_manager, config.runtime.cgroup_root or None),
            SandboxTask(handler, config.runtime.cgroup_manager, Path(config.runroot) / "ns"))
        return handler

    def __repr__(self) -> str:
        return f"VmShimHandler({self.name!r}, {self.runtime_path!r}, {str(self.runtime_root)!r})"

    # ---- the shim's task API -------------------------------------------------------

    def _files(self, container_id: str) -> ShimFiles:
        return ShimFiles(self.runtime_root, container_id)

    def _task(self, container_id: str) -> TaskClient:
        """The (cached) task client of the container's shim; NotFound when
        there is no shim for it."""
        with self._lock:
            client = self._clients.get(container_id)
            if client is not None and not client.client.closed:
                return client
        address = self._files(container_id).address()
        if address is None:
            raise NotFound(f"container {container_id}: no {self.name} shim for it")
        try:
            client = TaskClient.dial(address, self.timeout, connect_timeout=2.0)
        except Unavailable as e:
            raise NotFound(f"container {container_id}: its {self.name} shim at {address} is "
                           f"gone: {e}") from e
        with self._lock:
            old = self._clients.pop(container_id, None)
            self._clients[container_id] = client
        if old is not None:
            old.close()
        return client

    def _forget_client(self, container_id: str) -> None:
        with self._lock:
            client = self._clients.pop(container_id, None)
        if client is not None:
            client.close()

    def _where(self, container_id: str, verb: str, e: CrioNativeError) -> CrioNativeError:
        """The shim's error, worded with the container and the handler."""
        return type(e)(f"container {container_id}: {self.name} {verb}: {e}")

    # ---- create --------------------------------------------------------------------

    def create(self, container_id: str, bundle: Path, monitor: MonitorOptions) -> Created:
        if not os.access(self.runtime_path, os.X_OK):
            raise FailedPrecondition(f"runtime handler {self.name}: {self.shim.missing()}")
        bundle = Path(bundle).resolve()
        files = self._files(container_id)
        if files.exists():     # a crashed earlier attempt: clean it first
            self.delete(container_id, force=True)
        files.dir.mkdir(parents=True, mode=0o700)
        try:
            return self._create(container_id, bundle, monitor, files)
        except BaseException:
            self._undo_create(container_id)
            raise

    def _create(self, container_id: str, bundle: Path, monitor: MonitorOptions,
                files: ShimFiles) -> Created:
        # With a terminal the shim owns the pty (kata's is in the VM) and
        # copies it to the stdout FIFO: no stderr, as containerd asks for.
        outputs = ("stdout",) if monitor.terminal else ("stdout", "stderr")
        fifos = {name: files.dir / name for name in outputs}
        if monitor.stdin:
            fifos["stdin"] = files.dir / "stdin"
        shim_log = bundle / SHIM_LOG_FIFO
        with contextlib.suppress(FileNotFoundError):
            shim_log.unlink()
        for path in (*fifos.values(), shim_log):
            os.mkfifo(path, 0o600)
        files.save("", bundle)           # so an undo finds the bundle's files
        # Hold a reader of the shim's log until the relay has its own: the
        # shim blocks opening it until there is one.
        log_reader = os.open(shim_log, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            address = self.shim.start(container_id, bundle, self.create_timeout)
            files.save(address, bundle)
            task = self._task(container_id)
            files.save_pid(task.connect(container_id).shim_pid)
            mon = self._launch_relay(container_id, address, monitor, fifos, shim_log, files)
            files.save_monitor_pid(mon.pid)
        finally:
            os.close(log_reader)
        try:
            created = task.create(container_id, str(bundle), stdin=str(fifos.get("stdin", "")),
                                  stdout=str(fifos["stdout"]), stderr=str(fifos.get("stderr", "")),
                                  terminal=monitor.terminal, timeout=self.create_timeout)
        except CrioNativeError as e:
            stop_monitor(mon)
            raise FailedPrecondition(f"container {container_id}: {self.name} create: "
                                     f"{e}") from e
        except BaseException:
            stop_monitor(mon)
            raise
        try:
            dirs = process_cgroup_dirs(created.pid)
        except OSError:
            dirs = ()      # a VM's task pid is not a host process of the container
        return Created(pid=created.pid, monitor_pid=mon.pid, cgroup_dirs=dirs)

    def _launch_relay(self, container_id: str, address: str, monitor: MonitorOptions,
                      fifos: dict[str, Path], shim_log: Path, files: ShimFiles) -> Monitor:
        argv = [str(self.relay_binary), "--address", address, "--id", container_id,
                "--shim-log", str(shim_log),
                "--shim-log-file", str(files.dir / SHIM_LOG_FILE),
                "--appear-timeout", str(self.create_timeout)]
        for name in ("stdout", "stderr", "stdin"):
            if name in fifos:
                argv += [f"--{name}", str(fifos[name])]
        if monitor.terminal and "stdin" in fifos:
            argv.append("--terminal")      # the end of stdin is ^D typed into the pty
        # The monitor sees pipes either way: the pty is the shim's, so a
        # resize goes to the shim (resize_terminal), not to the monitor.
        return launch_monitor(container_id, argv, monitor.state_dir, monitor.log_path,
                              stdin=monitor.stdin, stdin_once=monitor.stdin_once,
                              timeout=self.create_timeout, binary=self.monitor_binary)

    def _undo_create(self, container_id: str) -> None:
        try:
            self.delete(container_id, force=True)
        except Exception:  # noqa: BLE001 -- the create's own error matters more; logged
            log.exception("runtime handler %s: cannot clean up container %s after its failed "
                          "create", self.name, container_id)

    # ---- lifecycle -----------------------------------------------------------------

    def start(self, container_id: str) -> None:
        try:
            self._task(container_id).start(container_id)
        except CrioNativeError as e:
            raise self._where(container_id, "start", e) from e

    def state(self, container_id: str) -> dict[str, Any]:
        try:
            st = self._task(container_id).state(container_id)
        except CrioNativeError as e:
            raise self._where(container_id, "state", e) from e
        doc: dict[str, Any] = {"ociVersion": "1.0.2", "id": container_id,
                               "status": OCI_STATUS.get(st.status, "unknown"), "pid": st.pid,
                               "bundle": st.bundle}
        if doc["status"] == "stopped":
            doc["exitStatus"] = st.exit_status
        return doc

    def kill(self, container_id: str, signal: int, all_processes: bool = False) -> None:
        try:
            self._task(container_id).kill(container_id, int(signal), all=all_processes)
        except NotFound as e:        # no shim, or the process has already finished
            log.debug("runtime handler %s: kill %s: %s", self.name, container_id, e)
        except CrioNativeError as e:
            raise self._where(container_id, "kill", e) from e

    def delete(self, container_id: str, force: bool = False) -> None:
        files = self._files(container_id)
        if not files.exists():
            return
        address, bundle = files.address(), files.bundle()
        pid = files.shim_pid()
        if pid is not None and not process_start_matches(pid, self.runtime_path):
            pid = None
        try:
            task = self._task(container_id)
        except NotFound:
            task = None
        shared = self._sharing(container_id, address) if address else False
        if task is not None:
            self._delete_task(container_id, task, force, files.monitor_pid())
            if not shared:
                with contextlib.suppress(CrioNativeError):
                    task.shutdown(container_id)   # the shim exits once it has no task
            self._forget_client(container_id)
        elif bundle is not None and address:
            self.shim.cleanup(container_id, bundle, self.timeout)   # the shim died
        if shared:
            log.debug("runtime handler %s: shim %s of container %s still serves other "
                      "containers: left running", self.name, address, container_id)
        elif not wait_process_gone(pid, address, SHUTDOWN_GRACE) and pid is not None:
            # containerd-shim-runc-v2 1.6 lingers ~10 s after Shutdown,
            # retrying to publish its events to TTRPC_ADDRESS, which nobody
            # serves here; its task is deleted, so nothing is lost.
            log.debug("runtime handler %s: shim %d of container %s still runs %.1fs after "
                      "Shutdown: killing it", self.name, pid, container_id, SHUTDOWN_GRACE)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal_mod.SIGKILL)
            if not wait_process_gone(pid, address, 5.0):
                log.warning("runtime handler %s: shim %d of container %s survived SIGKILL",
                            self.name, pid, container_id)
        files.remove()

    def _sharing(self, container_id: str, address: str) -> list[str]:
        """The other containers of ours whose shim is at `address`."""
        try:
            names = os.listdir(self.runtime_root)
        except FileNotFoundError:
            return []
        return [name for name in names
                if name != container_id and ShimFiles(self.runtime_root, name).address() == address]

    def _delete_task(self, container_id: str, task: TaskClient, force: bool,
                     monitor_pid: int | None) -> None:
        """Stop the task (a created one is killed, as `runc delete` does; a
        running one only with force), let the relay take its exit from the
        shim, then delete it: a task deleted before the relay's Wait reached
        the shim would leave the relay without an exit code."""
        try:
            status = OCI_STATUS.get(task.state(container_id).status, "unknown")
        except NotFound:
            return
        except CrioNativeError as e:
            raise self._where(container_id, "delete", e) from e
        if status in ("running", "paused") and not force:
            raise FailedPrecondition(f"container {container_id}: {self.name} delete: the "
                                     f"task is {status}")
        if status != "stopped":
            with contextlib.suppress(CrioNativeError):
                task.kill(container_id, signal_mod.SIGKILL, all=True)
            with contextlib.suppress(CrioNativeError):
                task.wait(container_id, timeout=self.timeout)
        if monitor_pid is not None and not _is_monitor_of(monitor_pid, container_id):
            monitor_pid = None     # gone, or the pid was reused since
        if monitor_pid is not None and not wait_process_gone(monitor_pid, None, RELAY_EXIT_WAIT):
            log.warning("runtime handler %s: the monitor %d of container %s has not recorded "
                        "the exit in %.0fs; deleting the task anyway", self.name, monitor_pid,
                        container_id, RELAY_EXIT_WAIT)
        try:
            task.delete(container_id)
        except NotFound:
            pass
        except CrioNativeError as e:
            # the runc shim answers UNKNOWN for "cannot delete a running process"
            raise FailedPrecondition(f"container {container_id}: {self.name} delete: "
                                     f"{e}") from e

    def pause(self, container_id: str) -> None:
        try:
            self._task(container_id).pause(container_id)
        except CrioNativeError as e:
            raise self._where(container_id, "pause", e) from e

    def resume(self, container_id: str) -> None:
        try:
            self._task(container_id).resume(container_id)
        except CrioNativeError as e:
            raise self._where(container_id, "resume", e) from e

    def update(self, container_id: str, resources: dict[str, Any]) -> None:
        try:
            self._task(container_id).update(container_id, resources)
        except CrioNativeError as e:
            raise self._where(container_id, "update", e) from e

    def resize_terminal(self, container_id: str, width: int, height: int) -> None:
        """The window size of the container's terminal, which the shim holds
        (for attach: the monitor only sees the pty's bytes)."""
        try:
            self._task(container_id).resize_pty(container_id, "", width, height)
        except CrioNativeError as e:
            raise self._where(container_id, "resize", e) from e

    def cgroup_stats(self, container_id: str) -> CgroupStats:
        """The task's cgroup usage from the shim (Task/Stats): kata's
        cgroups are inside its VM, out of the daemon's reach."""
        try:
            return cgroup_stats_from_any(self._task(container_id).stats(container_id))
        except CrioNativeError as e:
            raise self._where(container_id, "stats", e) from e

    # ---- exec ------------------------------------------------------------------------

    def exec_sync(self, container_id: str, process: dict[str, Any],
                  timeout: float | None, cancel: Cancellation | None = None) -> ExecResult:
        """Exec + Start + Wait with FIFOs we read; at the timeout, or once
        `cancel` ends the wait, the exec is SIGKILLed and answered as the
        OCI handlers do."""
        proc, waiter = self._start_exec(container_id, process, tty=False, stdin=False,
                                        stdout=True, stderr=True)
        try:
            assert proc.stdout is not None and proc.stderr is not None
            deadline = time.monotonic() + timeout if timeout else None
            (out, err), timed_out = collect_exec_output([proc.stdout, proc.stderr],
                                                        proc.wait_fd, deadline, cancel=cancel)
        finally:
            proc.close()     # an exec still running is killed; it is deleted
        if timed_out:
            return ExecResult(EXEC_TIMEOUT_EXIT_CODE, b"", EXEC_TIMED_OUT_MESSAGE,
                              timed_out=True)
        if waiter.error is not None:
            raise self._where(container_id, "exec wait", waiter.error)
        return ExecResult(waiter.code, out, err)

    def exec_interactive(self, container_id: str, process: dict[str, Any], *, tty: bool,
                         stdin: bool, stdout: bool, stderr: bool) -> ExecProcess:
        return self._start_exec(container_id, process, tty=tty, stdin=stdin, stdout=stdout,
                                stderr=stderr)[0]

    def _start_exec(self, container_id: str, process: dict[str, Any], *, tty: bool,
                    stdin: bool, stdout: bool, stderr: bool
                    ) -> tuple[ExecProcess, _ExecWaiter]:
        """Exec + Start with FIFOs whose other ends the caller gets; with
        `tty` the shim makes the terminal and copies it to the stdout FIFO
        (stdin goes into it), and a resize becomes ResizePty.  Our own
        writer of each output FIFO is closed once the exec has ended, so
        the caller reads to end of file without a gap before the shim has
        opened its end."""
        task = self._task(container_id)
        exec_id = f"exec-{uuid.uuid4().hex[:16]}"
        fifos = ExecFifos.create(self._files(container_id).dir / exec_id, tty=tty,
                                 stdin=stdin, stdout=stdout, stderr=stderr)
        pid = self._exec_and_start(task, container_id, exec_id, process, tty, fifos)
        waiter = _ExecWaiter(task, container_id, exec_id, before_wake=fifos.close_writers)
        for fd in fifos.ours.values():
            os.set_blocking(fd, False)
        shim_exec = _ShimExec(self, task, container_id, exec_id, fifos, waiter)
        return shim_exec.process(pid), waiter

    def _exec_and_start(self, task: TaskClient, container_id: str, exec_id: str,
                        process: dict[str, Any], tty: bool, fifos: ExecFifos) -> int:
        """The task's Exec and Start: the exec's pid.  On failure the FIFOs
        are closed and removed, and an exec made but not started deleted."""
        started = False
        try:
            try:
                task.exec(container_id, exec_id, {**process, "terminal": tty}, terminal=tty,
                          **fifos.paths())
                started = True
                return task.start(container_id, exec_id).pid
            except CrioNativeError as e:
                raise self._where(container_id, "exec", e) from e
        except BaseException:
            fifos.close_fds()
            if started:
                with contextlib.suppress(CrioNativeError):
                    task.delete(container_id, exec_id)
            fifos.remove()
            raise

    # ---- features ----------------------------------------------------------------------

    def features(self) -> HandlerFeatures:
        # Nothing is promised: kata's VM mounts and user namespaces are not
        # verified here.
        return HandlerFeatures()


def _is_monitor_of(pid: int, container_id: str) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(argv) and argv[0].endswith(b"crio-native-monitor") \
        and container_id.encode() in argv


class _ShimExec:
    """A started exec of a shim task, as the ExecProcess that the caller
    drives: its reap, kill, resize, close_stdin and cleanup."""

    def __init__(self, handler: VmShimHandler, task: TaskClient, container_id: str,
                 exec_id: str, fifos: ExecFifos, waiter: _ExecWaiter):
        self.handler_name, self.timeout = handler.name, handler.timeout
        self.task, self.container_id, self.exec_id = task, container_id, exec_id
        self.fifos, self.waiter = fifos, waiter

    def process(self, pid: int) -> ExecProcess:
        tty, ours = self.fifos.tty, self.fifos.ours
        return ExecProcess(pid=pid, wait_fd=self.waiter.wake_r, stdin=ours.get("stdin"),
                           stdout=ours.get("stdout"), stderr=ours.get("stderr"),
                           reap_fn=self.reap, kill_fn=self.kill, cleanup=self.cleanup,
                           terminal=tty, resize_fn=self.resize if tty else None,
                           close_stdin_fn=None if tty else self.close_stdin)

    def reap(self) -> int:
        self.waiter.join()
        if self.waiter.error is not None:
            log.warning("runtime handler %s: exec %s in %s: %s", self.handler_name,
                        self.exec_id, self.container_id, self.waiter.error)
            return 255
        return self.waiter.code

    def kill(self) -> None:
        with contextlib.suppress(CrioNativeError):
            self.task.kill(self.container_id, signal_mod.SIGKILL, exec_id=self.exec_id)

    def resize(self, width: int, height: int) -> None:
        with contextlib.suppress(CrioNativeError):
            self.task.resize_pty(self.container_id, self.exec_id, width, height)

    def close_stdin(self, fd: int) -> None:
        # The shim may hold its end of the FIFO open for writing too, so
        # our close is no end of file: once it has read what we wrote
        # (the pipe's unread count is 0), CloseIO closes the process's
        # stdin.
        wait_drained(fd, STDIN_DRAIN_WAIT)
        os.close(fd)
        with contextlib.suppress(CrioNativeError):
            self.task.close_io(self.container_id, self.exec_id)

    def cleanup(self) -> None:
        if not self.waiter.done.is_set():
            self.kill()
            self.waiter.join(self.timeout)
        self.fifos.close_writers()
        with contextlib.suppress(OSError):
            os.close(self.waiter.wake_w)      # wake_r is the ExecProcess's wait_fd
        with contextlib.suppress(CrioNativeError):
            self.task.delete(self.container_id, self.exec_id)
        self.fifos.remove()


class _ExecWaiter(threading.Thread):
    def __init__(self, task: TaskClient, container_id: str, exec_id: str,
                 before_wake: Callable[[], None]):
        super().__init__(daemon=True, name=f"exec-wait {exec_id}")
        self.task, self.container_id, self.exec_id = task, container_id, exec_id
        self.before_wake = before_wake
        self.code = -1
        self.error: CrioNativeError | None = None
        self.done = threading.Event()
        # readable once the exec has ended: collect_exec_output's end signal
        self.wake_r, self.wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self.start()

    def run(self) -> None:
        try:
            self.code = self.task.wait(self.container_id, self.exec_id).exit_status
        except CrioNativeError as e:
            self.error = e
        finally:
            self.before_wake()
            self.done.set()
            with contextlib.suppress(OSError):
                os.write(self.wake_w, b"x")


__all__ = ["NAMESPACE", "VmShimHandler"]
