"""The on-disk state of the built-in runtime's containers, one directory per
container under a root directory (like runc --root):

    <root>/<id>/state.json   written atomically (temp file, rename); not
                             fsync'd: it describes processes, which do not
                             survive a crash of the machine either, and
                             the root is on tmpfs (runroot) by default
    <root>/<id>/exec.fifo    the start barrier: the created process waits on
                             it; `start` writes one byte and removes it
    <root>/<id>/plan         create_monitored: the launch plan the monitor
                             reads (--plan) and launches as its own child
    <root>/<id>/start.result startContainer hooks only: the process reports a
                             failing hook there; `start` reads it

A record is the OCI state (ociVersion, id, status, pid, bundle, annotations)
plus keys of our own, which start with '_' (and `created`).

A live process is recognised by its pid plus its start time (process.py), so
a recycled pid is never mistaken for the container."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable

from crio_native._native import launch as native_launch
from crio_native._native import proc as native_proc
from crio_native.errors import (AlreadyExists, FailedPrecondition, InvalidArgument,
                                NativeError, NotFound)
from crio_native.linux import cgroups
from crio_native.runtime.builtin.process import start_time_of
from crio_native.state.files import read_json

OCI_VERSION = "1.2.0"
ID_RE = re.compile(r"^[\w+\-.]+$", re.ASCII)
STATE_FILE = "state.json"
FIFO = "exec.fifo"
PLAN_FILE = "plan"
START_RESULT = "start.result"


def check_id(container_id: str) -> None:
    if not isinstance(container_id, str) or not ID_RE.match(container_id) \
            or container_id in (".", ".."):
        raise InvalidArgument(f"id: invalid container id {container_id!r} "
                              "(letters, digits, '_', '+', '-' and '.' only)")


# ---- the state dir and its record ---------------------------------------------

def state_dir(root: Path, container_id: str) -> Path:
    check_id(container_id)
    return root / container_id


def make_state_dir(root: Path, container_id: str, start_result: bool,
                   undo: contextlib.ExitStack) -> Path:
    """The container's dir with its start barrier, and with the start result
    fifo when `start_result` (startContainer hooks); its removal goes on
    `undo`."""
    d = state_dir(root, container_id)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        d.mkdir(mode=0o700)
    except FileExistsError:
        raise AlreadyExists(f"container {container_id!r} already exists") from None
    undo.callback(shutil.rmtree, d, True)
    os.mkfifo(d / FIFO, 0o600)
    if start_result:
        os.mkfifo(d / START_RESULT, 0o600)
    return d


def write_state(root: Path, container_id: str, state: dict[str, Any]) -> None:
    """Temp file, rename: a reader sees the old record or the new one."""
    d = state_dir(root, container_id)
    tmp = f"{d}/.{STATE_FILE}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, json.dumps(state, separators=(",", ":")).encode())
    finally:
        os.close(fd)
    os.replace(tmp, f"{d}/{STATE_FILE}")


def read_state(root: Path, container_id: str) -> dict[str, Any]:
    try:
        return read_json(f"{state_dir(root, container_id)}/{STATE_FILE}")
    except FileNotFoundError:
        raise NotFound(f"container {container_id!r} does not exist") from None


def list_ids(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir())


def write_plan(d: Path, plan: bytes) -> Path:
    """The launch plan of create_monitored, for the monitor's --plan."""
    path = d / PLAN_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with open(fd, "wb") as f:
        f.write(plan)
    return path


def oci_state_from_record(state: dict[str, Any]) -> dict[str, Any]:
    """The OCI state fields of a record (internal keys start with '_')."""
    return {k: v for k, v in state.items() if not k.startswith("_") and k != "created"}


def cgroup_dirs_of(state: dict[str, Any]) -> list[Path]:
    """The cgroups the container's process was put in (one per hierarchy)."""
    return [Path(p) for p in state.get("_cgroup_dirs", [])]


# ---- the process the record names ---------------------------------------------

def is_alive(state: dict[str, Any]) -> bool:
    pid = state.get("pid") or 0
    return pid > 0 and start_time_of(pid) == state.get("_start_time")


def refresh_status(root: Path, container_id: str, state: dict[str, Any],
                   is_frozen: Callable[[], bool] | None = None) -> dict[str, Any]:
    """The record `state` with its status brought up to date.  `is_frozen`:
    the check of its freezer, where the caller keeps one (exec_cache)."""
    if state["status"] != "creating":
        if not is_alive(state):
            state["status"] = "stopped"
        elif (state_dir(root, container_id) / FIFO).exists():
            state["status"] = "created"
        elif is_frozen() if is_frozen is not None else cgroups.is_frozen(cgroup_dirs_of(state)):
            state["status"] = "paused"
        else:
            state["status"] = "running"
    if state["status"] == "stopped":
        state["pid"] = 0
    return state


def open_pidfd(container_id: str, state: dict[str, Any]) -> int:
    """A pidfd for the container's process, checked against the recorded
    start time after opening, so it cannot name a recycled pid."""
    if not is_alive(state):
        raise FailedPrecondition(f"container {container_id!r} is not running")
    try:
        fd = native_proc.pidfd_open(state["pid"])
    except ProcessLookupError:
        # it ended (and was reaped) between the check and the open
        raise FailedPrecondition(f"container {container_id!r} is not running") from None
    if not is_alive(state):
        os.close(fd)
        raise FailedPrecondition(f"container {container_id!r} is not running")
    return fd


# ---- the start barrier ----------------------------------------------------------

def release(root: Path, container_id: str) -> None:
    """Let the created process go on to its program: one byte through the
    barrier, which then goes (its absence means started)."""
    fifo = state_dir(root, container_id) / FIFO
    try:
        native_launch.release(fifo)
    except NativeError as e:
        if e.errno == errno.ENXIO:
            raise _not_waiting(container_id) from e
        raise
    fifo.unlink()


def release_with_state(root: Path, container_id: str, doc: bytes) -> bytes:
    """Release a process that runs startContainer hooks: `doc` (the state
    JSON its hooks get) goes through the barrier, then the start result is
    read to its EOF, which comes once the process has exec'd its program
    (nothing was written) or has reported a failed hook and exited.
    Returns what it reported."""
    d = state_dir(root, container_id)
    # opened before the release: the process holds the only writer
    rfd = os.open(d / START_RESULT, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        try:
            wfd = os.open(d / FIFO, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            if e.errno == errno.ENXIO:
                raise _not_waiting(container_id) from e
            raise
        try:
            os.set_blocking(wfd, True)
            view = memoryview(doc)
            while view:
                view = view[os.write(wfd, view):]
        finally:
            os.close(wfd)
        (d / FIFO).unlink()
        os.set_blocking(rfd, True)
        report = b""
        while chunk := os.read(rfd, 64):
            report += chunk
    finally:
        os.close(rfd)
    (d / START_RESULT).unlink(missing_ok=True)
    return report


def _not_waiting(container_id: str) -> FailedPrecondition:
    """ENXIO opening the barrier: nobody has it open for reading."""
    return FailedPrecondition(f"container {container_id!r} is no longer waiting to start")
