"""The exec side of the `oci` runtime handler (handler.py): `<runtime> exec
--process F` run to the end with its output collected (ExecSync) or left
running with its stdio handed to the caller (Exec), and the cleanup after
an exec that timed out or failed.  OciCliHandler's exec_sync and
exec_interactive delegate here, passing the handler's RuntimeCommand
(command.py)."""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shlex
import shutil
import signal as signal_mod
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from crio_native._native import proc as native_proc
from crio_native.cancellation import Cancellation
from crio_native.errors import CrioNativeError
from crio_native.linux import mountinfo
from crio_native.linux.cgroups import warm as cgroup_warm
from crio_native.linux.procfs import children_of
from crio_native.monitor import process_alive
from crio_native.runtime.exec_output import (EXEC_TIMED_OUT_MESSAGE, EXEC_TIMEOUT_EXIT_CODE)
from crio_native.runtime.handler import ExecProcess, ExecResult
from crio_native.runtime.oci.command import RuntimeCommand, output_until_exit
from crio_native.runtime.oci.messages import runtime_log_messages, runtime_messages
from crio_native.runtime.oci.relayed_tty import relayed_size_reader

log = logging.getLogger(__name__)

# `<runtime> exec` joins the container's cgroups by writing `cgroup.procs`,
# and on a v1 host the first such write after a quiet spell waits an RCU
# grace period (linux/cgroups/warm.py): the process's shared AttachWarmer
# is held from the spawn until the runtime exits, at most this long (runc
# has joined the groups long before; a long exec is not warmed throughout).
ATTACH_WINDOW_SECONDS = 1.0


