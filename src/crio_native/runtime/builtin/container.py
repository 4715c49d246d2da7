"""Container lifecycle of the built-in runtime: create, start, state, kill,
delete, with the OCI state JSON persisted under a root directory.

    <root>/<id>/state.json   written atomically (temp file, fsync, rename)
    <root>/<id>/exec.fifo    the start barrier: the created process waits on
                             it; `start` writes one byte and removes it

A live process is recognised by its pid plus its start time (field 22 of
/proc/PID/stat), so a recycled pid is never mistaken for the container."""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import select
import shutil
import signal as signal_mod
import time
from pathlib import Path
from typing import Any

from crio_native._native import launch as native_launch
from crio_native._native import proc as native_proc
from crio_native.errors import (AlreadyExists, FailedPrecondition, InvalidArgument, NativeError,
                                NotFound)
from crio_native.linux import cgroups
from crio_native.runtime.builtin.hooks import CREATE_KINDS, hook_from_json, parse_hooks, run_hooks
from crio_native.runtime.builtin.plan import (HostFacts, exec_records, has_cgroup_mount, load_spec,
                                             plan_records)
from crio_native.runtime.builtin.records import Rec, Record, encode, rec

log = logging.getLogger(__name__)

OCI_VERSION = "1.2.0"
ID_RE = re.compile(r"^[\w+\-.]+$", re.ASCII)
STATE_FILE = "state.json"
FIFO = "exec.fifo"
# Read when no cgroup root is given explicitly, so test harnesses and
# benchmarks can move every runtime they start without plumbing a flag.
CGROUP_ROOT_ENV = "CRIO_NATIVE_CGROUP_ROOT"


def check_id(container_id: str) -> None:
    if not isinstance(container_id, str) or not ID_RE.match(container_id) \
            or container_id in (".", ".."):
        raise InvalidArgument(f"id: invalid container id {container_id!r} "
                              "(letters, digits, '_', '+', '-' and '.' only)")


