"""The steps of a create, shared by BuiltinRuntime.create and
create_monitored: prepare (everything decided, nothing made), make (the
state dir, its record, the cgroups, each with its undo), the create hooks
run while the process waits, and the record of the created process."""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from crio_native.errors import InvalidArgument
from crio_native.linux import cgroups
from crio_native.linux.systemd.bus import system_manager
from crio_native.linux.systemd.scope import ContainerScope, start_container_scope
from crio_native.runtime.builtin.cgroup_records import (ContainerCgroups, cgroup_records,
                                                        container_cgroups)
from crio_native.runtime.builtin.hooks import CREATE_KINDS, Hook, parse_hooks, run_hooks
from crio_native.runtime.builtin.plan import HostFacts, load_spec, plan_records
from crio_native.runtime.builtin.process import start_time_of
from crio_native.runtime.builtin.records import Record
from crio_native.runtime.builtin.state import (FIFO, OCI_VERSION, START_RESULT, make_state_dir,
                                              oci_state_from_record, state_dir, write_state)


@dataclass
class Prepared:
    """What create decides before it makes anything: all validation done."""
    container_id: str
    dir: Path
    bundle: Path
    spec: dict[str, Any]
    groups: ContainerCgroups | None
    hooks: dict[str, list[Hook]]
    records: list[Record]

    @property
    def cgroups(self) -> cgroups.CgroupPlan | None:
        return self.groups.plan if self.groups is not None else None


def prepare(root: Path, cgroup_root: str, container_id: str, bundle: str | os.PathLike[str],
            console: bool = False, no_pivot: bool = False,
            cgroup_driver: str = "cgroupfs") -> Prepared:
    """Everything decided, nothing made: the spec, its cgroups, hooks and
    the launch plan.  Every invalid field fails here."""
    d = state_dir(root, container_id)
    bundle = Path(bundle).resolve()
    spec = load_spec(bundle)
    if console and not (spec.get("process") or {}).get("terminal"):
        raise InvalidArgument("config.json: process.terminal is false, but a terminal "
                              "(--console-socket, or the monitor's) was asked for")
    groups = container_cgroups(spec, container_id, cgroup_root, cgroup_driver)
    cg_plan = groups.plan if groups is not None else None
    hooks = parse_hooks(spec)
    start_result = str(d / START_RESULT) if hooks.get("startContainer") else None
    records = plan_records(spec, bundle, host=HostFacts.current(), barrier=str(d / FIFO),
                           cgroups=cg_plan, console=console,
                           start_result=start_result, container_id=container_id,
                           no_pivot=no_pivot)
    if cg_plan is not None:
        records += cgroup_records(cg_plan)
    return Prepared(container_id, d, bundle, spec, groups, hooks, records)


def make(root: Path, p: Prepared, undo: contextlib.ExitStack,
         cgroups_later: bool = False) -> tuple[dict[str, Any], ContainerScope | None]:
    """The state dir with its barrier and "creating" record, then the
    cgroups; each registers its undo.  Returns the state record and, with
    the systemd driver, the container's scope, whose start job systemd may
    still be running: the cgroups are then made by `finish_cgroups` once
    `scope.ready()` returned (see linux/systemd/scope.py), and the caller
    releases the scope's anchor once the process is in it.
    `cgroups_later` (see `cgroups_while_launching`): the groups are in the
    record, but the caller makes them (`make_cgroups`) before the clone."""
    make_state_dir(root, p.container_id, bool(p.hooks.get("startContainer")), undo)
    state = {"ociVersion": OCI_VERSION, "id": p.container_id, "status": "creating",
             "pid": 0, "bundle": str(p.bundle),
             "annotations": p.spec.get("annotations") or {}, "_cgroups": [],
             **({"_no_process": True} if p.spec.get("process") is None else {}),
             **{f"_{k}": [h.to_json() for h in p.hooks.get(k, [])]
                for k in ("startContainer", "poststart", "poststop")}}
    in_scope = p.groups is not None and p.groups.scope is not None
    if not in_scope:
        # the groups go in the first record (one write fewer): it is
        # still written before any of them is made
        _note_cgroups(p, state)
    write_state(root, p.container_id, state)
    scope = _start_scope(root, p, state, undo)
    if scope is None and not cgroups_later:
        make_cgroups(root, p, state, undo)
    return state, scope


