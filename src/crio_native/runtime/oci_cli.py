"""The `oci` runtime handler: runc or crun driven through its command line.

Every container process is a child of its own crio-native-monitor: the
monitor runs `<runtime> create --pid-file F ...` and, being a child
subreaper, adopts the process the runtime leaves at its start barrier
(docs/monitor.md, --container-pid-file).  Everything else is one runtime
command per call, each with a timeout.  The runtime's own messages (JSON
lines with "msg", from `--log-format json`) go into our error messages
(oci_messages.py).  Exec, run to the end or interactive, is in oci_exec.py.

Runtime state lives in `runtime_root` (`--root`); the monitor's files and
the runtime's create log live in the container's monitor state dir."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from crio_native.errors import (CrioNativeError, DeadlineExceeded, FailedPrecondition, Internal,
                                NotFound)
from crio_native.linux import cgroups
from crio_native.linux.mounts import kernel_has_mount_setattr
from crio_native.monitor import launch_monitor
from crio_native.runtime import oci_exec
from crio_native.runtime.handler import (Created, ExecProcess, ExecResult, HandlerFeatures,
                                         MonitorOptions)
from crio_native.runtime.oci_exec import EXEC_TIMED_OUT_MESSAGE, EXEC_TIMEOUT_EXIT_CODE
from crio_native.runtime.oci_messages import runtime_log_messages, runtime_messages

log = logging.getLogger(__name__)

PID_FILE = "container.pid"          # in the monitor's state dir: written by `create`
CREATE_LOG = "runtime-create.log"   # in the monitor's state dir: the runtime's create log
CONSOLE_SOCKET = "console.sock"     # in a private temp dir, for a tty container's create
_UNKNOWN_MARKERS = ("container does not exist",)   # runc; crun: no <root>/<id>, see _unknown


def cgroups_path_of(bundle: Path) -> str | None:
    """linux.cgroupsPath from the bundle's config.json (None when unset)."""
    try:
        spec = json.loads((bundle / "config.json").read_text())
    except FileNotFoundError as e:
        raise FailedPrecondition(f"bundle {bundle}: no config.json") from e
    except ValueError as e:
        raise FailedPrecondition(f"bundle {bundle}: config.json: {e}") from e
    path = (spec.get("linux") or {}).get("cgroupsPath")
    return path if isinstance(path, str) and path else None


def memory_cgroup_dir(cgroups_path: str | None, container_id: str,
                      hierarchies: list[tuple[cgroups.Hierarchy, str]] | None = None,
                      own: dict[str, str] | None = None) -> Path | None:
    """Where runc (cgroupfs driver) puts the container in the hierarchy
    holding the memory controller (the v2 one on a pure v2 host): an
    absolute cgroupsPath is taken from the hierarchy's root; a relative one
    (or the container id when unset) below this process's own cgroup on v1
    and below the *parent* of it on v2, as runc's fs/fs2 drivers do.  None
    for a systemd-style "slice:prefix:name" path or a host without the
    memory controller."""
    path = cgroups_path or container_id
    if ":" in path:
        return None
    hierarchies = cgroups.host_hierarchies() if hierarchies is None else hierarchies
    own = cgroups.own_cgroups() if own is None else own
    v2_only = cgroups.pure_v2(hierarchies)
    for h, mount_root in hierarchies:
        if not (h.version == 2 if v2_only else (h.version == 1 and "memory" in h.controllers)):
            continue
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if path.startswith("/"):
            full = "/" + "/".join(parts)
        else:
            base = h.own_path(own)
            if h.version == 2:
                base = os.path.dirname(base.rstrip("/")) or "/"
            full = "/".join([base.rstrip("/"), *parts]) or "/"
        return h.dir_of(full, mount_root)
    return None


