"""Which pod annotations a handler lets switch on runtime features.

Feature annotations (a seccomp recorder, a Landlock policy, the seccomp
notifier, ...) are honoured only when the pod's handler lists a prefix of the
key in `runtime.runtimes.<name>.allowed_annotations`, as CRI-O does; any
other such annotation is ignored with one log line."""
from __future__ import annotations

import logging

from crio_native.config.sections import Config

log = logging.getLogger(__name__)


def handler_prefixes(daemon: Config, handler: str) -> list[str]:
    """The allowed prefixes of `handler` ("" means the default handler)."""
    name = handler or daemon.runtime.default_runtime
    entry = daemon.runtime.runtimes.get(name)
    return list(entry.allowed_annotations) if entry else []


def is_allowed(prefixes: list[str], key: str) -> bool:
    return any(key.startswith(p) for p in prefixes)


def feature_annotation(daemon: Config, handler: str, annotations: dict[str, str],
                       key: str, container_id: str = "") -> str | None:
    """The value of pod annotation `key` when the handler allows it, else None
    (logging that a present but disallowed annotation was ignored)."""
    if key not in annotations:
        return None
    if is_allowed(handler_prefixes(daemon, handler), key):
        return annotations[key]
    log.info("ignoring annotation %s on container %s: handler %r does not list it in "
             "allowed_annotations", key, container_id or "?",
             handler or daemon.runtime.default_runtime)
    return None
