"""A Landlock policy per container, from the pod annotation
`landlock.crio-native.io/<container name>`:

    {"read_only": [paths], "read_write": [paths],
     "tcp_bind": [ports], "tcp_connect": [ports], "required": bool}

honoured only when the pod's handler lists the prefix in its
allowed_annotations (spec/allowed.py).  Everything the kernel's Landlock ABI
can restrict and the policy does not grant is denied; the built-in runtime
applies it in the container's process before execve.  The checked policy
travels to the runtime as the spec annotation `org.crio-native.landlock`
(which the request itself cannot set).

A handler that cannot apply Landlock (runc and crun have no support; the
built-in runtime on a kernel without Landlock) refuses a `required` policy
and runs the container without one otherwise, with a log line."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from crio_native.errors import FailedPrecondition, InvalidArgument
from crio_native.spec.allowed import feature_annotation
from crio_native.spec.inputs import RPC, SpecBuild, SpecInputs

log = logging.getLogger(__name__)

ANNOTATION_PREFIX = "landlock.crio-native.io/"
SPEC_ANNOTATION = "org.crio-native.landlock"
KEYS = ("read_only", "read_write", "tcp_bind", "tcp_connect", "required")
MAX_ENTRIES = 256


class PolicyError(ValueError):
    """What is wrong with a policy (the caller names where it came from)."""


@dataclass(frozen=True)
class Policy:
    read_only: tuple[str, ...] = ()
    read_write: tuple[str, ...] = ()
    tcp_bind: tuple[int, ...] = ()
    tcp_connect: tuple[int, ...] = ()
    required: bool = False

    def to_json(self) -> str:
        return json.dumps({"read_only": list(self.read_only),
                           "read_write": list(self.read_write),
                           "tcp_bind": list(self.tcp_bind),
                           "tcp_connect": list(self.tcp_connect),
                           "required": self.required}, sort_keys=True)


def _paths(doc: dict[str, Any], key: str) -> tuple[str, ...]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise PolicyError(f"{key}: must be a list of absolute paths")
    if len(value) > MAX_ENTRIES:
        raise PolicyError(f"{key}: more than {MAX_ENTRIES} entries")
    out = []
    for i, p in enumerate(value):
        if not isinstance(p, str) or not p.startswith("/"):
            raise PolicyError(f"{key}[{i}]: must be an absolute path, got {p!r}")
        if "\0" in p or ".." in p.split("/"):
            raise PolicyError(f"{key}[{i}]: must not contain NUL or '..': {p!r}")
        out.append(p)
    return tuple(dict.fromkeys(out))


def _ports(doc: dict[str, Any], key: str) -> tuple[int, ...]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise PolicyError(f"{key}: must be a list of TCP ports")
    if len(value) > MAX_ENTRIES:
        raise PolicyError(f"{key}: more than {MAX_ENTRIES} entries")
    out = []
    for i, port in enumerate(value):
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise PolicyError(f"{key}[{i}]: must be a port number 0-65535, got {port!r}")
        out.append(port)
    return tuple(sorted(set(out)))


def parse_policy(text: str) -> Policy:
    """The policy in `text`; PolicyError saying what is wrong."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise PolicyError(f"not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise PolicyError("must be a JSON object")
    unknown = sorted(set(doc) - set(KEYS))
    if unknown:
        raise PolicyError(f"unknown key(s) {', '.join(map(repr, unknown))} "
                          f"(known: {', '.join(KEYS)})")
    required = doc.get("required", False)
    if not isinstance(required, bool):
        raise PolicyError(f"required: must be true or false, got {required!r}")
    return Policy(read_only=_paths(doc, "read_only"), read_write=_paths(doc, "read_write"),
                  tcp_bind=_ports(doc, "tcp_bind"), tcp_connect=_ports(doc, "tcp_connect"),
                  required=required)


def with_landlock(build: SpecBuild, inputs: SpecInputs) -> None:
    """After with_annotations: the request's own annotations never carry a
    policy to the runtime, only an allowed pod annotation does."""
    annotations = build.spec.setdefault("annotations", {})
    annotations.pop(SPEC_ANNOTATION, None)
    key = ANNOTATION_PREFIX + inputs.config.metadata.name
    pod = inputs.sandbox
    value = feature_annotation(inputs.daemon, pod.runtime_handler, pod.annotations, key,
                               inputs.container_id)
    if value is None:
        return
    try:
        policy = parse_policy(value)
    except PolicyError as e:
        raise InvalidArgument(f"{RPC}: pod annotation {key}: {e}") from None
    if inputs.landlock_abi < 1:
        handler = pod.runtime_handler or inputs.daemon.runtime.default_runtime
        why = (f"runtime handler {handler!r} cannot apply Landlock (only the builtin runtime "
               "can, on a kernel with Landlock)")
        if policy.required:
            raise FailedPrecondition(f"{RPC}: pod annotation {key}: the policy is required but "
                                     f"{why}")
        log.warning("container %s: pod annotation %s ignored: %s", inputs.container_id, key, why)
        return
    annotations[SPEC_ANNOTATION] = policy.to_json()
