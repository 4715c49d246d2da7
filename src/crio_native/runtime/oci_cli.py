"""The `oci` runtime handler: runc or crun driven through its command line.

Every container process is a child of its own crio-native-monitor: the
monitor runs `<runtime> create --pid-file F ...` and, being a child
subreaper, adopts the process the runtime leaves at its start barrier
(docs/monitor.md, --container-pid-file).  Everything else is one runtime
command per call, each with a timeout.  The runtime's own messages (JSON
lines with "msg", from `--log-format json`) go into our error messages.

Runtime state lives in `runtime_root` (`--root`); the monitor's files and
the runtime's create log live in the container's monitor state dir."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import shlex
import shutil
import signal as signal_mod
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from crio_native.errors import (CrioNativeError, DeadlineExceeded, FailedPrecondition, Internal,
                                NotFound, Unimplemented)
from crio_native.linux import cgroups
from crio_native.linux.mounts import kernel_has_mount_setattr
from crio_native.monitor import launch_monitor, process_alive
from crio_native._native import proc as native_proc
from crio_native.runtime.handler import (Created, ExecProcess, ExecResult, HandlerFeatures,
                                         MonitorOptions)

log = logging.getLogger(__name__)

PID_FILE = "container.pid"          # in the monitor's state dir: written by `create`
CREATE_LOG = "runtime-create.log"   # in the monitor's state dir: the runtime's create log
EXEC_OUTPUT_LIMIT = 16 * 1024 * 1024  # per stream, as CRI-O's maxExecSyncSize
# As CRI-O (internal/oci/runtime_oci.go ExecSyncContainer, conmon's
# TimedOutMessage): a timed-out ExecSync answers exit code -1 and this text
# on stderr rather than an error, since the kubelet's prober turns an error
# into an Unknown result instead of a failed probe (cri-o PR 3065/3231).
EXEC_TIMEOUT_EXIT_CODE = -1
EXEC_TIMED_OUT_MESSAGE = b"command timed out"
_DRAIN_IDLE = 0.1     # after the exec process ended: stop once output is quiet this long
_DRAIN_MAX = 2.0      # ... or after this long (a background child may hold the pipes)
_UNKNOWN_MARKERS = ("container does not exist",)   # runc; crun: no <root>/<id>, see _unknown


def runtime_messages(output: bytes | str) -> str:
    """The runtime's messages from its stderr or `--log` file: the "msg" of
    each JSON line at level error or worse (every JSON line's if none is),
    plain lines as they are; joined with '; '."""
    text = output.decode(errors="replace") if isinstance(output, bytes) else output
    errors, others = [], []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if isinstance(entry, dict) and "msg" in entry:
            level = str(entry.get("level", "error"))
            (errors if level in ("error", "fatal", "panic") else others).append(str(entry["msg"]))
        else:
            errors.append(line)
    chosen = errors or others
    return "; ".join(dict.fromkeys(chosen))   # unique, in order


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
        if not (v2_only or (h.version == 1 and "memory" in h.controllers)):
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
        if monitor.terminal:
            raise Unimplemented(f"runtime handler {self.name}: containers with a terminal "
                                "(tty) are not supported with OCI runtimes yet")
        if not os.access(self.runtime_path, os.X_OK):
            raise self._missing_binary()
        bundle = Path(bundle)
        state_dir = Path(monitor.state_dir)
        pid_file, create_log = state_dir / PID_FILE, state_dir / CREATE_LOG
        for stale in (pid_file, create_log):
            stale.unlink(missing_ok=True)
        cgroup_dir = memory_cgroup_dir(cgroups_path_of(bundle), container_id)
        argv = self._argv("create", "--bundle", str(bundle), "--pid-file", str(pid_file),
                          container_id, log_file=create_log)
        log.debug("runtime handler %s: monitor runs %s", self.name, shlex.join(argv))
        try:
            mon = launch_monitor(container_id, argv, state_dir, monitor.log_path,
                                 stdin=monitor.stdin, stdin_once=monitor.stdin_once,
                                 cgroup_path=str(cgroup_dir) if cgroup_dir else None,
                                 container_pid_file=pid_file, timeout=self.create_timeout,
                                 binary=self.monitor_binary)
        except Internal as e:
            said = self._read_log(create_log)
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

    @staticmethod
    def _read_log(path: Path) -> str:
        try:
            return runtime_messages(path.read_bytes())
        except OSError:
            return ""

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
        with tempfile.TemporaryDirectory(prefix=f"crn-exec-{container_id[:12]}-") as tmp:
            process_file, pid_file = Path(tmp) / "process.json", Path(tmp) / "exec.pid"
            process_file.write_text(json.dumps(process))
            process_file.chmod(0o600)
            log_file = Path(tmp) / "runtime.log"
            cmd = self._argv("exec", "--process", str(process_file), "--pid-file", str(pid_file),
                             container_id, log_file=log_file)
            log.debug("runtime handler %s: %s", self.name, shlex.join(cmd))
            try:
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE)
            except FileNotFoundError as e:
                raise self._missing_binary() from e
            with proc:
                deadline = time.monotonic() + timeout if timeout else None
                try:
                    out, err, timed_out = _collect(proc, deadline)
                except BaseException:
                    self._kill_exec(container_id, proc, pid_file)
                    raise
                if timed_out:
                    self._kill_exec(container_id, proc, pid_file)
                    return ExecResult(EXEC_TIMEOUT_EXIT_CODE, b"", EXEC_TIMED_OUT_MESSAGE,
                                      timed_out=True)
                code = proc.wait()
                if code != 0 and not pid_file.exists():
                    # the process never started: the runtime's own failure
                    self._reap_exec_orphans(container_id)
                    said = self._read_log(log_file) or runtime_messages(err)
                    raise self._failure(container_id, "exec", subprocess.CompletedProcess(
                        cmd, code, b"", said.encode() or err))
        return ExecResult(code if code >= 0 else 128 - code, out, err)

    def exec_interactive(self, container_id: str, process: dict[str, Any], *, tty: bool,
                         stdin: bool, stdout: bool, stderr: bool) -> ExecProcess:
        """`<runtime> exec --process F` as our child.  Without a terminal the
        runtime hands its stdio (our pipes) to the process and exits with its
        status.  With one, the runtime (not detached, so it can report the
        exit) makes the container's pty and relays it to its own stdio, which
        is the slave of a pty of ours; it takes the window size from there on
        SIGWINCH (runc's --console-socket is only for detached execs)."""
        tmp = Path(tempfile.mkdtemp(prefix=f"crn-exec-{container_id[:12]}-"))
        process_file, pid_file, log_file = tmp / "process.json", tmp / "exec.pid", tmp / "log"
        process_file.write_text(json.dumps({**process, "terminal": tty}))
        process_file.chmod(0o600)
        args = ["exec", "--process", str(process_file), "--pid-file", str(pid_file)]
        if tty:
            args.append("--tty")
        cmd = self._argv(*args, container_id, log_file=log_file)
        log.debug("runtime handler %s: %s", self.name, shlex.join(cmd))
        ours: dict[str, int] = {}
        slave = None
        try:
            if tty:
                master, slave = os.openpty()
                ours.update(stdin=master, stdout=master, pty=master)
                stdio = dict(stdin=slave, stdout=slave, stderr=slave)
            else:
                pipe = subprocess.PIPE
                stdio = dict(stdin=pipe if stdin else subprocess.DEVNULL,
                             stdout=pipe if stdout else subprocess.DEVNULL,
                             stderr=pipe if stderr else subprocess.DEVNULL)
            try:
                proc = subprocess.Popen(cmd, **stdio)
            except FileNotFoundError as e:
                raise self._missing_binary() from e
            for name in ("stdin", "stdout", "stderr"):
                f = getattr(proc, name)
                if f is not None:
                    ours[name] = os.dup(f.fileno())
                    f.close()
        except BaseException:
            for fd in set(ours.values()):
                os.close(fd)
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            if slave is not None:
                os.close(slave)
        for fd in set(ours.values()):
            os.set_blocking(fd, False)

        def reap() -> int:
            code = proc.wait()
            if code != 0 and not pid_file.exists():
                self._reap_exec_orphans(container_id)
                log.warning("runtime handler %s: exec in %s failed: %s", self.name,
                            container_id, self._read_log(log_file))
            return code if code >= 0 else 128 - code

        def resized() -> None:
            with contextlib.suppress(ProcessLookupError):
                if proc.returncode is None:
                    os.kill(proc.pid, signal_mod.SIGWINCH)

        return ExecProcess(pid=proc.pid, wait_fd=native_proc.pidfd_open(proc.pid),
                           reap_fn=reap, kill_fn=lambda: self._kill_exec(container_id, proc,
                                                                         pid_file),
                           cleanup=lambda: shutil.rmtree(tmp, ignore_errors=True),
                           resized=resized if tty else None, **ours)

    def _kill_exec(self, container_id: str, proc: subprocess.Popen, pid_file: Path) -> None:
        """SIGKILL the exec'd process, let the runtime reap it and exit, then
        make sure the runtime's exec process is gone too."""
        pid = _read_pid(pid_file)
        if pid is not None:
            log.debug("runtime handler %s: exec in %s timed out: killing pid %d", self.name,
                      container_id, pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal_mod.SIGKILL)
        try:
            proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._reap_exec_orphans(container_id)
        if pid is not None and process_alive(pid):
            log.warning("runtime handler %s: timed-out exec process %d in container %s "
                        "survived SIGKILL", self.name, pid, container_id)

    def _reap_exec_orphans(self, container_id: str) -> None:
        """Reap what a failed or killed `<runtime> exec` left in the
        container's pid namespace and that was reparented to us.

        crun (1.8.1) leaves its helper in the container's pid namespace,
        the one that failed to exec the process, behind when exec fails:
        its parent is outside that namespace, so it goes to the runtime's
        nearest subreaper (us, when we are one or pid 1), not to the
        container's init.  While it stays an unreaped zombie the namespace
        keeps one pid, and the container's init, once killed (delete
        --force), stays inside the kernel's exit (zap_pid_ns_processes
        waits for every pid of the namespace to be freed): it never becomes
        a zombie, so its monitor never sees an exit.  Only our children in
        the container's pid namespace are touched; one still running is
        reaped by a thread once it ends."""
        own_ns = _pid_ns(os.getpid())
        orphans = [pid for pid in _children() if _pid_ns(pid) not in (None, own_ns)]
        if not orphans:
            return
        try:
            init = int(self.state(container_id).get("pid") or 0)
        except (CrioNativeError, ValueError):
            init = 0
        ns = _pid_ns(init) if init > 0 else None
        for pid in orphans:
            if ns is None or _pid_ns(pid) != ns:
                continue
            log.debug("runtime handler %s: reaping pid %d the runtime's exec left in "
                      "container %s", self.name, pid, container_id)
            if process_alive(pid):
                threading.Thread(target=_reap_quietly, args=(pid, 0), daemon=True,
                                 name=f"reap-exec-orphan-{pid}").start()
            else:
                _reap_quietly(pid, os.WNOHANG)

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


def _children() -> list[int]:
    """Our child processes (zombies included)."""
    me, found = os.getpid(), set()
    try:
        tasks = os.listdir(f"/proc/{me}/task")
        for tid in tasks:   # CONFIG_PROC_CHILDREN: one list per thread
            found.update(int(p) for p in
                         Path(f"/proc/{me}/task/{tid}/children").read_text().split())
        return sorted(found)
    except FileNotFoundError:
        pass
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2:].split()[1]) == me:
            found.add(int(entry))
    return sorted(found)