def process_cgroup_dirs(pid: int) -> tuple[Path, ...]:
    """The cgroup directories `pid` is in, one per mounted hierarchy,
    leaving out hierarchy roots (groups the container does not own)."""
    own = cgroups.own_cgroups(Path(f"/proc/{pid}/cgroup").read_text())
    out: list[Path] = []
    for h, mount_root in cgroups.host_hierarchies():
        d = h.dir_of(h.own_path(own), mount_root)
        if d is not None and d != h.mountpoint and d not in out:
            out.append(d)
    return tuple(out)


def features_from_json(doc: dict[str, Any], kernel_has_mount_setattr: bool) -> HandlerFeatures:
    """What a runtime's `features` document lets us promise, conservatively:
    recursive read-only mounts need "rro" and a kernel with mount_setattr
    (5.12); user namespaces need the user namespace and idmapped mounts."""
    linux = doc.get("linux") or {}
    rro = "rro" in (doc.get("mountOptions") or []) and kernel_has_mount_setattr
    idmap = ((linux.get("mountExtensions") or {}).get("idmap") or {}).get("enabled") is True
    userns = "user" in (linux.get("namespaces") or []) and idmap
    return HandlerFeatures(recursive_read_only_mounts=rro, user_namespaces=userns,
                           extra={"oci_features": doc})


