"""Runtime handlers by RuntimeClass handler name, made from
`runtime.runtimes.<name>` in the config (DESIGN.md invariant 5).

HANDLER_TYPES is the whole table from `runtime_type` to the class that
serves it: a new kind of runtime is a folder under runtime/ whose handler
class has a `from_config(name, config)` constructor, plus one line here.
Classes are named by import path and loaded on first use, so a daemon that
never runs a vm pod never imports the shim client, and the compiled core is
loaded only by the handlers that need it."""
from __future__ import annotations

import importlib
import threading
from pathlib import Path
from typing import Protocol

from crio_native.config import Config
from crio_native.errors import FailedPrecondition, InvalidArgument
from crio_native.runtime.handler import RuntimeHandler

HANDLER_TYPES: dict[str, str] = {
    "builtin": "crio_native.runtime.builtin.handler:BuiltinHandler",
    "oci": "crio_native.runtime.oci.handler:OciCliHandler",
    "vm": "crio_native.runtime.shim.handler:VmShimHandler",
}


class HandlerFactory(Protocol):
    def from_config(self, name: str, config: Config) -> RuntimeHandler: ...


def runtime_root_of(name: str, config: Config) -> Path:
    """The handler's state directory: runtime_root, else <runroot>/runtimes/<name>."""
    configured = config.runtime.runtimes[name].runtime_root
    return Path(configured) if configured else Path(config.runroot) / "runtimes" / name


def handler_class(runtime_type: str) -> HandlerFactory:
    """The class serving `runtime_type` (imported now)."""
    target = HANDLER_TYPES.get(runtime_type)
    if target is None:
        raise FailedPrecondition(f"unknown runtime_type {runtime_type!r} "
                                 f"(have: {', '.join(sorted(HANDLER_TYPES))})")
    module, _, attr = target.partition(":")
    cls: HandlerFactory = getattr(importlib.import_module(module), attr)
    return cls


def make_handler(name: str, config: Config) -> RuntimeHandler:
    """A new handler for `runtime.runtimes.<name>`."""
    handlers = config.runtime.runtimes
    if name not in handlers:
        raise InvalidArgument(f"runtime_handler: no handler {name!r} in runtime.runtimes "
                              f"(have: {', '.join(sorted(handlers))})")
    try:
        cls = handler_class(handlers[name].runtime_type)
    except FailedPrecondition as e:
        raise FailedPrecondition(f"runtime handler {name}: {e}") from None
    return cls.from_config(name, config)


class HandlerSet:
    """One handler per configured name, made on first use and kept."""

    def __init__(self, config: Config):
        self.config = config
        self._handlers: dict[str, RuntimeHandler] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return sorted(self.config.runtime.runtimes)

    def get(self, name: str) -> RuntimeHandler:
        """The handler called `name` ("" is runtime.default_runtime, as the
        CRI's empty runtime_handler means the default)."""
        name = name or self.config.runtime.default_runtime
        with self._lock:
            handler = self._handlers.get(name)
            if handler is None:
                handler = make_handler(name, self.config)
                self._handlers[name] = handler
            return handler
