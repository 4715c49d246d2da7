"""Named failpoints: fault injection at the steps of the multi-step
operations, for the crash tests only (DESIGN.md invariant 3; issue 17).

TEST-ONLY.  Armed by the environment variable CRIO_NATIVE_FAILPOINTS, read
once when this module is first imported (at daemon start-up, through the
managers), e.g.

    CRIO_NATIVE_FAILPOINTS="sandbox.run.network_added=kill"
    CRIO_NATIVE_FAILPOINTS="container.create.rootfs=error,sandbox.stop.begin=kill"

Actions: `kill` SIGKILLs the daemon itself at that point (as `kill -9` from
outside would, but at a known step); `error` raises FailpointError there
(answered INTERNAL), so the operation's own rollback runs.  A name that is
not in NAMES is refused at start-up: a typo must not make a crash test pass
without crashing anything.  Unset (every real run), `hit` returns at its
first test of an empty dict.

Every name sits at a step boundary: after the step it names is done and
before the next begins.  NAMES lists them per operation, in the order an
operation passes them; the crash tests walk that list."""
from __future__ import annotations

import os
import signal
from typing import Callable

from crio_native import steps
from crio_native.errors import Internal

ENV = "CRIO_NATIVE_FAILPOINTS"

# operation -> its failpoints, in the order the operation passes them
CATALOGUE: dict[str, tuple[str, ...]] = {
    "sandbox.run": (
        "sandbox.run.reserved",          # the CREATING record is on disk
        "sandbox.run.directory",         # <runroot>/pods/<id> made
        "sandbox.run.pins_journaled",    # the pin paths saved, nothing pinned yet
        "sandbox.run.pinned",            # net/ipc/uts pinned
        "sandbox.run.sysctls",           # sysctls and hostname applied
        "sandbox.run.shm_mounted",       # /dev/shm tmpfs mounted
        "sandbox.run.network_journaled",  # network_attached saved, no ADD yet
        "sandbox.run.loopback_added",    # lo UP in the pod's netns (no CNI plugin)
        "sandbox.run.network_added",     # CNI ADD of eth0 done, not saved
        "sandbox.run.cgroup_made",       # pod cgroup made (runtime/pod_half.py)
        "sandbox.run.infra_launched",    # the infra cloned, its pid not recorded yet
        "sandbox.run.infra_created",     # the infra waits at its barrier (runtime/builtin/pod.py)
        "sandbox.run.infra_started",     # the infra runs /pause
        "sandbox.run.infra_pinned",      # its PID namespace pinned, not saved
        "sandbox.run.handler_done",      # the runtime's part made and saved
        "sandbox.run.files_written",     # hostname, resolv.conf, hosts
        "sandbox.run.ready",             # READY saved, the answer not sent
    ),
    "sandbox.stop": (
        "sandbox.stop.begin",            # NOTREADY saved, nothing stopped yet
        # DEL runs while StopPodSandbox kills the containers (sandbox/overlap.py)
        "sandbox.stop.network_deleted",  # CNI DEL of eth0 done (and of lo, if a plugin added it)
        "sandbox.stop.network_detached",  # network_attached=False saved
        "sandbox.stop.handler_stopped",  # the containers, then the infra (or sandbox task), gone
    ),
    "sandbox.remove": (
        "sandbox.remove.begin",          # NOTREADY saved
        "sandbox.remove.handler_stopped",
        "sandbox.remove.network_detached",
        "sandbox.remove.shm_unmounted",
        "sandbox.remove.unpinned",
        "sandbox.remove.handler_removed",  # the pod cgroup is gone
        "sandbox.remove.directory_removed",  # the record is all that is left
    ),
    "container.create": (
        "container.create.reserved",     # the CREATING record is on disk
        "container.create.directory",    # <runroot>/containers/<id>/monitor made
        "container.create.rootfs",       # the overlay rootfs mounted
        "container.create.bundle",       # config.json written, log file made
        # the runtime's state dir, record and cgroups (the builtin's v1/hybrid
        # groups only recorded: made while its monitor starts, before the clone)
        "container.create.runtime_made",
        "container.create.monitor_launched",  # monitor and process up, not recorded
        "container.create.runtime_created",  # the runtime reported the create
        "container.create.created",      # CREATED saved, the answer not sent
    ),
    "container.start": (
        "container.start.journaled",     # RUNNING (starting) saved, not released yet
        "container.start.released",      # the process runs its program
        "container.start.done",          # the start finished and saved
    ),
    "container.stop": (
        "container.stop.signalled",      # the stop signal is sent
        "container.stop.killed",         # SIGKILL sent, the exit not yet recorded
        "container.stop.exited",         # the exit is recorded
        # the release of the stopped container (ContainerManager._release)
        "container.stop.runtime_deleted",  # the runtime forgot it (cgroups, monitor, state)
        "container.stop.rootfs_unmounted",  # the overlay unmounted (upper dir kept)
        "container.stop.released",       # released=True saved
    ),
    "container.remove": (
        "container.remove.stopped",      # the container has exited
        "container.remove.runtime_deleted",  # the runtime forgot it (cgroups, monitor)
        "container.remove.rootfs_removed",  # rootfs and its directory gone
        "container.remove.torn_down",    # only the record is left
    ),
}
NAMES: tuple[str, ...] = tuple(n for names in CATALOGUE.values() for n in names)
ACTIONS = ("kill", "error")

Action = Callable[[str], None]


class FailpointError(Internal):
    """The `error` action: a failure injected at a named step."""

    def __init__(self, name: str):
        super().__init__(f"failpoint {name}: injected failure")
        self.name = name


def _kill(name: str) -> None:
    # nothing after this runs: no finally, no undo, no flush (as kill -9)
    os.kill(os.getpid(), signal.SIGKILL)


def _error(name: str) -> None:
    raise FailpointError(name)


_ACTIONS: dict[str, Action] = {"kill": _kill, "error": _error}


def parse(spec: str) -> dict[str, Action]:
    """`name=action[,name=action...]` -> the armed actions; ValueError names
    the part it cannot use."""
    armed: dict[str, Action] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, action = part.partition("=")
        if not sep or name not in NAMES or action not in _ACTIONS:
            raise ValueError(f"{ENV}: {part!r}: expected NAME=ACTION with ACTION one of "
                             f"{', '.join(ACTIONS)} and NAME one of crio_native.failpoints.NAMES")
        armed[name] = _ACTIONS[action]
    return armed


_armed: dict[str, Action] = parse(os.environ.get(ENV, ""))


def hit(name: str) -> None:
    """The operation passes the failpoint `name`: note the step for the
    call's trace (steps.py) and act if it is armed."""
    steps.reached(name)
    if _armed:
        action = _armed.get(name)
        if action is not None:
            action(name)


def arm(name: str, action: str | Action) -> None:
    """In-process arming, for the fast tests (an action may be any callable,
    e.g. one that freezes the thread as if the daemon had died there)."""
    if name not in NAMES:
        raise ValueError(f"no failpoint {name!r}")
    _armed[name] = _ACTIONS[action] if isinstance(action, str) else action


def disarm(name: str | None = None) -> None:
    """Disarm `name`, or every failpoint."""
    if name is None:
        _armed.clear()
    else:
        _armed.pop(name, None)
