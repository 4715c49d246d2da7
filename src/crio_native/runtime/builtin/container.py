"""Container lifecycle of the built-in runtime: create, start, state, kill,
delete, with the OCI state JSON persisted under a root directory.

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

A live process is recognised by its pid plus its start time (process.py), so
a recycled pid is never mistaken for the container."""
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
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from crio_native._native import launch as native_launch
from crio_native._native import proc as native_proc
from crio_native.errors import (AlreadyExists, FailedPrecondition,
                                InvalidArgument, NativeError, NotFound)
from crio_native.linux import cgroups
from crio_native.monitor.exitstatus import read_exit
from crio_native.monitor.launch import launch_monitor
from crio_native.monitor.paths import launcher_binary
from crio_native.runtime.builtin.hooks import (CREATE_KINDS, Hook, hook_from_json, parse_hooks,
                                               run_hooks, start_hook_failure)
from crio_native.runtime.builtin.plan import (HostFacts, exec_records, has_cgroup_mount, load_spec,
                                             plan_records)
from crio_native.runtime.builtin.process import (console_connect, descendants_of, kill_and_reap,
                                                launch_error, reap, send_console,
                                                start_time_of, undo_monitor, wait_monitor_gone)
from crio_native.runtime.builtin.records import START_STATE_MAX, Rec, Record, encode, rec
from crio_native.runtime.cgroup_root import resolve_cgroup_root
from crio_native.runtime.handler import Created, MonitorOptions
from crio_native.state.files import read_json

log = logging.getLogger(__name__)

OCI_VERSION = "1.2.0"
ID_RE = re.compile(r"^[\w+\-.]+$", re.ASCII)
STATE_FILE = "state.json"
FIFO = "exec.fifo"
PLAN_FILE = "plan"
START_RESULT = "start.result"
# clones for create and exec without copying the caller (launcher.h)
LAUNCHER = str(launcher_binary())
# Read when no cgroup root is given explicitly, so test harnesses and
# benchmarks can move every runtime they start without plumbing a flag.


def check_id(container_id: str) -> None:
    if not isinstance(container_id, str) or not ID_RE.match(container_id) \
            or container_id in (".", ".."):
        raise InvalidArgument(f"id: invalid container id {container_id!r} "
                              "(letters, digits, '_', '+', '-' and '.' only)")


def container_cgroups_path(spec: dict, container_id: str) -> str | None:
    """linux.cgroupsPath, or the id when resources or a cgroup mount ask for
    groups of its own; None when nothing does."""
    linux = spec.get("linux") or {}
    wants = linux.get("resources") or has_cgroup_mount(spec)
    return linux.get("cgroupsPath") or (container_id if wants else None)


def container_cgroups(spec: dict, container_id: str,
                      cgroup_root: str = "") -> cgroups.CgroupPlan | None:
    """The container's cgroups (see container_cgroups_path), all at or below
    `cgroup_root` ("" = our own cgroup); None when it has none of its own."""
    path = container_cgroups_path(spec, container_id)
    if not path:
        return None
    resources = (spec.get("linux") or {}).get("resources") or {}
    return cgroups.plan_cgroups(path, resources, root=cgroup_root)


def oom_cgroup(dirs: list[Path]) -> Path | None:
    """The group whose oom_kill counter the monitor watches: the v2 group,
    or the v1 memory controller's (a hybrid host's v2 hierarchy has none)."""
    for d in dirs:
        if (d / "memory.events").exists() or (d / "memory.oom_control").exists():
            return d
    return None


@dataclass
class _Prepared:
    """What create decides before it makes anything: all validation done."""
    container_id: str
    dir: Path
    bundle: Path
    spec: dict[str, Any]
    cgroups: cgroups.CgroupPlan | None
    hooks: dict[str, list[Hook]]
    records: list[Record]


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


