"""The processes the built-in runtime launches, seen from outside: whether
one is still alive, its descendants, collecting its exit, undoing a launch
(of the process or of its monitor), handing its pty to a console socket,
and wording a failed launch as runc does.

A live process is recognised by its pid plus its start time (field 22 of
/proc/PID/stat), so a recycled pid is never mistaken for the container."""
from __future__ import annotations

import contextlib
import logging
import os
import select
import signal as signal_mod
import socket
from typing import Any

from crio_native._native import proc as native_proc
from crio_native.errors import FailedPrecondition, NativeError
from crio_native.linux.procfs import children_of
from crio_native.monitor.launch import Monitor, stop_monitor
from crio_native.monitor.paths import CONTAINER_PID_FILE, EXIT_FILE, MONITOR_PID_FILE

log = logging.getLogger(__name__)


def start_time_of(pid: int) -> int | None:
    """Start time of a live (non-zombie) process, or None."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        stat = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    fields = stat[stat.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def descendants_of(pid: int) -> set[int]:
    """`pid` and every process below it, from /proc/PID/task/TID/children
    (best effort: without CONFIG_PROC_CHILDREN, `pid` alone)."""
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        if p in found:
            continue
        found.add(p)
        todo += children_of(p)
    return found


def launch_error(e: NativeError, spec: dict) -> FailedPrecondition:
    """A failure of the child, worded like runc's."""
    stage = getattr(e, "stage", "")
    process = spec.get("process") or {}
    name = (process.get("args") or [""])[0]
    reason = os.strerror(e.errno).lower() if e.errno else str(e)
    if stage == "lookup":
        if "/" not in name:
            msg = f'exec: "{name}": executable file not found in $PATH'
        else:
            msg = f'exec: "{name}": stat {name}: {reason}'
    elif stage == "cwd":
        msg = f'chdir to cwd ("{process.get("cwd", "/")}") set in config.json failed: {reason}'
    else:
        msg = f"{stage}: {e.strerror}"
    return FailedPrecondition(f"unable to start container process: {msg}")


def console_connect(path: str | os.PathLike[str], spec: dict) -> socket.socket:
    """Connect to the console socket first, so a bad path fails the create
    before anything is made (runc does the same)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(os.fspath(path))
    except OSError as e:
        sock.close()
        raise FailedPrecondition(f"--console-socket {os.fspath(path)}: {e.strerror}") from e
    return sock


def send_console(sock: socket.socket, master: int, path: str | os.PathLike[str]) -> None:
    """Hand the pty master to the console socket (the name runc sends with
    it, "/dev/ptmx", as the payload) and close our copy."""
    try:
        socket.send_fds(sock, [b"/dev/ptmx"], [master])
    except OSError as e:
        raise FailedPrecondition(f"--console-socket {os.fspath(path)}: sending the pty "
                                 f"master: {e.strerror}") from e
    finally:
        os.close(master)


def monitor_alive(mon: dict[str, Any]) -> bool:
    return start_time_of(mon["pid"]) == mon["start_time"]


def wait_monitor_gone(mon: dict[str, Any], timeout: float = 5.0) -> None:
    """A deleted container leaves no monitor: once the container is dead its
    monitor drains the output, writes the exit file and ends (at most ~2 s).
    Waits on a pidfd, checked against the recorded start time after it is
    opened, so a recycled pid is never waited for."""
    try:
        fd = native_proc.pidfd_open(mon["pid"])
    except ProcessLookupError:
        return
    try:
        if monitor_alive(mon) and not select.select([fd], [], [], timeout)[0]:
            log.error("monitor %d of a deleted container is still running", mon["pid"])
            return
    finally:
        os.close(fd)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(mon["pid"], os.WNOHANG)  # ours only when we are its subreaper


def kill_holders(path: str | os.PathLike[str]) -> list[int]:
    """SIGKILL every process that holds the file at `path` open; their pids.
    For a create cut short after the clone and before its record named the
    process: the process then waits at its start barrier, the one thing
    that still leads to it being the barrier fifo it holds open."""
    try:
        target = os.stat(path)
    except FileNotFoundError:
        return []
    name = os.path.basename(path)
    killed = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            link = f"/proc/{pid}/fd/{fd}"
            try:
                if name not in os.readlink(link):
                    continue
                st = os.stat(link)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal_mod.SIGKILL)
                killed.append(int(pid))
                break
    return killed


def undo_monitor(mon: Monitor) -> None:
    """Undo of a monitored launch: no process, no monitor and none of the
    monitor's files in its state dir are left."""
    stop_monitor(mon)
    for name in (EXIT_FILE, CONTAINER_PID_FILE, MONITOR_PID_FILE):
        with contextlib.suppress(FileNotFoundError):
            (mon.state_dir / name).unlink()


def kill_and_reap(pid: int, pidfd: int) -> None:
    """Undo of a launch: the process must not outlive a failed create."""
    try:
        native_proc.pidfd_send_signal(pidfd, signal_mod.SIGKILL)
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)
    reap(pid)


def reap(pid: int) -> int | None:
    """Collect our child's exit status; None when it is not our child."""
    if pid <= 0:
        return None
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return None
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)