def exec_sync(runtime: RuntimeCommand, container_id: str, process: dict[str, Any],
              timeout: float | None, warmer: cgroup_warm.AttachWarmer | None = None,
              cancel: Cancellation | None = None) -> ExecResult:
    """OciCliHandler.exec_sync: the runtime's exec as our child, its output
    collected up to EXEC_OUTPUT_LIMIT per stream, killed (with its process
    group) at the timeout or once `cancel` ends the wait.
    `warmer`: the attach warmer to hold while it starts (default: the
    process's shared one)."""
    warmer = cgroup_warm.shared() if warmer is None else warmer
    with tempfile.TemporaryDirectory(prefix=f"crn-exec-{container_id[:12]}-",
                                     dir=exec_files_dir()) as tmp:
        process_file, pid_file = Path(tmp) / "process.json", Path(tmp) / "exec.pid"
        _write_private(process_file, process)
        log_file = Path(tmp) / "runtime.log"
        cmd = runtime.argv("exec", "--process", str(process_file), "--pid-file", str(pid_file),
                            container_id, log_file=log_file)
        log.debug("runtime handler %s: %s", runtime.name, shlex.join(cmd))
        release_warmer = warmer.hold(at_most=ATTACH_WINDOW_SECONDS)
        try:
            with runtime.executable() as executable:
                proc = subprocess.Popen(cmd, executable=executable, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except FileNotFoundError as e:
            release_warmer()
            raise runtime.missing_binary() from e
        except BaseException:
            release_warmer()
            raise
        with proc:
            deadline = time.monotonic() + timeout if timeout else None
            try:
                # the runtime's exit is the exec's (it is not detached)
                out, err, timed_out = output_until_exit(proc, deadline, cancel)
            except BaseException:
                kill_exec(runtime, container_id, proc, pid_file, group=True)
                raise
            finally:
                release_warmer()
            if timed_out:
                kill_exec(runtime, container_id, proc, pid_file, group=True)
                return ExecResult(EXEC_TIMEOUT_EXIT_CODE, b"", EXEC_TIMED_OUT_MESSAGE,
                                  timed_out=True)
            code = proc.wait()
            if code != 0 and not pid_file.exists():
                # the process never started: the runtime's own failure
                reap_exec_orphans(runtime, container_id)
                said = runtime_log_messages(log_file) or runtime_messages(err)
                raise runtime.failure(container_id, "exec", subprocess.CompletedProcess(
                    cmd, code, b"", said.encode() or err))
    return ExecResult(code if code >= 0 else 128 - code, out, err)


def exec_interactive(runtime: RuntimeCommand, container_id: str, process: dict[str, Any], *,
                     tty: bool, stdin: bool, stdout: bool, stderr: bool) -> ExecProcess:
    """OciCliHandler.exec_interactive: `<runtime> exec --process F` as our
    child.  Without a terminal the runtime hands its stdio (our pipes) to
    the process and exits with its status.  With one, the runtime (not
    detached, so it can report the exit) makes the container's pty and
    relays it to its own stdio, which is the slave of a pty of ours; it
    takes the window size from there on SIGWINCH (runc's --console-socket
    is only for detached execs)."""
    tmp = Path(tempfile.mkdtemp(prefix=f"crn-exec-{container_id[:12]}-", dir=exec_files_dir()))
    process_file, pid_file, log_file = tmp / "process.json", tmp / "exec.pid", tmp / "log"
    _write_private(process_file, {**process, "terminal": tty})
    args = ["exec", "--process", str(process_file), "--pid-file", str(pid_file)]
    if tty:
        args.append("--tty")
    cmd = runtime.argv(*args, container_id, log_file=log_file)
    log.debug("runtime handler %s: %s", runtime.name, shlex.join(cmd))
    ours: dict[str, Any] = {}
    slave = None
    release_warmer = cgroup_warm.shared().hold(at_most=ATTACH_WINDOW_SECONDS)
    try:
        if tty:
            master, slave = os.openpty()
            ours.update(stdin=master, stdout=master, pty=master)
            stdio: dict[str, Any] = dict(stdin=slave, stdout=slave, stderr=slave)
        else:
            pipe = subprocess.PIPE
            stdio = dict(stdin=pipe if stdin else subprocess.DEVNULL,
                         stdout=pipe if stdout else subprocess.DEVNULL,
                         stderr=pipe if stderr else subprocess.DEVNULL)
        try:
            with runtime.executable() as executable:
                proc = subprocess.Popen(cmd, executable=executable, **stdio)
        except FileNotFoundError as e:
            raise runtime.missing_binary() from e
        for name in ("stdin", "stdout", "stderr"):
            f = getattr(proc, name)
            if f is not None:
                ours[name] = os.dup(f.fileno())
                f.close()
    except BaseException:
        release_warmer()
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
        release_warmer()
        if code != 0 and not pid_file.exists():
            reap_exec_orphans(runtime, container_id)
            log.warning("runtime handler %s: exec in %s failed: %s", runtime.name,
                        container_id, runtime_log_messages(log_file))
        return code if code >= 0 else 128 - code

    def resized() -> None:
        with contextlib.suppress(ProcessLookupError):
            if proc.returncode is None:
                os.kill(proc.pid, signal_mod.SIGWINCH)

    wait_fd = native_proc.pidfd_open(proc.pid)
    return ExecProcess(pid=proc.pid, wait_fd=wait_fd,
                       reap_fn=reap, kill_fn=lambda: kill_exec(runtime, container_id, proc,
                                                               pid_file),
                       cleanup=lambda: shutil.rmtree(tmp, ignore_errors=True),
                       resized=resized if tty else None,
                       relayed_size=relayed_size_reader(proc.pid, wait_fd) if tty else None,
                       **ours)


# Where an exec's files go (the process document, runc's --pid-file and
# --log): a tmpfs.  runc writes its pid file with O_SYNC (createPidFile)
# and opens its log with O_SYNC, and each exec makes and removes a
# directory and three files: on a disk filesystem (/tmp on ext4, as on
# this project's hosts) that is journal work on every exec (bench
# runc_exec: 0.3 ms less of the daemon's CPU per exec on tmpfs; the
# latency moved less than the noise here).  The files live only as long
# as the exec, so nothing is lost with the tmpfs.
_TMPFS_CANDIDATES = ("/dev/shm", "/run")


@functools.lru_cache(maxsize=1)
def exec_files_dir() -> str | None:
    """The first of _TMPFS_CANDIDATES that is a writable tmpfs mount point,
    else None (tempfile's default directory)."""
    try:
        with open("/proc/self/mountinfo") as f:
            mounts = f.read()
    except OSError:
        return None
    for candidate in tmpfs_mount_points(mounts, _TMPFS_CANDIDATES):
        if os.access(candidate, os.W_OK | os.X_OK):
            return candidate
    return None


def tmpfs_mount_points(text: str, candidates: Sequence[str]) -> list[str]:
    """Those of `candidates`, in order, that /proc/self/mountinfo's text
    shows as tmpfs mount points (the last mount on a point counts)."""
    fstype = mountinfo.fstype_at(mountinfo.parse(text))
    return [c for c in candidates if fstype.get(c) == "tmpfs"]


def _write_private(path: Path, doc: dict[str, Any]) -> None:
    """`doc` as JSON in a new file only we can read (it holds the env)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with open(fd, "w") as f:
        f.write(json.dumps(doc))


def kill_exec(runtime: RuntimeCommand, container_id: str, proc: subprocess.Popen,
              pid_file: Path, group: bool = False) -> None:
    """SIGKILL the exec'd process (with `group`, its process group too when
    it leads one: runc's exec makes it a session leader), let the runtime
    reap it and exit, then make sure the runtime's exec process is gone too."""
    pid = _started_pid(proc, pid_file)
    if pid is not None and proc.poll() is None:
        log.debug("runtime handler %s: exec in %s timed out or cancelled: killing pid %d",
                  runtime.name, container_id, pid)
        with contextlib.suppress(ProcessLookupError):
            # the runtime runs on, so it has not reaped the process (it
            # waits for it): the pid, and a group named after it, are
            # still the exec's
            if group and os.getpgid(pid) == pid:
                os.killpg(pid, signal_mod.SIGKILL)
            os.kill(pid, signal_mod.SIGKILL)
    try:
        proc.wait(timeout=2.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    reap_exec_orphans(runtime, container_id)
    if pid is not None and process_alive(pid):
        log.warning("runtime handler %s: timed-out exec process %d in container %s "
                    "survived SIGKILL", runtime.name, pid, container_id)


# A cancelled ExecSync can be killed while the runtime is still starting its
# process (no pid file yet): killing the runtime then would leave the
# process it is about to start running in the container, so the kill waits
# for the pid file or the runtime's exit, at most this long (then the
# runtime alone is killed, as before).
START_WAIT_SECONDS = 10.0
_START_POLL_SECONDS = 0.005


def _started_pid(proc: subprocess.Popen, pid_file: Path) -> int | None:
    """The exec'd process's pid from the runtime's pid file, once written;
    None when the runtime exits first or START_WAIT_SECONDS pass."""
    deadline = time.monotonic() + START_WAIT_SECONDS
    while (pid := _read_pid(pid_file)) is None and proc.poll() is None:
        if time.monotonic() >= deadline:
            return None
        time.sleep(_START_POLL_SECONDS)
    return pid


def reap_exec_orphans(runtime: RuntimeCommand, container_id: str) -> None:
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
    orphans = [pid for pid in sorted(children_of(os.getpid(), complete=True))
               if _pid_ns(pid) not in (None, own_ns)]
    if not orphans:
        return
    try:
        init = int(runtime.state(container_id).get("pid") or 0)
    except (CrioNativeError, ValueError):
        init = 0
    ns = _pid_ns(init) if init > 0 else None
    for pid in orphans:
        if ns is None or _pid_ns(pid) != ns:
            continue
        log.debug("runtime handler %s: reaping pid %d the runtime's exec left in "
                  "container %s", runtime.name, pid, container_id)
        if process_alive(pid):
            threading.Thread(target=_reap_quietly, args=(pid, 0), daemon=True,
                             name=f"reap-exec-orphan-{pid}").start()
        else:
            _reap_quietly(pid, os.WNOHANG)


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