def cgroups_while_launching(p: Prepared) -> bool:
    """Whether the groups may be made while the monitor starts (it waits at
    its gate, before the clone, until they are: launch_monitor's
    `meanwhile`): with the cgroupfs driver on v1 or hybrid, where the
    monitor writes each cgroup.procs after the clone and a group's mkdir
    and limit writes per hierarchy take about as long as the monitor's
    exec, plan load and set-up.  Not with a systemd scope (its own gate)
    nor on pure v2 (one group, cloned into)."""
    return (p.groups is not None and p.groups.scope is None
            and p.groups.plan.into is None and bool(p.groups.plan.dirs))


def finish_cgroups(root: Path, p: Prepared, state: dict[str, Any],
                   undo: contextlib.ExitStack) -> None:
    """Make the container's groups and write their limits (in a systemd
    scope: once it exists)."""
    if p.groups is None:
        return
    _note_cgroups(p, state)
    write_state(root, p.container_id, state)
    make_cgroups(root, p, state, undo)


def _note_cgroups(p: Prepared, state: dict[str, Any]) -> None:
    """The groups in the state record, for the caller to write before
    they are made, so a delete after a crash at any point from there
    removes them (a missing group is no error there)."""
    if p.groups is None:
        return
    state["_cgroups"] = [str(d) for d in cgroups.missing_dirs(p.groups.plan)]
    state["_cgroup_dirs"] = [str(d) for d in p.groups.plan.dirs]
    state["_cgroups_path"] = p.groups.path
    state["_cgroup_root"] = p.groups.root


def make_cgroups(root: Path, p: Prepared, state: dict[str, Any],
                undo: contextlib.ExitStack) -> None:
    """Make the groups _note_cgroups recorded, with their undo (also the
    caller's step after make(cgroups_later=True))."""
    if p.groups is None:
        return
    made = [str(d) for d in cgroups.create(p.groups.plan)]
    undo.callback(cgroups.remove, [Path(d) for d in made])
    if made != state["_cgroups"]:   # another create made a shared parent meanwhile
        state["_cgroups"] = made
        write_state(root, p.container_id, state)


def scope_gate(root: Path, p: Prepared, state: dict[str, Any], undo: contextlib.ExitStack,
               scope: ContainerScope) -> Callable[[], None]:
    """What must happen between make() and the clone into a systemd scope:
    wait for its start job, then make the groups."""
    def gate() -> None:
        scope.ready()
        finish_cgroups(root, p, state, undo)
    return gate


def _start_scope(root: Path, p: Prepared, state: dict[str, Any],
                 undo: contextlib.ExitStack) -> ContainerScope | None:
    """The container's systemd scope, recorded before it is started so a
    delete after a crash stops it; its job is left running."""
    if p.groups is None or p.groups.scope is None:
        return None
    path = p.groups.scope
    state["_systemd_units"] = [path.unit]
    write_state(root, p.container_id, state)
    manager = system_manager()
    resources = (p.spec.get("linux") or {}).get("resources") or {}
    scope = start_container_scope(manager, path, resources,
                                  f"crio-native container {p.container_id}")
    undo.callback(manager.stop_unit, path.unit)
    undo.callback(scope.anchor.release)
    undo.callback(scope.abandon)
    return scope


def create_hooks_callback(state: dict[str, Any],
                          hooks: dict[str, list[Hook]]) -> Callable[[int], None] | None:
    """The callback that runs the create hooks while the child waits, or
    None when the spec has none."""
    if not any(hooks.get(k) for k in CREATE_KINDS):
        return None

    def on_hooks(pid: int) -> None:
        # runtime-spec runtime.md: these run at lifecycle steps 3-5, after
        # the environment was made (step 2), and the state's "created" is
        # "after step 2 ... neither exited nor executed the program" (runc
        # 1.1 sends "creating" here)
        hook_state = {**oci_state_from_record(state), "status": "created", "pid": pid}
        for kind in CREATE_KINDS:
            run_hooks(kind, hooks.get(kind, []), hook_state)
    return on_hooks


def record_created(root: Path, container_id: str, state: dict[str, Any], pid: int) -> None:
    state.update(status="created", pid=pid, _start_time=start_time_of(pid),
                 created=time.time())
    write_state(root, container_id, state)
