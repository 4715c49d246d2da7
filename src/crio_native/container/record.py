"""What the daemon remembers about one container, as a JSON record."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crio_native.state.records import JsonRecord

CREATING = "creating"   # half-made: rolled back at restart
CREATED = "created"
RUNNING = "running"
EXITED = "exited"


@dataclass
class ContainerRecord(JsonRecord):
    id: str
    sandbox_id: str
    name: str
    attempt: int
    state: str = CREATING
    created_at: int = 0                  # ns since the epoch
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""                     # Completed, Error, OOMKilled
    message: str = ""
    image: str = ""                      # as requested (config.image.image)
    # the image as the user named it (config.image.user_specified_image: the
    # kubelet puts the pod spec's image there and the image id in `image`)
    user_image: str = ""
    image_annotations: dict[str, str] = field(default_factory=dict)
    image_ref: str = ""                  # the image's repo digest (its id without one)
    image_id: str = ""
    runtime_handler: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    log_path: str = ""
    directory: str = ""                  # bundle (config.json) and monitor files
    rootfs: str = ""
    mounts: list[dict[str, Any]] = field(default_factory=list)   # CRI Mount fields
    pid: int = 0
    monitor_pid: int = 0
    cgroup_dirs: list[str] = field(default_factory=list)
    stop_signal: str = "SIGTERM"
    tty: bool = False
    stdin: bool = False
    stdin_once: bool = False
    request_digest: str = ""             # tells a retried create from a new one
    # the stop released the runtime's state and the rootfs mount (manager._release)
    released: bool = False

    @property
    def name_key(self) -> str:
        return f"{self.name}_{self.sandbox_id}_{self.attempt}"

    @property
    def monitor_dir(self) -> str:
        return f"{self.directory}/monitor"

    @property
    def bundle(self) -> str:
        return f"{self.directory}/bundle"

