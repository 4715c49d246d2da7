"""Runtime handlers by RuntimeClass handler name, made from
`runtime.runtimes.<name>` in the config (DESIGN.md invariant 5)."""
from __future__ import annotations

import shutil
import threading
from pathlib import Path

from crio_native.config import Config
from crio_native.errors import FailedPrecondition, InvalidArgument
from crio_native.runtime.handler import RuntimeHandler


def runtime_root_of(name: str, config: Config) -> Path:
    """The handler's state directory: runtime_root, else <runroot>/runtimes/<name>."""
    configured = config.runtime.runtimes[name].runtime_root
    return Path(configured) if configured else Path(config.runroot) / "runtimes" / name


def _runtime_path(name: str, configured: str) -> str:
    """runtime_path, else the handler's name looked up in $PATH (as CRI-O does)."""
    if configured:
        return configured
    found = shutil.which(name)
    if found is None:
        raise FailedPrecondition(f"runtime handler {name}: runtime.runtimes.{name}.runtime_path "
                                 f"is empty and no {name!r} is in $PATH")
    return found


def make_handler(name: str, config: Config) -> RuntimeHandler:
    """A new handler for `runtime.runtimes.<name>`."""
    handlers = config.runtime.runtimes
    if name not in handlers:
        raise InvalidArgument(f"runtime_handler: no handler {name!r} in runtime.runtimes "
                              f"(have: {', '.join(sorted(handlers))})")
    entry = handlers[name]
    root = runtime_root_of(name, config)
    if entry.runtime_type == "oci":
        from crio_native.runtime.oci_cli import OciCliHandler

        return OciCliHandler(name, _runtime_path(name, entry.runtime_path), root,
                             systemd_cgroup=config.runtime.cgroup_manager == "systemd")
    if entry.runtime_type == "builtin":
        # imported here: the built-in runtime pulls in the compiled core
        from crio_native.runtime.builtin.handler import BuiltinHandler

        return BuiltinHandler(name, root, config.runtime.cgroup_root or None)
    if entry.runtime_type == "vm":
        from crio_native.runtime.shim.handler import VmShimHandler

        # runtime_path, else containerd's name for the shim of runtime
        # io.containerd.<name>.v2 (containerd-shim-kata-v2 for kata)
        shim = entry.runtime_path or shutil.which(f"containerd-shim-{name}-v2")
        if not shim:
            raise FailedPrecondition(f"runtime handler {name}: runtime.runtimes.{name}."
                                     f"runtime_path is empty and no containerd-shim-{name}-v2 "
                                     "is in $PATH")
        return VmShimHandler(name, shim, root, address=config.api.listen)
    raise FailedPrecondition(f"runtime handler {name}: unknown runtime_type "
                             f"{entry.runtime_type!r}")


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
