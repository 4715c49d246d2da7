"""What an exec into a running container can keep from the last one.

Probes exec the same command into the same container every few seconds,
and everything an exec plan is built from stays the same while the
container's init lives: its spec (config.json, by file stamp), its pid and
start time, its cgroups, the host's facts, the process asked for.  The plan
is a pure function of those (plan.exec_records, cgroup_records), so the
encoded plan is kept per container under a key made of all of them, and so
is the answer to "which freezer file says whether it is paused" (a lookup
over every hierarchy that is the same for the container's whole life).

A container's entry is dropped when its identity (init pid, start time,
bundle, cgroups) changes, when the runtime deletes it, and by age: at most
CONTAINERS containers and PLANS plans each are kept (a plan's inputs hold
the spec's stamp, so one built from an older config.json is never used)."""
from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Hashable

from crio_native.linux.cgroups.freezer import frozen_probe

CONTAINERS = 512
PLANS = 8


@dataclass
class _Entry:
    identity: Hashable
    is_frozen: Callable[[], bool]
    plans: "OrderedDict[Hashable, bytes]" = field(default_factory=OrderedDict)


class ExecCache:
    """Per container: the freezer probe and the last PLANS encoded plans."""

    def __init__(self) -> None:
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def _entry(self, container_id: str, identity: Hashable, dirs: list[Path]) -> _Entry:
        with self._lock:
            entry = self._entries.get(container_id)
            if entry is not None and entry.identity == identity:
                self._entries.move_to_end(container_id)
                return entry
        # outside the lock: the probe stats a file per hierarchy
        fresh = _Entry(identity, frozen_probe(dirs))
        with self._lock:
            self._entries[container_id] = fresh
            self._entries.move_to_end(container_id)
            while len(self._entries) > CONTAINERS:
                self._entries.popitem(last=False)
        return fresh

    def is_frozen(self, container_id: str, identity: Hashable, dirs: list[Path]) -> bool:
        """cgroups.is_frozen(dirs), the freezer in charge found once per container."""
        return self._entry(container_id, identity, dirs).is_frozen()

    def plan(self, container_id: str, identity: Hashable, dirs: list[Path],
             inputs: Hashable, build: Callable[[], bytes]) -> bytes:
        """The encoded plan for `inputs` (everything `build` reads besides
        the container's identity), built by `build` the first time."""
        entry = self._entry(container_id, identity, dirs)
        with self._lock:
            plan = entry.plans.get(inputs)
            if plan is not None:
                entry.plans.move_to_end(inputs)
                return plan
        plan = build()          # may raise (a bad process): nothing is kept then
        with self._lock:
            entry.plans[inputs] = plan
            while len(entry.plans) > PLANS:
                entry.plans.popitem(last=False)
        return plan

    def forget(self, container_id: str) -> None:
        with self._lock:
            self._entries.pop(container_id, None)


def process_key(process: dict[str, Any]) -> str:
    """A process object as a hashable value (its JSON, keys sorted)."""
    return json.dumps(process, sort_keys=True, separators=(",", ":"))
