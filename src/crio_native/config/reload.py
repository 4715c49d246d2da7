"""What reloading the configuration (SIGHUP, `systemctl reload`) changes in a
running daemon.

The files are read again with the start-up's flags (which still win).  A key
in RELOADABLE takes its new value at once; any other changed key keeps its
running value until the next restart, and the reload says which ones those
are.  A file that no longer loads changes nothing."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from crio_native.config.load import LoadedConfig
from crio_native.config.sections import Config

# Safe to change under running pods and RPCs.  Everything else is read once
# at start-up by a component that holds on to it (sockets, state roots, the
# runtime handlers, the image service, the CNI watcher).
RELOADABLE = ("log_level", "log_format",
              "policy.files",   # the daemon compiles the rules again (docs/policy.md)
              # read by each CreateContainer, as CRI-O reloads them
              "runtime.seccomp_profile", "runtime.privileged_seccomp_profile")

UNSET = "(unset)"


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> leaf value: tables (dataclasses, and the handler table)
    are walked; lists and plain string tables are leaves."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            out.update(flatten(getattr(value, f.name), f"{prefix}{f.name}."))
        return out
    if isinstance(value, dict) and any(dataclasses.is_dataclass(v) for v in value.values()):
        out = {}
        for name, item in value.items():
            out.update(flatten(item, f"{prefix}{name}."))
        return out
    return {prefix.rstrip("."): value}


def _show(value: Any) -> str:
    if value is None:
        return UNSET
    if isinstance(value, str):
        return value if value else '""'
    return json.dumps(value)


@dataclass(frozen=True)
class Change:
    key: str
    old: Any
    new: Any

    def __str__(self) -> str:
        return f"{self.key}: {_show(self.old)} -> {_show(self.new)}"


@dataclass
class ReloadPlan:
    applied: list[Change] = field(default_factory=list)
    needs_restart: list[Change] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.applied or self.needs_restart)


def plan_reload(running: Config, wanted: Config) -> ReloadPlan:
    """Which of the changed keys are applied now and which wait for a restart."""
    old, new = flatten(running), flatten(wanted)
    plan = ReloadPlan()
    for key in sorted(old.keys() | new.keys()):
        if old.get(key) == new.get(key):
            continue
        change = Change(key, old.get(key), new.get(key))
        (plan.applied if key in RELOADABLE else plan.needs_restart).append(change)
    return plan


def apply_reload(running: LoadedConfig, wanted: LoadedConfig, plan: ReloadPlan) -> None:
    """Put the applied keys' new values (and where they came from) into the
    running configuration, in place: the daemon's components hold it."""
    for change in plan.applied:
        *path, leaf = change.key.split(".")
        target: Any = running.config
        for part in path:
            target = getattr(target, part)
        setattr(target, leaf, change.new)
        if change.key in wanted.origins:
            running.origins[change.key] = wanted.origins[change.key]
        else:
            running.origins.pop(change.key, None)


def describe(changes: list[Change]) -> str:
    return "; ".join(map(str, changes)) or "none"
