"""An OCI runtime's command line (runc's; crun takes the same) as one `oci`
handler runs it: the global flags (--root, --log-format json, --log,
--systemd-cgroup) ahead of every command, a timeout on each, and the
runtime's failures turned into our errors, with its own messages
(messages.py) in them.  The handler (handler.py) and its exec paths
(exec.py) both drive the runtime through a RuntimeCommand."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ContextManager

from crio_native._native import proc as native_proc
from crio_native.cancellation import Cancellation
from crio_native.errors import (CrioNativeError, DeadlineExceeded, FailedPrecondition, Internal,
                                NotFound)
from crio_native.runtime.exec_output import collect_exec_output
from crio_native.runtime.oci import sealed
from crio_native.runtime.oci.messages import runtime_messages

log = logging.getLogger(__name__)

_UNKNOWN_MARKERS = ("container does not exist",)   # runc; crun: no <root>/<id>, see _unknown


def output_until_exit(proc: subprocess.Popen, deadline: float | None,
                      cancel: Cancellation | None = None) -> tuple[bytes, bytes, bool]:
    """`proc`'s stdout and stderr (both pipes), read until it exits (seen on
    a pidfd, no polling) or `deadline` (monotonic) passes or `cancel` ends
    the wait; the bool says the wait ended first.  The caller kills on a
    timeout, a cancel or an error."""
    assert proc.stdout is not None and proc.stderr is not None
    exited = native_proc.pidfd_open(proc.pid)
    try:
        (out, err), timed_out = collect_exec_output(
            [proc.stdout.fileno(), proc.stderr.fileno()], exited, deadline, cancel=cancel)
    finally:
        os.close(exited)
    return out, err, timed_out


def run_to_end(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    """subprocess.run(cmd, capture_output=True, timeout=timeout), waiting
    for the exit on a pidfd: subprocess's own wait with a timeout polls
    waitpid with sleeps (0.5 ms, doubling), which added about a millisecond
    to every runtime command, `start` in each pod start among them.
    TimeoutExpired (the command killed) past `timeout`."""
    deadline = time.monotonic() + timeout
    with subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as proc:
        try:
            out, err, timed_out = output_until_exit(proc, deadline)
        except BaseException:
            proc.kill()
            raise
        if timed_out:
            proc.kill()
            proc.wait()
            raise subprocess.TimeoutExpired(cmd, timeout, out, err)
        return subprocess.CompletedProcess(cmd, proc.wait(), out, err)


@dataclass(frozen=True)
class RuntimeCommand:
    """How the handler called `name` runs its runtime binary."""

    name: str                       # the handler's, for messages
    runtime_path: str
    runtime_root: Path              # --root: the runtime's state
    timeout: float = 30.0           # every runtime command but create/exec
    systemd_cgroup: bool = False
    sealed_copy: bool = True        # `exec` from a sealed copy (sealed.py)

    def argv(self, *args: str, log_file: Path | None = None) -> list[str]:
        cmd = [self.runtime_path, "--root", str(self.runtime_root), "--log-format", "json"]
        if log_file is not None:
            cmd += ["--log", str(log_file)]
        if self.systemd_cgroup:
            cmd.append("--systemd-cgroup")
        return cmd + list(args)

    def executable(self) -> ContextManager[str]:
        """The file to execve for argv()'s command, valid inside the block:
        a sealed in-memory copy of the runtime (sealed.py), so that its
        `init` (exec) skips cloning itself; argv[0] stays runtime_path."""
        if not self.sealed_copy:
            return contextlib.nullcontext(self.runtime_path)
        return sealed.shared(self.runtime_path).executable()

    def run(self, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
        cmd = self.argv(*args)
        timeout = timeout or self.timeout
        log.debug("runtime handler %s: %s", self.name, shlex.join(cmd))
        try:
            return run_to_end(cmd, timeout)
        except FileNotFoundError as e:
            raise self.missing_binary() from e
        except subprocess.TimeoutExpired as e:
            raise DeadlineExceeded(f"runtime handler {self.name}: `{shlex.join(cmd)}` did "
                                   f"not finish in {timeout}s") from e

    def check(self, container_id: str, verb: str, *args: str) -> subprocess.CompletedProcess:
        """`<runtime> verb args... container_id`, its failure raised."""
        p = self.run(verb, *args, container_id)
        if p.returncode != 0:
            raise self.failure(container_id, verb, p)
        return p

    def state(self, container_id: str) -> dict[str, Any]:
        """`<runtime> state`: the container's OCI state document."""
        p = self.check(container_id, "state")
        try:
            doc = json.loads(p.stdout)
        except ValueError as e:
            raise Internal(f"container {container_id}: {self.name} state: not JSON: "
                           f"{p.stdout[:200]!r}") from e
        if not isinstance(doc, dict):
            raise Internal(f"container {container_id}: {self.name} state: not an object")
        return doc

    def missing_binary(self) -> FailedPrecondition:
        return FailedPrecondition(f"runtime handler {self.name}: runtime_path "
                                  f"{self.runtime_path}: no such executable")

    def failure(self, container_id: str, verb: str,
                p: subprocess.CompletedProcess) -> CrioNativeError:
        """The error of a failed `<runtime> verb`: NotFound when the runtime
        does not know the container, else FailedPrecondition."""
        message = runtime_messages(p.stderr) or f"exit status {p.returncode}"
        text = f"container {container_id}: {self.name} {verb}: {message}"
        if self._unknown(container_id, message):
            return NotFound(text)
        return FailedPrecondition(text)

    def _unknown(self, container_id: str, message: str) -> bool:
        """The runtime does not know the container: runc says so, crun fails
        to open its state; both keep it in <root>/<id>."""
        if any(m in message for m in _UNKNOWN_MARKERS):
            return True
        return not (self.runtime_root / container_id).exists()
