"""OCI hooks (runtime-spec config.md "POSIX-platform Hooks"): parsed and
validated with the plan, run by the runtime with the container's state JSON
on stdin.

createRuntime (and the deprecated prestart) and createContainer run while the
launched child waits before pivot_root; poststart after start; poststop after
delete.  startContainer hooks run inside the container, by the container
process itself after `start` (the plan carries them: plan.start_hook_records,
src/_native/hooks.c), so they are only parsed here."""
from __future__ import annotations

import json
import logging
import os
import subprocess
from dataclasses import dataclass
from typing import Any

from crio_native.errors import FailedPrecondition, InvalidArgument

log = logging.getLogger(__name__)

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
         "poststop")
# hooks that run while the child waits at its hook point, in this order
CREATE_KINDS = ("prestart", "createRuntime", "createContainer")


@dataclass(frozen=True)
class Hook:
    path: str
    args: tuple[str, ...]
    env: tuple[str, ...]
    timeout: int | None

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "args": list(self.args), "env": list(self.env),
                "timeout": self.timeout}


def _hook(h: Any, field: str) -> Hook:
    if not isinstance(h, dict):
        raise InvalidArgument(f"config.json: {field}: must be an object")
    path = h.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidArgument(f"config.json: {field}.path: must be an absolute path, got {path!r}")
    timeout = h.get("timeout")
    if timeout is not None and (not isinstance(timeout, int) or timeout <= 0):
        raise InvalidArgument(f"config.json: {field}.timeout: must be a positive integer")
    args, env = h.get("args") or [path], h.get("env") or []
    for key, values in (("args", args), ("env", env)):
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise InvalidArgument(f"config.json: {field}.{key}: must be an array of strings")
    return Hook(path, tuple(args), tuple(env), timeout)


def parse_hooks(spec: dict) -> dict[str, list[Hook]]:
    section = spec.get("hooks") or {}
    if not isinstance(section, dict):
        raise InvalidArgument("config.json: hooks: must be an object")
    out: dict[str, list[Hook]] = {}
    for kind, hooks in section.items():
        if kind not in KINDS:
            raise InvalidArgument(f"config.json: hooks.{kind}: unknown hook kind")
        if not isinstance(hooks, list):
            raise InvalidArgument(f"config.json: hooks.{kind}: must be an array")
        out[kind] = [_hook(h, f"hooks.{kind}[{i}]") for i, h in enumerate(hooks)]
    return out


def start_hook_failure(hook: Hook, index: int, kind: int, value: int) -> str:
    """The message for a failed startContainer hook, from the child's
    crn_hook_result (plan.h enum crn_hook_failure)."""
    what = f"startContainer hook #{index} ({hook.path})"
    if kind == 1:
        return f"{what}: exit status {value}"
    if kind == 2:
        return f"{what}: killed by signal {value}"
    if kind == 3:
        return f"{what}: timed out after {value}s"
    if kind == 5:
        return f"{what}: reading the state: {os.strerror(value)}"
    return f"{what}: {os.strerror(value)}"


def hook_from_json(doc: dict[str, Any]) -> Hook:
    return Hook(doc["path"], tuple(doc["args"]), tuple(doc["env"]), doc["timeout"])


def run_hook(kind: str, index: int, hook: Hook, state: dict[str, Any]) -> None:
    """Run one hook; a failure raises FailedPrecondition naming it."""
    what = f"{kind} hook #{index} ({hook.path})"
    env = dict(e.split("=", 1) for e in hook.env if "=" in e)
    try:
        p = subprocess.run(list(hook.args), executable=hook.path, env=env,
                           input=json.dumps(state).encode(), capture_output=True,
                           timeout=hook.timeout, close_fds=True)
    except subprocess.TimeoutExpired:
        raise FailedPrecondition(f"{what}: timed out after {hook.timeout}s") from None
    except OSError as e:
        raise FailedPrecondition(f"{what}: {e.strerror}") from e
    if p.returncode != 0:
        detail = p.stderr.decode(errors="replace").strip()[-300:]
        raise FailedPrecondition(f"{what}: exit status {p.returncode}: {detail}")


def run_hooks(kind: str, hooks: list[Hook], state: dict[str, Any], *, warn_only: bool = False
              ) -> None:
    """Run the hooks of one kind in order.  A failure stops the chain and
    raises, or (poststart, poststop: warn_only) is logged and the rest run."""
    for i, hook in enumerate(hooks):
        try:
            run_hook(kind, i, hook, state)
        except FailedPrecondition as e:
            if not warn_only:
                raise
            log.warning("%s", e)
