"""Container lifecycle of the built-in runtime: create, start, state, kill,
exec, pause/resume, update, wait, delete.  The steps of a create are
creation.py's; what is kept of a container between calls (the files under
<root>/<id>/, the start barrier, whether its process lives) is state.py's;
which cgroups it gets is cgroup_records.py's."""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import select
import shutil
import signal as signal_mod
import struct
from pathlib import Path
from typing import Any

from crio_native import failpoints
from crio_native._native import launch as native_launch
from crio_native._native import proc as native_proc
from crio_native.errors import FailedPrecondition, NativeError, NotFound
from crio_native.linux import cgroups
from crio_native.linux.systemd.bus import system_manager
from crio_native.linux.systemd.properties import resource_properties
from crio_native.linux.systemd.scope import move_monitor
from crio_native.logsetup import fields
from crio_native.monitor.exitstatus import read_exit
from crio_native.monitor.launch import launch_monitor
from crio_native.monitor.paths import launcher_binary
from crio_native.runtime.builtin.cgroup_records import (cgroup_join_records, oom_cgroup,
                                                        update_cgroups)
from crio_native.runtime.builtin.creation import (cgroups_while_launching,
                                                  create_hooks_callback, make, make_cgroups,
                                                  prepare, record_created, scope_gate)
from crio_native.runtime.builtin.exec_cache import ExecCache, process_key
from crio_native.runtime.builtin.hooks import Hook, hook_from_json, run_hooks, start_hook_failure
from crio_native.runtime.builtin.plan import HostFacts, exec_records, load_spec
from crio_native.runtime.builtin.process import (console_connect, descendants_of, kill_and_reap,
                                                kill_holders, launch_error, reap, send_console,
                                                start_time_of, undo_monitor, wait_monitor_gone)
from crio_native.runtime.builtin.records import START_STATE_MAX, encode
from crio_native.runtime.builtin.state import (FIFO, OCI_VERSION, cgroup_dirs_of, list_ids,
                                              oci_state_from_record, open_pidfd, read_state,
                                              refresh_status, release, release_with_state,
                                              state_dir, write_plan)
from crio_native.runtime.cgroup_root import resolve_cgroup_root
from crio_native.runtime.handler import Created, MonitorOptions

# What the rest of the tree reads from here (the handler, the CLI, the
# tests), wherever it is defined.
__all__ = ["BuiltinRuntime", "OCI_VERSION"]

log = logging.getLogger(__name__)

# clones for create and exec without copying the caller (launcher.h)
LAUNCHER = str(launcher_binary())