class OciCliHandler:
    """A RuntimeHandler over an OCI runtime CLI with runc's command line."""

    def __init__(self, name: str, runtime_path: str | os.PathLike[str],
                 runtime_root: str | os.PathLike[str], *, timeout: float = 30.0,
                 create_timeout: float = 60.0, systemd_cgroup: bool = False,
                 monitor_binary: Path | None = None):
        self.name = name
        self.runtime_path = str(runtime_path)
        self.runtime_root = Path(runtime_root)
        self.timeout = timeout                  # every runtime command but create/exec
        self.create_timeout = create_timeout
        self.systemd_cgroup = systemd_cgroup
        self.monitor_binary = monitor_binary
        self._features: HandlerFeatures | None = None
        self._features_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OciCliHandler({self.name!r}, {self.runtime_path!r}, {str(self.runtime_root)!r})"

    # ---- running the runtime -------------------------------------------------------

    def _argv(self, *args: str, log_file: Path | None = None) -> list[str]:
        cmd = [self.runtime_path, "--root", str(self.runtime_root), "--log-format", "json"]
        if log_file is not None:
            cmd += ["--log", str(log_file)]
        if self.systemd_cgroup:
            cmd.append("--systemd-cgroup")
        return cmd + list(args)

    def _run(self, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
        cmd = self._argv(*args)
        timeout = timeout or self.timeout
        log.debug("runtime handler %s: %s", self.name, shlex.join(cmd))
        try:
            return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=timeout, check=False)
        except FileNotFoundError as e:
            raise self._missing_binary() from e
        except subprocess.TimeoutExpired as e:
            raise DeadlineExceeded(f"runtime handler {self.name}: `{shlex.join(cmd)}` did "
                                   f"not finish in {timeout}s") from e

    def _missing_binary(self) -> FailedPrecondition:
        return FailedPrecondition(f"runtime handler {self.name}: runtime_path "
                                  f"{self.runtime_path}: no such executable")

    def _unknown(self, container_id: str, message: str) -> bool:
        """The runtime does not know the container: runc says so, crun fails
        to open its state; both keep it in <root>/<id>."""
        if any(m in message for m in _UNKNOWN_MARKERS):
            return True
        return not (self.runtime_root / container_id).exists()

    def _failure(self, container_id: str, verb: str,
                 p: subprocess.CompletedProcess) -> CrioNativeError:
        message = runtime_messages(p.stderr) or f"exit status {p.returncode}"
        text = f"container {container_id}: {self.name} {verb}: {message}"
        if self._unknown(container_id, message):
            return NotFound(text)
        return FailedPrecondition(text)

    def _check(self, container_id: str, verb: str, *args: str) -> subprocess.CompletedProcess:
        p = self._run(verb, *args, container_id)
        if p.returncode != 0:
            raise self._failure(container_id, verb, p)
        return p

    # ---- create ------------------------------------------------------------------

    def create(self, container_id: str, bundle: Path, monitor: MonitorOptions) -> Created:
        if not os.access(self.runtime_path, os.X_OK):
            raise self._missing_binary()
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
        argv = self._argv("create", "--bundle", str(bundle), "--pid-file", str(pid_file),
                          *console_args, container_id, log_file=create_log)
        log.debug("runtime handler %s: monitor runs %s", self.name, shlex.join(argv))
        try:
            mon = launch_monitor(container_id, argv, state_dir, monitor.log_path,
                                 stdin=monitor.stdin, stdin_once=monitor.stdin_once,
                                 cgroup_path=str(cgroup_dir) if cgroup_dir else None,
                                 container_pid_file=pid_file, console_socket=console_socket,
                                 timeout=self.create_timeout, binary=self.monitor_binary)
        except Internal as e:
            said = runtime_log_messages(create_log)
            self._undo_create(container_id, pid_file, create_log)
            if not said.split(": ", 1)[0].endswith("create failed"):   # runc says so itself
                said = f"{self.name} create failed: {said or e}"
            raise FailedPrecondition(f"container {container_id}: {said}") from e
        except BaseException:
            self._undo_create(container_id, pid_file, create_log)
            raise
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
        self._check(container_id, "start")

    def state(self, container_id: str) -> dict[str, Any]:
        p = self._check(container_id, "state")
        try:
            doc = json.loads(p.stdout)
        except ValueError as e:
            raise Internal(f"container {container_id}: {self.name} state: not JSON: "
                           f"{p.stdout[:200]!r}") from e
        if not isinstance(doc, dict):
            raise Internal(f"container {container_id}: {self.name} state: not an object")
        return doc

    def kill(self, container_id: str, signal: int, all_processes: bool = False) -> None:
        args = ["--all"] if all_processes else []
        p = self._run("kill", *args, container_id, str(int(signal)))
        if p.returncode == 0:
            return
        error = self._failure(container_id, "kill", p)
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
        p = self._run("delete", *args, container_id)
        if p.returncode == 0:
            return
        error = self._failure(container_id, "delete", p)
        if not isinstance(error, NotFound):
            raise error

    def pause(self, container_id: str) -> None:
        self._check(container_id, "pause")

    def resume(self, container_id: str) -> None:
        self._check(container_id, "resume")

    def update(self, container_id: str, resources: dict[str, Any]) -> None:
        # A file rather than `--resources -`: crun reads "-" as /dev/stdin,
        # which a minimal /dev (the test VM's) does not have.
        with tempfile.NamedTemporaryFile("w", prefix="crn-resources-", suffix=".json") as f:
            json.dump(resources, f)
            f.flush()
            self._check(container_id, "update", "--resources", f.name)

    # ---- exec ----------------------------------------------------------------------

    def exec_sync(self, container_id: str, process: dict[str, Any],
                  timeout: float | None) -> ExecResult:
        return oci_exec.exec_sync(self, container_id, process, timeout)

    def exec_interactive(self, container_id: str, process: dict[str, Any], *, tty: bool,
                         stdin: bool, stdout: bool, stderr: bool) -> ExecProcess:
        """`<runtime> exec --process F` as our child, its stdio (or, with
        `tty`, a pty) handed to the caller: see oci_exec.exec_interactive."""
        return oci_exec.exec_interactive(self, container_id, process, tty=tty, stdin=stdin,
                                         stdout=stdout, stderr=stderr)

    # ---- features ----------------------------------------------------------------------

    def features(self) -> HandlerFeatures:
        with self._features_lock:
            if self._features is None:
                self._features = self._probe_features()
            return self._features

    def _probe_features(self) -> HandlerFeatures:
        try:
            p = self._run("features")
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


__all__ = [
    "EXEC_TIMED_OUT_MESSAGE", "EXEC_TIMEOUT_EXIT_CODE", "OciCliHandler", "features_from_json",
    "memory_cgroup_dir", "process_cgroup_dirs", "runtime_messages",
]
