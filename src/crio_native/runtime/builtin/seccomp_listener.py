"""What the seccomp agent at `linux.seccomp.listenerPath` is told: the
runtime spec's "container process state" (config-linux.md), sent with the
notify fd (SCM_RIGHTS, named "seccompFd" in `fds`).

The document is built here, before clone, when the one thing it lacks is the
pid of the process being launched.  The plan's SECCOMP_LISTENER record
carries the socket path and the document cut where that pid goes (parts, each
NUL-terminated); the child learns its pid as the parent sees it from the
parent's go-ahead and sends the parts with the pid between them
(src/_native/seccomp.c), right after loading its filter."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from crio_native.runtime.builtin.records import Rec, Record, rec

# container.OCI_VERSION (a unit test keeps them equal; container.py imports
# the plan, not the other way round)
OCI_VERSION = "1.2.0"
SECCOMP_FD_NAME = "seccompFd"


@dataclass(frozen=True)
class ListenerState:
    """The container the process belongs to, as its OCI state will say."""
    id: str
    bundle: str
    annotations: dict[str, Any] = field(default_factory=dict)
    status: str = "creating"
    # The container's init when an exec'd process is launched; None when the
    # launched process is the init (its own pid goes in the state too).
    init_pid: int | None = None


def _dumps(value: Any) -> str:
    # ensure_ascii: the document can hold no NUL, which separates the parts
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True)


def process_state_parts(state: ListenerState, metadata: str) -> list[str]:
    """The container process state JSON, cut at each place the launched
    process's pid goes: "pid" and, for an init, "state.pid" (runc's layout:
    ociVersion, fds, pid, metadata, state)."""
    head = f'{{"ociVersion":{_dumps(OCI_VERSION)},"fds":[{_dumps(SECCOMP_FD_NAME)}],"pid":'
    middle = (f',"metadata":{_dumps(metadata)},"state":{{"ociVersion":{_dumps(OCI_VERSION)},'
              f'"id":{_dumps(state.id)},"status":{_dumps(state.status)},"pid":')
    tail = f',"bundle":{_dumps(state.bundle)},"annotations":{_dumps(state.annotations)}}}}}'
    if state.init_pid is None:
        return [head, middle, tail]
    return [head, f"{middle}{int(state.init_pid)}{tail}"]


def listener_record(path: str, metadata: str, state: ListenerState) -> Record:
    """SECCOMP_LISTENER: the agent's socket, then the document's parts."""
    parts = b"".join(p.encode() + b"\0" for p in process_state_parts(state, metadata))
    return rec(Rec.SECCOMP_LISTENER, path, parts)


def process_state_from_parts(parts: list[str], pid: int) -> dict[str, Any]:
    """The document the child sends for `pid` (for tests and debugging)."""
    return json.loads(str(pid).join(parts))
