"""What every CRI handler may reach: the effective config and daemon-wide state."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from crio_native.config import Config, LoadedConfig
from crio_native.errors import Unavailable

if TYPE_CHECKING:
    from crio_native.container.manager import ContainerManager
    from crio_native.image.service import ImageService
    from crio_native.runtime.registry import HandlerSet
    from crio_native.sandbox.manager import SandboxManager
    from crio_native.streaming.endpoint import StreamingEndpoint


@dataclass
class DaemonContext:
    loaded: LoadedConfig
    started_at: float = field(default_factory=time.time)
    pod_cidr: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    # made on first use by cri.image.images_of()
    images: ImageService | None = None
    # made by the daemon at start-up (tests make only the ones they use)
    sandboxes: SandboxManager | None = None
    handlers: HandlerSet | None = None
    containers: ContainerManager | None = None
    # the Exec/Attach/PortForward URL server
    streaming: StreamingEndpoint | None = None

    @property
    def config(self) -> Config:
        return self.loaded.config


# The daemon makes the managers at start-up, before it serves; these say so
# to the type checker and answer Unavailable instead of an AttributeError on
# None if an RPC ever reaches a context without them.
def sandboxes_of(ctx: DaemonContext) -> SandboxManager:
    if ctx.sandboxes is None:
        raise Unavailable("the sandbox manager is not started")
    return ctx.sandboxes


def containers_of(ctx: DaemonContext) -> ContainerManager:
    if ctx.containers is None:
        raise Unavailable("the container manager is not started")
    return ctx.containers


def handlers_of(ctx: DaemonContext) -> HandlerSet:
    if ctx.handlers is None:
        raise Unavailable("the runtime handlers are not loaded")
    return ctx.handlers
