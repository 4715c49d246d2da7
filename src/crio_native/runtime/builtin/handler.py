"""The built-in runtime behind the RuntimeHandler interface (runtime/handler.py).

Containers are launched by their own crio-native-monitor from the plan the
runtime wrote (BuiltinRuntime.create_monitored), so the monitor is their
parent.  ExecSync processes are different: short-lived, with their output
collected here, they are children of this process, launched from an exec
plan into the container's namespaces and cgroups."""
from __future__ import annotations

import contextlib
import os
import signal as signal_mod
import time
from pathlib import Path
from typing import Any

from crio_native._native import proc as native_proc
from crio_native.cancellation import Cancellation
from crio_native.config import Config
from crio_native.errors import FailedPrecondition, NotFound
from crio_native.linux import apparmor, landlock
from crio_native.linux.mounts import kernel_has_mount_setattr
from crio_native.runtime.builtin.container import BuiltinRuntime
from crio_native.runtime.builtin.features import user_namespaces_supported
from crio_native.runtime.builtin.pod import pinned_pod_from_config
from crio_native.runtime.pod_half import DelegatedPodHalf, PodHalf
from crio_native.runtime.registry import runtime_root_of
from crio_native.runtime.exec_output import collect_exec_output
from crio_native.runtime.handler import (Created, ExecProcess, ExecResult, HandlerFeatures,
                                         MonitorOptions, RuntimeHandler)


class BuiltinHandler(DelegatedPodHalf, RuntimeHandler):
    """RuntimeHandler over BuiltinRuntime, state under `root`, cgroups at or
    below `cgroup_root` (None: the runtime's default); pods through `pod`
    (runtime/builtin/pod.py; None: a handler for containers alone)."""

    def __init__(self, name: str, root: str | os.PathLike[str], cgroup_root: str | None = None,
                 pod: PodHalf | None = None, cgroup_driver: str = "cgroupfs"):
        self.name = name
        self.runtime = BuiltinRuntime(root, cgroup_root, cgroup_driver)
        self.pod = pod

    @classmethod
    def from_config(cls, name: str, config: Config) -> "BuiltinHandler":
        """The handler of `runtime.runtimes.<name>` (registry.HANDLER_TYPES)."""
        return cls(name, runtime_root_of(name, config), config.runtime.cgroup_root or None,
                   pinned_pod_from_config(config), config.runtime.cgroup_manager)

    # ---- the container half -----------------------------------------------------

    def create(self, container_id: str, bundle: Path, monitor: MonitorOptions) -> Created:
        return self.runtime.create_monitored(container_id, bundle, monitor)

    def start(self, container_id: str) -> None:
        self.runtime.start(container_id)

    def state(self, container_id: str) -> dict[str, Any]:
        return self.runtime.state(container_id)

    def kill(self, container_id: str, signal: int, all_processes: bool = False) -> None:
        with contextlib.suppress(FailedPrecondition, ProcessLookupError):  # already gone
            if all_processes:
                self.runtime.kill_all(container_id, signal)
            else:
                self.runtime.kill(container_id, signal)

    def delete(self, container_id: str, force: bool = False) -> None:
        try:
            self.runtime.delete(container_id, force)
        except NotFound:
            pass

    def exec_sync(self, container_id: str, process: dict[str, Any],
                  timeout: float | None, cancel: Cancellation | None = None) -> ExecResult:
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        try:
            with open(os.devnull, "rb") as null:
                pid = self.runtime.exec(container_id, process,
                                        stdio=(null.fileno(), out_w, err_w))
        except BaseException:
            for fd in (out_r, err_r):
                os.close(fd)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        try:
            return _collect(pid, out_r, err_r, timeout, cancel)
        finally:
            os.close(out_r)
            os.close(err_r)

    def exec_interactive(self, container_id: str, process: dict[str, Any], *, tty: bool,
                         stdin: bool, stdout: bool, stderr: bool) -> ExecProcess:
        """The process is our child (reaped by ExecProcess.reap); with `tty`
        its stdio is the slave of a new pty, made its controlling tty."""
        ours: dict[str, Any] = {}
        theirs: list[int] = []
        try:
            if tty:
                master, slave = os.openpty()     # both O_CLOEXEC (non-inheritable)
                ours.update(stdin=master, stdout=master, pty=master)
                theirs.append(slave)
                stdio = (slave, slave, slave)
                process = {**process, "terminal": True}
            else:
                null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
                theirs.append(null)
                ends = []
                for name, wanted, reading in (("stdin", stdin, True), ("stdout", stdout, False),
                                              ("stderr", stderr, False)):
                    if not wanted:
                        ends.append(null)
                        continue
                    r, w = os.pipe2(os.O_CLOEXEC)
                    ours[name], child_end = (w, r) if reading else (r, w)
                    theirs.append(child_end)
                    ends.append(child_end)
                stdio = (ends[0], ends[1], ends[2])
            pid = self.runtime.exec(container_id, process, stdio=stdio)
        except BaseException:
            for fd in set(ours.values()):
                os.close(fd)
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        for fd in set(ours.values()):
            os.set_blocking(fd, False)
        return ExecProcess(pid=pid, wait_fd=native_proc.pidfd_open(pid), **ours)

    def pause(self, container_id: str) -> None:
        self.runtime.pause(container_id)

    def resume(self, container_id: str) -> None:
        self.runtime.resume(container_id)

    def update(self, container_id: str, resources: dict[str, Any]) -> None:
        self.runtime.update(container_id, resources)

    def features(self) -> HandlerFeatures:
        return HandlerFeatures(recursive_read_only_mounts=kernel_has_mount_setattr(),
                               user_namespaces=user_namespaces_supported(),
                               landlock_abi=landlock.abi_version(),
                               apparmor=apparmor.enabled())


def _collect(pid: int, out_r: int, err_r: int, timeout: float | None,
             cancel: Cancellation | None = None) -> ExecResult:
    """Collect the exec'd process's stdout and stderr (exec_output), then
    reap it; at the deadline, or once the caller has given up (`cancel`),
    it is SIGKILLed first.  `pid` is our unreaped child, so its pid cannot
    be recycled."""
    deadline = None if timeout is None else time.monotonic() + timeout
    pidfd = native_proc.pidfd_open(pid)
    timed_out = True    # until the collector says otherwise: a failure kills too
    try:
        (out, err), timed_out = collect_exec_output([out_r, err_r], pidfd, deadline,
                                                    cancel=cancel)
    finally:
        os.close(pidfd)
        if timed_out:
            _kill_exec(pid)
        _, status = os.waitpid(pid, 0)
    code = 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    return ExecResult(code, out, err, timed_out)


def _kill_exec(pid: int) -> None:
    """SIGKILL the exec'd process and what it started in its process group:
    the launcher made it a session leader (setsid in launch.c), so the
    group's id is its pid, which stays ours while it is unreaped.  Before
    its setsid there is no such group, and the process alone is killed."""
    try:
        os.killpg(pid, signal_mod.SIGKILL)
        return
    except ProcessLookupError:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal_mod.SIGKILL)
