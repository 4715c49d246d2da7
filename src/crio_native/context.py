"""What every CRI handler may reach: the effective config and daemon-wide state."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from crio_native.config import Config, LoadedConfig


@dataclass
class DaemonContext:
    loaded: LoadedConfig
    started_at: float = field(default_factory=time.time)
    pod_cidr: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    # crio_native.image.service.ImageService, made on first use by cri.image.images_of().
    images: object | None = None
    # crio_native.sandbox.manager.SandboxManager, made by the daemon at start-up.
    sandboxes: object | None = None
    # crio_native.runtime.handlers.HandlerSet and
    # crio_native.container.manager.ContainerManager, likewise.
    handlers: object | None = None
    containers: object | None = None
    # crio_native.streaming.server.StreamingServer (Exec/Attach/PortForward URLs).
    streaming: object | None = None

    @property
    def config(self) -> Config:
        return self.loaded.config