class BuiltinRuntime:
    """The built-in runtime, with its state under `root` (like runc --root)
    and container cgroups at or below `cgroup_root` (runtime.cgroup_root)."""

    def __init__(self, root: str | os.PathLike[str], cgroup_root: str | None = None,
                 cgroup_driver: str = "cgroupfs"):
        self.root = Path(root)
        # "systemd": cgroupsPath is slice:prefix:name and each container gets
        # a transient scope (linux/systemd/scope.py)
        self.cgroup_driver = cgroup_driver
        # Read when no cgroup root is given explicitly, so test harnesses and
        # benchmarks can move every runtime they start without plumbing a flag.
        self.cgroup_root = resolve_cgroup_root(cgroup_root)
        self._specs: dict[Path, tuple[tuple[int, int, int], dict[str, Any]]] = {}
        self._execs = ExecCache()

    def _bundle_spec(self, bundle: Path) -> dict[str, Any]:
        """config.json of a bundle, parsed once per version of the file:
        probes exec into the same containers many times a minute."""
        return self._stamped_spec(bundle)[1]

    def _stamped_spec(self, bundle: Path) -> tuple[tuple[int, int, int], dict[str, Any]]:
        """(the file's stamp, config.json) of a bundle (_bundle_spec)."""
        path = bundle / "config.json"
        try:
            st = path.stat()
        except FileNotFoundError:
            return (0, 0, 0), load_spec(bundle)        # raises the usual error
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached = self._specs.get(path)
        if cached is None or cached[0] != stamp:
            cached = (stamp, load_spec(bundle))
            self._specs[path] = cached
        return cached

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
        p = prepare(self.root, self.cgroup_root, container_id, bundle,
                    console=console_socket is not None, no_pivot=no_pivot,
                    cgroup_driver=self.cgroup_driver)
        with contextlib.ExitStack() as undo:
            sock = console_connect(console_socket, p.spec) if console_socket else None
            if sock is not None:
                undo.enter_context(sock)
            state, scope = make(self.root, p, undo)
            if scope is not None:
                scope_gate(self.root, p, state, undo, scope)()
            try:
                pid, pidfd, *master = native_launch.launch(
                    encode(p.records), stdio, create_hooks_callback(state, p.hooks),
                    console=sock is not None, launcher=LAUNCHER)
            except NativeError as e:
                raise launch_error(e, p.spec) from e
            undo.callback(kill_and_reap, pid, pidfd)
            # (create() runs a pod's infra; containers are create_monitored's)
            failpoints.hit("sandbox.run.infra_launched")
            if scope is not None:
                scope.anchor.release()
            if sock is not None and console_socket:
                send_console(sock, master[0], console_socket)
            record_created(self.root, container_id, state, pid)
            undo.pop_all()
            if sock is not None:
                sock.close()
        os.close(pidfd)
        return oci_state_from_record(state)

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
        p = prepare(self.root, self.cgroup_root, container_id, bundle,
                    console=monitor.terminal, cgroup_driver=self.cgroup_driver)
        # v1/hybrid: the groups are made while the monitor starts (it waits
        # at its gate until they are), not before it is spawned
        later = cgroups_while_launching(p)
        with contextlib.ExitStack() as undo:
            state, scope = make(self.root, p, undo, cgroups_later=later)
            failpoints.hit("container.create.runtime_made")
            plan_file = write_plan(p.dir, encode(p.records))
            dirs = p.cgroups.dirs if p.cgroups is not None else []
            oom = oom_cgroup(dirs, made_later=later)
            try:
                mon = launch_monitor(
                    container_id, (), monitor.state_dir, monitor.log_path,
                    stdin=monitor.stdin, stdin_once=monitor.stdin_once,
                    terminal=monitor.terminal, cgroup_path=str(oom) if oom else None,
                    plan_file=plan_file, on_hooks=create_hooks_callback(state, p.hooks),
                    on_gate=None if scope is None else scope_gate(self.root, p, state,
                                                                  undo, scope),
                    meanwhile=functools.partial(make_cgroups, self.root, p, state, undo)
                    if later else None,
                    timeout=timeout)
            except NativeError as e:
                raise launch_error(e, p.spec) from e
            undo.callback(undo_monitor, mon)
            failpoints.hit("container.create.monitor_launched")
            if scope is not None:
                scope.anchor.release()
            if p.groups is not None and p.groups.scope is not None:
                state["_systemd_units"].append(
                    move_monitor(system_manager(), p.groups.scope, container_id, mon.pid))
            state["_monitor"] = {"pid": mon.pid, "start_time": start_time_of(mon.pid),
                                 "state_dir": str(mon.state_dir)}
            record_created(self.root, container_id, state, mon.container_pid)
            undo.pop_all()
        return Created(pid=mon.container_pid, monitor_pid=mon.pid, cgroup_dirs=tuple(dirs))

    def start(self, container_id: str) -> None:
        record = read_state(self.root, container_id)
        status = refresh_status(self.root, container_id, dict(record))["status"]
        if status != "created":
            raise FailedPrecondition(f"container {container_id!r} is {status}, "
                                     "not created: cannot start it")
        if record.get("_no_process"):
            # runtime-spec config.md: process is REQUIRED when start is called
            raise FailedPrecondition(f"container {container_id!r}: config.json: process: "
                                     "not set, and start needs it")
        start_hooks = [hook_from_json(h) for h in record.get("_startContainer", [])]
        if start_hooks:
            self._start_with_hooks(container_id, record, start_hooks)
        else:
            release(self.root, container_id)
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
        doc = json.dumps({**oci_state_from_record(record), "status": "created"}).encode()
        if len(doc) > START_STATE_MAX:
            raise FailedPrecondition(f"container {container_id!r}: its state JSON for the "
                                     f"startContainer hooks is over {START_STATE_MAX} bytes")
        report = release_with_state(self.root, container_id, doc)
        if len(report) >= 12:
            index, kind, value = struct.unpack_from("=iii", report)
            hook = hooks[index] if 0 <= index < len(hooks) else Hook("?", (), (), None)
            raise FailedPrecondition(f"container {container_id!r}: "
                                     f"{start_hook_failure(hook, index, kind, value)}")

    def _run_post_hooks(self, container_id: str, kind: str, status: str,
                        record: dict[str, Any]) -> None:
        hooks = [hook_from_json(h) for h in record.get(f"_{kind}", [])]
        if hooks:
            run_hooks(kind, hooks, {**oci_state_from_record(record), "status": status},
                      warn_only=True)

    def state(self, container_id: str) -> dict[str, Any]:
        """The OCI state: ociVersion, id, status, pid, bundle, annotations."""
        record = read_state(self.root, container_id)
        return oci_state_from_record(refresh_status(self.root, container_id, record))

    def kill(self, container_id: str, sig: int = signal_mod.SIGTERM) -> None:
        fd = open_pidfd(container_id, read_state(self.root, container_id))
        try:
            native_proc.pidfd_send_signal(fd, sig)
        finally:
            os.close(fd)

    def exec(self, container_id: str, process: dict[str, Any],
             stdio: tuple[int, int, int] = (-1, -1, -1)) -> int:
        """Start `process` (an OCI process object) inside the running
        container: its namespaces, its cgroups, its seccomp filter.  Returns
        the pid; the caller is its parent and reaps it."""
        record = read_state(self.root, container_id)
        pid, start_time = record.get("pid") or 0, record.get("_start_time")
        dirs = cgroup_dirs_of(record)
        # exec_cache: the plan is a pure function of these and `inputs`
        identity = (pid, start_time, record["bundle"], tuple(map(str, dirs)))
        state = refresh_status(self.root, container_id, record, is_frozen=functools.partial(
            self._execs.is_frozen, container_id, identity, dirs))
        if state["status"] not in ("running", "created"):
            raise FailedPrecondition(f"cannot exec in container {container_id!r}: it is "
                                     f"{state['status']}")
        stamp, spec = self._stamped_spec(Path(state["bundle"]))
        host = HostFacts.current()

        def build() -> bytes:
            return encode(exec_records(spec, process, pid=pid, host=host, container=state)
                          + cgroup_join_records(dirs))
        inputs = (stamp, process_key(process), host, state["status"], state.get("id"))
        plan = self._execs.plan(container_id, identity, dirs, inputs, build)
        # keeps the init (and its /proc/PID) pinned
        fd = open_pidfd(container_id, {"pid": pid, "_start_time": start_time})
        try:
            pid, pidfd = native_launch.launch(plan, stdio, launcher=LAUNCHER)
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
        record = read_state(self.root, container_id)
        plan = update_cgroups(container_id, record, resources, self.cgroup_root)
        units = record.get("_systemd_units") or []
        if units:
            # systemd would put its own values back on the next daemon-reload
            system_manager().set_unit_properties(units[0], resource_properties(resources))
        cgroups.apply_limits(plan)

    def _cgroup_dirs(self, container_id: str) -> list[Path]:
        return cgroup_dirs_of(read_state(self.root, container_id))

    def kill_all(self, container_id: str, sig: int) -> None:
        """Signal the init process and everything else in the container's
        cgroups (its pid namespace dies with init anyway)."""
        state = read_state(self.root, container_id)
        cgroups.kill_all(cgroup_dirs_of(state), sig)
        with contextlib.suppress(FailedPrecondition, ProcessLookupError):
            self.kill(container_id, sig)

    def wait(self, container_id: str, timeout: float | None = None) -> int | None:
        """Wait for the process to exit.  Returns its exit status as the shell
        reports it (128+signal when killed): from the monitor's exit file
        for a monitored container, else if the caller is its parent."""
        state = read_state(self.root, container_id)
        try:
            fd = open_pidfd(container_id, state)
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
        self._execs.forget(container_id)
        try:
            record = read_state(self.root, container_id)
        except NotFound:
            # a create interrupted before its first record: only the dir is there
            if force and state_dir(self.root, container_id).is_dir():
                shutil.rmtree(state_dir(self.root, container_id))
                return
            raise
        state = refresh_status(self.root, container_id, dict(record))
        if state["status"] != "stopped":
            if not force:
                raise FailedPrecondition(f"cannot delete container {container_id!r} that is "
                                         f"not stopped: {state['status']}")
            with contextlib.suppress(FailedPrecondition, ProcessLookupError):
                self.kill(container_id, signal_mod.SIGKILL)
            # a frozen process only dies once thawed
            with contextlib.suppress(FailedPrecondition):
                cgroups.freeze(self._cgroup_dirs(container_id), False)
            if not record.get("pid"):
                # created, never recorded: a crash between the clone and the
                # record leaves the process at its barrier, named nowhere
                for pid in kill_holders(state_dir(self.root, container_id) / FIFO):
                    log.warning("killed the process of a create cut short",
                                extra=fields(id=container_id, pid=pid))
            self.wait(container_id, timeout=10)
        if force:
            cgroups.kill_all(cgroup_dirs_of(record), signal_mod.SIGKILL)
        if record.get("_monitor"):
            wait_monitor_gone(record["_monitor"])
        cgroups.remove([Path(p) for p in record.get("_cgroups", [])])
        for unit in record.get("_systemd_units") or []:
            system_manager().stop_unit(unit)
        self._specs.pop(Path(record.get("bundle", "")) / "config.json", None)
        shutil.rmtree(state_dir(self.root, container_id))
        poststop = [hook_from_json(h) for h in record.get("_poststop", [])]
        if poststop:
            run_hooks("poststop", poststop,
                      {**oci_state_from_record(record), "status": "stopped", "pid": 0},
                      warn_only=True)

    def ps(self, container_id: str) -> list[int]:
        """Host pids of the container's processes (runc's `ps`): every pid in
        its cgroups, or, for a container without groups of its own, its
        init and the init's descendants."""
        record = read_state(self.root, container_id)
        state = refresh_status(self.root, container_id, record)
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
        return list_ids(self.root)