class BuiltinRuntime:
    """The built-in runtime, with its state under `root` (like runc --root)
    and container cgroups at or below `cgroup_root` (runtime.cgroup_root)."""

    def __init__(self, root: str | os.PathLike[str], cgroup_root: str | None = None):
        self.root = Path(root)
        self.cgroup_root = resolve_cgroup_root(cgroup_root)
        self._specs: dict[Path, tuple[tuple[int, int, int], dict[str, Any]]] = {}

    # ---- state files -------------------------------------------------------

    def _dir(self, container_id: str) -> Path:
        check_id(container_id)
        return self.root / container_id

    def _write_state(self, container_id: str, state: dict[str, Any]) -> None:
        """Temp file, rename: a reader sees the old record or the new one."""
        d = self._dir(container_id)
        tmp = f"{d}/.{STATE_FILE}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, json.dumps(state, separators=(",", ":")).encode())
        finally:
            os.close(fd)
        os.replace(tmp, f"{d}/{STATE_FILE}")

    def _bundle_spec(self, bundle: Path) -> dict[str, Any]:
        """config.json of a bundle, parsed once per version of the file:
        probes exec into the same containers many times a minute."""
        path = bundle / "config.json"
        try:
            st = path.stat()
        except FileNotFoundError:
            return load_spec(bundle)        # raises the usual error
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached = self._specs.get(path)
        if cached is None or cached[0] != stamp:
            cached = (stamp, load_spec(bundle))
            self._specs[path] = cached
        return cached[1]

    def _read_state(self, container_id: str) -> dict[str, Any]:
        try:
            return read_json(f"{self._dir(container_id)}/{STATE_FILE}")
        except FileNotFoundError:
            raise NotFound(f"container {container_id!r} does not exist") from None

    def _alive(self, state: dict[str, Any]) -> bool:
        pid = state.get("pid") or 0
        return pid > 0 and start_time_of(pid) == state.get("_start_time")

    # ---- lifecycle ---------------------------------------------------------

    def create(self, container_id: str, bundle: str | os.PathLike[str],
               stdio: tuple[int, int, int] = (-1, -1, -1),
               console_socket: str | os.PathLike[str] | None = None,
               no_pivot: bool = False) -> dict[str, Any]:
        """Build the plan (all validation happens here, before anything is
        made), then make the state dir and launch the process up to the
        barrier, as our own child.  Any failure undoes every step.

        `console_socket` (process.terminal, like runc's --console-socket):
        the child makes a pty from the container's /dev/ptmx, its slave is
        the process's stdio (`stdio` is ignored) and the master is sent over
        this unix socket (SCM_RIGHTS, as runc does); we keep no copy."""
        p = self._prepare(container_id, bundle, console=console_socket is not None,
                          no_pivot=no_pivot)
        with contextlib.ExitStack() as undo:
            sock = console_connect(console_socket, p.spec) if console_socket else None
            if sock is not None:
                undo.enter_context(sock)
            state = self._make(p, undo)
            try:
                pid, pidfd, *master = native_launch.launch(
                    encode(p.records), stdio, _create_hooks(state, p.hooks),
                    console=sock is not None, launcher=LAUNCHER)
            except NativeError as e:
                raise launch_error(e, p.spec) from e
            undo.callback(kill_and_reap, pid, pidfd)
            if sock is not None:
                send_console(sock, master[0], console_socket)
            self._record_created(container_id, state, pid)
            undo.pop_all()
            if sock is not None:
                sock.close()
        os.close(pidfd)
        return _public(state)

    def create_monitored(self, container_id: str, bundle: str | os.PathLike[str],
                         monitor: MonitorOptions, timeout: float = 30.0) -> Created:
        """create(), with the process launched by its own crio-native-monitor
        (--plan) instead of by us: the monitor is its parent, holds its
        stdio, writes the CRI log and records the exit, so the container
        outlives this process.  The create hooks still run here, while the
        process waits (the monitor asks for them on the sync socket)."""
        # a terminal is made from the container's own /dev/ptmx (as runc
        # makes it for its console socket) and the launch hands the master
        # to the monitor: `tty` inside names /dev/pts/0 of its devpts
        p = self._prepare(container_id, bundle, console=monitor.terminal)
        with contextlib.ExitStack() as undo:
            state = self._make(p, undo)
            plan_file = p.dir / PLAN_FILE
            fd = os.open(plan_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            with open(fd, "wb") as f:
                f.write(encode(p.records))
            dirs = p.cgroups.dirs if p.cgroups is not None else []
            oom = oom_cgroup(dirs)
            try:
                mon = launch_monitor(
                    container_id, (), monitor.state_dir, monitor.log_path,
                    stdin=monitor.stdin, stdin_once=monitor.stdin_once,
                    terminal=monitor.terminal, cgroup_path=str(oom) if oom else None,
                    plan_file=plan_file, on_hooks=_create_hooks(state, p.hooks),
                    timeout=timeout)
            except NativeError as e:
                raise launch_error(e, p.spec) from e
            undo.callback(undo_monitor, mon)
            state["_monitor"] = {"pid": mon.pid, "start_time": start_time_of(mon.pid),
                                 "state_dir": str(mon.state_dir)}
            self._record_created(container_id, state, mon.container_pid)
            undo.pop_all()
        return Created(pid=mon.container_pid, monitor_pid=mon.pid, cgroup_dirs=tuple(dirs))

    # ---- the steps of a create ------------------------------------------------

    def _prepare(self, container_id: str, bundle: str | os.PathLike[str],
                 console: bool = False, no_pivot: bool = False) -> _Prepared:
        """Everything decided, nothing made: the spec, its cgroups, hooks and
        the launch plan.  Every invalid field fails here."""
        d = self._dir(container_id)
        bundle = Path(bundle).resolve()
        spec = load_spec(bundle)
        if console and not (spec.get("process") or {}).get("terminal"):
            raise InvalidArgument("config.json: process.terminal is false, but a terminal "
                                  "(--console-socket, or the monitor's) was asked for")
        cg_plan = container_cgroups(spec, container_id, self.cgroup_root)
        hooks = parse_hooks(spec)
        start_result = str(d / START_RESULT) if hooks.get("startContainer") else None
        records = plan_records(spec, bundle, host=HostFacts.current(), barrier=str(d / FIFO),
                               cgroups=cg_plan, console=console,
                               start_result=start_result, container_id=container_id,
                               no_pivot=no_pivot)
        if cg_plan is not None:
            records += cgroup_records(cg_plan)
        return _Prepared(container_id, d, bundle, spec, cg_plan, hooks, records)

    def _make(self, p: _Prepared, undo: contextlib.ExitStack) -> dict[str, Any]:
        """The state dir with its barrier and "creating" record, then the
        cgroups; each registers its undo.  Returns the state record."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            p.dir.mkdir(mode=0o700)
        except FileExistsError:
            raise AlreadyExists(f"container {p.container_id!r} already exists") from None
        undo.callback(shutil.rmtree, p.dir, True)
        os.mkfifo(p.dir / FIFO, 0o600)
        if p.hooks.get("startContainer"):
            os.mkfifo(p.dir / START_RESULT, 0o600)
        state = {"ociVersion": OCI_VERSION, "id": p.container_id, "status": "creating",
                 "pid": 0, "bundle": str(p.bundle),
                 "annotations": p.spec.get("annotations") or {}, "_cgroups": [],
                 **{f"_{k}": [h.to_json() for h in p.hooks.get(k, [])]
                    for k in ("startContainer", "poststart", "poststop")}}
        self._write_state(p.container_id, state)
        if p.cgroups is not None:
            made = cgroups.create(p.cgroups)
            undo.callback(cgroups.remove, made)
            state["_cgroups"] = [str(d) for d in made]
            state["_cgroup_dirs"] = [str(d) for d in p.cgroups.dirs]
            state["_cgroups_path"] = container_cgroups_path(p.spec, p.container_id)
            self._write_state(p.container_id, state)
        return state

    def _record_created(self, container_id: str, state: dict[str, Any], pid: int) -> None:
        state.update(status="created", pid=pid, _start_time=start_time_of(pid),
                     created=time.time())
        self._write_state(container_id, state)

    def start(self, container_id: str) -> None:
        record = self._read_state(container_id)
        status = self._with_status(container_id, dict(record))["status"]
        if status != "created":
            raise FailedPrecondition(f"container {container_id!r} is {status}, "
                                     "not created: cannot start it")
        fifo = self._dir(container_id) / FIFO
        start_hooks = [hook_from_json(h) for h in record.get("_startContainer", [])]
        if start_hooks:
            self._start_with_hooks(container_id, record, start_hooks)
        else:
            try:
                native_launch.release(fifo)
            except NativeError as e:
                if e.errno == errno.ENXIO:
                    raise FailedPrecondition(f"container {container_id!r} is no longer "
                                             "waiting to start") from e
                raise
            fifo.unlink()
        self._run_post_hooks(container_id, "poststart", "running", record)

    def _start_with_hooks(self, container_id: str, record: dict[str, Any],
                          hooks: list[Hook]) -> None:
        """Release a process that runs startContainer hooks before its
        program: the state JSON goes through the start fifo (the process
        hands it to each hook on stdin), then we wait until the process has
        exec'd its program (the result fifo reaches EOF with nothing in it)
        or reports a failed hook and exits 1.  The state is what runc gives
        its hooks: status "created" (the program has not run yet), but with
        the pid as the host sees it, as the runtime spec's state asks."""
        d = self._dir(container_id)
        doc = json.dumps({**_public(record), "status": "created"}).encode()
        if len(doc) > START_STATE_MAX:
            raise FailedPrecondition(f"container {container_id!r}: its state JSON for the "
                                     f"startContainer hooks is over {START_STATE_MAX} bytes")
        # opened before the release: the process holds the only writer
        rfd = os.open(d / START_RESULT, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            try:
                wfd = os.open(d / FIFO, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as e:
                if e.errno == errno.ENXIO:
                    raise FailedPrecondition(f"container {container_id!r} is no longer "
                                             "waiting to start") from e
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
        if len(report) >= 12:
            index, kind, value = struct.unpack_from("=iii", report)
            hook = hooks[index] if 0 <= index < len(hooks) else Hook("?", (), (), None)
            raise FailedPrecondition(f"container {container_id!r}: "
                                     f"{start_hook_failure(hook, index, kind, value)}")

    def _run_post_hooks(self, container_id: str, kind: str, status: str,
                        record: dict[str, Any]) -> None:
        hooks = [hook_from_json(h) for h in record.get(f"_{kind}", [])]
        if hooks:
            run_hooks(kind, hooks, {**_public(record), "status": status}, warn_only=True)

    def state(self, container_id: str) -> dict[str, Any]:
        """The OCI state: ociVersion, id, status, pid, bundle, annotations."""
        return _public(self._with_status(container_id, self._read_state(container_id)))

    def _with_status(self, container_id: str, state: dict[str, Any]) -> dict[str, Any]:
        """The record `state` with its status brought up to date."""
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
        return state

    def _pidfd(self, container_id: str, state: dict[str, Any] | None = None) -> int:
        """A pidfd for the container's process, checked against the recorded
        start time after opening, so it cannot name a recycled pid."""
        if state is None:
            state = self._read_state(container_id)
        if not self._alive(state):
            raise FailedPrecondition(f"container {container_id!r} is not running")
        try:
            fd = native_proc.pidfd_open(state["pid"])
        except ProcessLookupError:
            # it ended (and was reaped) between the check and the open
            raise FailedPrecondition(f"container {container_id!r} is not running") from None
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
        record = self._read_state(container_id)
        pid, start_time = record.get("pid"), record.get("_start_time")
        state = self._with_status(container_id, record)
        if state["status"] not in ("running", "created"):
            raise FailedPrecondition(f"cannot exec in container {container_id!r}: it is "
                                     f"{state['status']}")
        spec = self._bundle_spec(Path(state["bundle"]))
        records = exec_records(spec, process, pid=pid, host=HostFacts.current(), container=state)
        records += cgroup_join_records([Path(p) for p in record.get("_cgroup_dirs", [])])
        # keeps the init (and its /proc/PID) pinned
        fd = self._pidfd(container_id, {"pid": pid, "_start_time": start_time})
        try:
            pid, pidfd = native_launch.launch(encode(records), stdio,
                                              launcher=LAUNCHER)
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

    def update(self, container_id: str, resources: dict[str, Any]) -> None:
        """Apply OCI linux.resources to the container's cgroups (runc's
        `update`): the same files create writes, in the groups it made."""
        if self.state(container_id)["status"] == "stopped":
            raise FailedPrecondition(f"container {container_id!r} is stopped: cannot update it")
        record = self._read_state(container_id)
        path = record.get("_cgroups_path")
        if not path:
            raise FailedPrecondition(f"container {container_id!r} has no cgroups of its own: "
                                     "its resources cannot be updated")
        plan = cgroups.plan_cgroups(path, resources or {}, root=self.cgroup_root)
        have, want = record.get("_cgroup_dirs") or [], [str(d) for d in plan.dirs]
        added = [d for d in want if d not in have]
        if added and all(d in want for d in have):
            # a limit in a hierarchy the container joined nothing in (v1
            # net_cls/net_prio): as with runc and crun, only create joins one
            raise FailedPrecondition(f"container {container_id!r} was created without a group "
                                     f"in the hierarchy of {', '.join(added)}: these resources "
                                     "can only be set when the container is created")
        if want != have:
            raise FailedPrecondition(f"container {container_id!r}: its cgroups are no longer "
                                     f"where {path!r} resolves (cgroup root changed?)")
        cgroups.apply_limits(plan)

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
        reports it (128+signal when killed): from the monitor's exit file
        for a monitored container, else if the caller is its parent."""
        state = self._read_state(container_id)
        try:
            fd = self._pidfd(container_id, state)
        except FailedPrecondition:
            return self._exit_status(state)
        try:
            if not select.select([fd], [], [], timeout)[0]:
                raise TimeoutError(f"container {container_id!r} still running")
        finally:
            os.close(fd)
        return self._exit_status(state)

    def _exit_status(self, state: dict[str, Any]) -> int | None:
        """The exit of a process that is gone.  Its monitor (if any) writes
        the exit file once the output is drained, within about 2 s."""
        mon = state.get("_monitor")
        if mon is not None:
            status = read_exit(mon["state_dir"])
            if status is None:
                # the monitor writes it once the output is drained, then ends
                wait_monitor_gone(mon)
                status = read_exit(mon["state_dir"])
            if status is not None:
                return status.exit_code
        return reap(state.get("pid") or 0)

    def delete(self, container_id: str, force: bool = False) -> None:
        try:
            record = self._read_state(container_id)
        except NotFound:
            # a create interrupted before its first record: only the dir is there
            if force and self._dir(container_id).is_dir():
                shutil.rmtree(self._dir(container_id))
                return
            raise
        state = self._with_status(container_id, dict(record))
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
        if force:
            cgroups.kill_all([Path(p) for p in record.get("_cgroup_dirs", [])], signal_mod.SIGKILL)
        if record.get("_monitor"):
            wait_monitor_gone(record["_monitor"])
        cgroups.remove([Path(p) for p in record.get("_cgroups", [])])
        self._specs.pop(Path(record.get("bundle", "")) / "config.json", None)
        shutil.rmtree(self._dir(container_id))
        poststop = [hook_from_json(h) for h in record.get("_poststop", [])]
        if poststop:
            run_hooks("poststop", poststop, {**_public(record), "status": "stopped", "pid": 0},
                      warn_only=True)

    def ps(self, container_id: str) -> list[int]:
        """Host pids of the container's processes (runc's `ps`): every pid in
        its cgroups, or, for a container without groups of its own, its
        init and the init's descendants."""
        record = self._read_state(container_id)
        state = self._with_status(container_id, record)
        if state["status"] == "stopped":
            return []
        pids: set[int] = set()
        for d in record.get("_cgroup_dirs", []):
            with contextlib.suppress(FileNotFoundError):
                pids.update(int(p) for p in (Path(d) / "cgroup.procs").read_text().split())
        if not record.get("_cgroup_dirs"):
            pids = descendants_of(state["pid"])
        return sorted(pids)

    def list(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())


def _create_hooks(state: dict[str, Any],
                  hooks: dict[str, list[Hook]]) -> Callable[[int], None] | None:
    """The callback that runs the create hooks while the child waits, or
    None when the spec has none."""
    if not any(hooks.get(k) for k in CREATE_KINDS):
        return None

    def on_hooks(pid: int) -> None:
        hook_state = {**_public(state), "status": "creating", "pid": pid}
        for kind in CREATE_KINDS:
            run_hooks(kind, hooks.get(kind, []), hook_state)
    return on_hooks


def _public(state: dict[str, Any]) -> dict[str, Any]:
    """The OCI state fields of a record (internal keys start with '_')."""
    return {k: v for k, v in state.items() if not k.startswith("_") and k != "created"}