def _start_time(pid: int) -> int | None:
    """Start time of a live (non-zombie) process, or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


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


def container_cgroups(spec: dict, container_id: str,
                      cgroup_root: str = "") -> cgroups.CgroupPlan | None:
    """The container's cgroups: linux.cgroupsPath, or the id when resources
    or a cgroup mount ask for groups of its own; none when nothing does.
    All of them lie at or below `cgroup_root` ("" = our own cgroup)."""
    linux = spec.get("linux") or {}
    resources = linux.get("resources") or {}
    wants = resources or has_cgroup_mount(spec)
    path = linux.get("cgroupsPath") or (container_id if wants else None)
    if not path:
        return None
    return cgroups.plan_cgroups(path, resources, root=cgroup_root)


def cgroup_join_records(dirs: list[Path]) -> list[Record]:
    """Enter a running container's groups: clone3 into the one v2 group on a
    pure v2 host, else the parent writes each cgroup.procs."""
    if len(dirs) == 1 and (dirs[0] / "cgroup.controllers").exists():
        return [rec(Rec.CGROUP_INTO, str(dirs[0]))]
    return [rec(Rec.CGROUP_PROCS, str(d / "cgroup.procs")) for d in dirs]


def cgroup_records(plan: cgroups.CgroupPlan) -> list[Record]:
    if plan.into is not None:
        return [rec(Rec.CGROUP_INTO, str(plan.into))]
    return [rec(Rec.CGROUP_PROCS, str(p)) for p in plan.procs]


def resolve_cgroup_root(cgroup_root: str | None) -> str:
    """The cgroup root to use: the explicit value, else $CRIO_NATIVE_CGROUP_ROOT,
    else "" (this process's own cgroup); validated and normalised."""
    if cgroup_root is not None:
        return cgroups.check_root(cgroup_root, "cgroup root")
    return cgroups.check_root(os.environ.get(CGROUP_ROOT_ENV, ""), CGROUP_ROOT_ENV)


class BuiltinRuntime:
    """The built-in runtime, with its state under `root` (like runc --root)
    and container cgroups at or below `cgroup_root` (runtime.cgroup_root)."""

    def __init__(self, root: str | os.PathLike[str], cgroup_root: str | None = None):
        self.root = Path(root)
        self.cgroup_root = resolve_cgroup_root(cgroup_root)

    # ---- state files -------------------------------------------------------

    def _dir(self, container_id: str) -> Path:
        check_id(container_id)
        return self.root / container_id

    def _write_state(self, container_id: str, state: dict[str, Any], sync: bool = True) -> None:
        """Temp file, fsync, rename.  The "creating" record skips the fsync:
        losing it in a crash leaves a directory that delete() still removes."""
        d = self._dir(container_id)
        tmp = d / f".{STATE_FILE}.tmp"
        with open(tmp, "w") as f:
            json.dump(state, f)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, d / STATE_FILE)

    def _read_state(self, container_id: str) -> dict[str, Any]:
        try:
            return json.loads((self._dir(container_id) / STATE_FILE).read_text())
        except FileNotFoundError:
            raise NotFound(f"container {container_id!r} does not exist") from None

    def _alive(self, state: dict[str, Any]) -> bool:
        pid = state.get("pid") or 0
        return pid > 0 and _start_time(pid) == state.get("_start_time")

    # ---- lifecycle ---------------------------------------------------------

    def create(self, container_id: str, bundle: str | os.PathLike[str],
               stdio: tuple[int, int, int] = (-1, -1, -1)) -> dict[str, Any]:
        """Build the plan (all validation happens here, before anything is
        made), then make the state dir and launch the process up to the
        barrier.  Any failure undoes every step."""
        d = self._dir(container_id)
        bundle = Path(bundle).resolve()
        spec = load_spec(bundle)
        cg_plan = container_cgroups(spec, container_id, self.cgroup_root)
        hooks = parse_hooks(spec)
        records = plan_records(spec, bundle, host=HostFacts.current(), barrier=str(d / FIFO),
                               cgroups=cg_plan)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            raise AlreadyExists(f"container {container_id!r} already exists") from None
        with contextlib.ExitStack() as undo:
            undo.callback(shutil.rmtree, d, True)
            os.mkfifo(d / FIFO, 0o600)
            state = {"ociVersion": OCI_VERSION, "id": container_id, "status": "creating",
                     "pid": 0, "bundle": str(bundle),
                     "annotations": spec.get("annotations") or {}, "_cgroups": [],
                     **{f"_{k}": [h.to_json() for h in hooks.get(k, [])]
                        for k in ("poststart", "poststop")}}
            self._write_state(container_id, state, sync=False)
            if cg_plan is not None:
                made = cgroups.create(cg_plan)
                undo.callback(cgroups.remove, made)
                state["_cgroups"] = [str(p) for p in made]
                state["_cgroup_dirs"] = [str(p) for p in cg_plan.dirs]
                self._write_state(container_id, state, sync=False)
                records += cgroup_records(cg_plan)
            def on_hooks(pid: int) -> None:
                hook_state = {**_public(state), "status": "creating", "pid": pid}
                for kind in CREATE_KINDS:
                    run_hooks(kind, hooks.get(kind, []), hook_state)
            try:
                pid, pidfd = native_launch.launch(
                    encode(records), stdio,
                    on_hooks if any(hooks.get(k) for k in CREATE_KINDS) else None)
            except NativeError as e:
                raise launch_error(e, spec) from e
            undo.callback(_kill_and_reap, pid, pidfd)
            state.update(status="created", pid=pid, _start_time=_start_time(pid),
                         created=time.time())
            self._write_state(container_id, state)
            undo.pop_all()
        os.close(pidfd)
        return self.state(container_id)

    def start(self, container_id: str) -> None:
        state = self.state(container_id)
        if state["status"] != "created":
            raise FailedPrecondition(f"container {container_id!r} is {state['status']}, "
                                     "not created: cannot start it")
        fifo = self._dir(container_id) / FIFO
        try:
            native_launch.release(fifo)
        except NativeError as e:
            if e.errno == errno.ENXIO:
                raise FailedPrecondition(f"container {container_id!r} is no longer "
                                         "waiting to start") from e
            raise
        fifo.unlink()
        self._run_post_hooks(container_id, "poststart", "running")

    def _run_post_hooks(self, container_id: str, kind: str, status: str) -> None:
        record = self._read_state(container_id)
        hooks = [hook_from_json(h) for h in record.get(f"_{kind}", [])]
        if hooks:
            run_hooks(kind, hooks, {**_public(record), "status": status}, warn_only=True)

    def state(self, container_id: str) -> dict[str, Any]:
        """The OCI state: ociVersion, id, status, pid, bundle, annotations."""
        state = self._read_state(container_id)
        if state["status"] != "creating":
            if not self._alive(state):
                state["status"] = "stopped"
            elif (self._dir(container_id) / FIFO).exists():
                state["status"] = "created"
            elif cgroups.is_frozen([Path(p) for p in state.get("_cgroup_dirs", [])]):
                state["status"] = "paused"
            else:
                state["status"] = "running"
        if state["status"] == "stopped":
            state["pid"] = 0
        return _public(state)

    def _pidfd(self, container_id: str) -> int:
        """A pidfd for the container's process, checked against the recorded
        start time after opening, so it cannot name a recycled pid."""
        state = self._read_state(container_id)
        if not self._alive(state):
            raise FailedPrecondition(f"container {container_id!r} is not running")
        fd = native_proc.pidfd_open(state["pid"])
        if not self._alive(state):
            os.close(fd)
            raise FailedPrecondition(f"container {container_id!r} is not running")
        return fd

    def kill(self, container_id: str, sig: int = signal_mod.SIGTERM) -> None:
        fd = self._pidfd(container_id)
        try:
            native_proc.pidfd_send_signal(fd, sig)
        finally:
            os.close(fd)

    def exec(self, container_id: str, process: dict[str, Any],
             stdio: tuple[int, int, int] = (-1, -1, -1)) -> int:
        """Start `process` (an OCI process object) inside the running
        container: its namespaces, its cgroups, its seccomp filter.  Returns
        the pid; the caller is its parent and reaps it."""
        state = self.state(container_id)
        if state["status"] not in ("running", "created"):
            raise FailedPrecondition(f"cannot exec in container {container_id!r}: it is "
                                     f"{state['status']}")
        spec = load_spec(Path(state["bundle"]))
        records = exec_records(spec, process, pid=state["pid"], host=HostFacts.current())
        records += cgroup_join_records(self._cgroup_dirs(container_id))
        fd = self._pidfd(container_id)  # keeps the init (and its /proc/PID) pinned
        try:
            pid, pidfd = native_launch.launch(encode(records), stdio)
        except NativeError as e:
            raise launch_error(e, {"process": process}) from e
        finally:
            os.close(fd)
        os.close(pidfd)
        return pid

    def pause(self, container_id: str) -> None:
        """Freeze the container's cgroups (runc's `pause`)."""
        state = self.state(container_id)
        if state["status"] != "running":
            raise FailedPrecondition(f"container {container_id!r} is {state['status']}, "
                                     "not running: cannot pause it")
        cgroups.freeze(self._cgroup_dirs(container_id), True)

    def resume(self, container_id: str) -> None:
        state = self.state(container_id)
        if state["status"] != "paused":
            raise FailedPrecondition(f"container {container_id!r} is {state['status']}, "
                                     "not paused: cannot resume it")
        cgroups.freeze(self._cgroup_dirs(container_id), False)

    def _cgroup_dirs(self, container_id: str) -> list[Path]:
        return [Path(p) for p in self._read_state(container_id).get("_cgroup_dirs", [])]

    def kill_all(self, container_id: str, sig: int) -> None:
        """Signal the init process and everything else in the container's
        cgroups (its pid namespace dies with init anyway)."""
        state = self._read_state(container_id)
        cgroups.kill_all([Path(p) for p in state.get("_cgroup_dirs", [])], sig)
        with contextlib.suppress(FailedPrecondition, ProcessLookupError):
            self.kill(container_id, sig)

    def wait(self, container_id: str, timeout: float | None = None) -> int | None:
        """Wait for the process to exit.  Returns its exit status as the shell
        reports it (128+signal when killed) if the caller is its parent."""
        state = self._read_state(container_id)
        pid = state.get("pid") or 0
        try:
            fd = self._pidfd(container_id)
        except FailedPrecondition:
            return _reap(pid)
        try:
            if not select.select([fd], [], [], timeout)[0]:
                raise TimeoutError(f"container {container_id!r} still running")
        finally:
            os.close(fd)
        return _reap(pid)

    def delete(self, container_id: str, force: bool = False) -> None:
        try:
            state = self.state(container_id)
        except NotFound:
            # a create interrupted before its first record: only the dir is there
            if force and self._dir(container_id).is_dir():
                shutil.rmtree(self._dir(container_id))
                return
            raise
        if state["status"] != "stopped":
            if not force:
                raise FailedPrecondition(f"cannot delete container {container_id!r} that is "
                                         f"not stopped: {state['status']}")
            with contextlib.suppress(FailedPrecondition, ProcessLookupError):
                self.kill(container_id, signal_mod.SIGKILL)
            # a frozen process only dies once thawed
            with contextlib.suppress(FailedPrecondition):
                cgroups.freeze(self._cgroup_dirs(container_id), False)
            self.wait(container_id, timeout=10)
        record = self._read_state(container_id)
        if force:
            cgroups.kill_all([Path(p) for p in record.get("_cgroup_dirs", [])], signal_mod.SIGKILL)
        cgroups.remove([Path(p) for p in record.get("_cgroups", [])])
        shutil.rmtree(self._dir(container_id))
        poststop = [hook_from_json(h) for h in record.get("_poststop", [])]
        if poststop:
            run_hooks("poststop", poststop, {**_public(record), "status": "stopped", "pid": 0},
                      warn_only=True)

    def list(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())


def _public(state: dict[str, Any]) -> dict[str, Any]:
    """The OCI state fields of a record (internal keys start with '_')."""
    return {k: v for k, v in state.items() if not k.startswith("_") and k != "created"}


def _kill_and_reap(pid: int, pidfd: int) -> None:
    """Undo of a launch: the process must not outlive a failed create."""
    try:
        native_proc.pidfd_send_signal(pidfd, signal_mod.SIGKILL)
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)
    _reap(pid)


def _reap(pid: int) -> int | None:
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