def _pid_ns(pid: int) -> str | None:
    """The pid namespace of `pid` (also readable for a zombie), or None."""
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def _reap_quietly(pid: int, flags: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, flags)


def _read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return None
    return pid if pid > 0 else None


def _collect(proc: subprocess.Popen, deadline: float | None,
             limit: int = EXEC_OUTPUT_LIMIT) -> tuple[bytes, bytes, bool]:
    """Read the exec's stdout and stderr until both close, the deadline
    passes (timed_out), or the runtime has exited and the output has been
    quiet for a moment (a background child may keep the pipes open)."""
    assert proc.stdout is not None and proc.stderr is not None
    bufs = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
    with selectors.DefaultSelector() as sel:
        for fd in bufs:
            sel.register(fd, selectors.EVENT_READ)
        exited_at: float | None = None
        while sel.get_map():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return bytes(bufs[proc.stdout.fileno()]), bytes(bufs[proc.stderr.fileno()]), True
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at >= _DRAIN_MAX:
                break
            wait = _DRAIN_IDLE if exited_at is not None else 0.2
            if deadline is not None:
                wait = min(wait, max(deadline - now, 0.0))
            ready = sel.select(wait)
            if not ready and exited_at is not None:
                break
            for key, _ in ready:
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fd)
                    continue
                buf = bufs[key.fd]
                if len(buf) < limit:
                    buf += chunk[:limit - len(buf)]
    return bytes(bufs[proc.stdout.fileno()]), bytes(bufs[proc.stderr.fileno()]), False


__all__ = [
    "EXEC_TIMED_OUT_MESSAGE", "EXEC_TIMEOUT_EXIT_CODE", "OciCliHandler", "features_from_json",
    "memory_cgroup_dir", "process_cgroup_dirs", "runtime_messages",
]
