"""Making, storing and reading each started container's attestation record.

StartContainer signs the record just before it releases the process, so no
container runs its program without one; it is stored as
<root>/containers/<id>.attestation (beside the container's record, never
matched by the records' `*.json`), removed with the container, and returned
as the `attestation` key of verbose ContainerStatus info."""
from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from crio_native.attestation import record as att
from crio_native.attestation.keys import ALGORITHM_NAME, NodeKey, ensure_node_key
from crio_native.config.sections import Config
from crio_native.spec.allowed import handler_prefixes, is_allowed
from crio_native.state.files import atomic_write, interrupted_writes

if TYPE_CHECKING:
    from crio_native.container.record import ContainerRecord
    from crio_native.sandbox.record import SandboxRecord

SUFFIX = ".attestation"
LANDLOCK_ANNOTATION = "landlock.crio-native.io/"


def record_path(directory: str | Path, container_id: str) -> Path:
    return Path(directory) / f"{container_id}{SUFFIX}"


def read(directory: str | Path, container_id: str) -> str | None:
    try:
        return record_path(directory, container_id).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def discard(directory: str | Path, container_id: str) -> None:
    record_path(directory, container_id).unlink(missing_ok=True)


def landlock_policy(config: Config, sandbox: SandboxRecord | None,
                    container: ContainerRecord) -> str | None:
    """The container's Landlock annotation value when its handler honours it."""
    if sandbox is None:
        return None
    key = LANDLOCK_ANNOTATION + container.name
    if key not in sandbox.annotations:
        return None
    if not is_allowed(handler_prefixes(config, container.runtime_handler), key):
        return None
    return sandbox.annotations[key]


class Attestor:
    """Signs with `key`, or with the node key loaded at the first record
    when given none (keys.py: the daemon leaves `cryptography` unloaded
    until a container starts)."""

    def __init__(self, config: Config, key: NodeKey | None, directory: str | Path,
                 image_signature: Callable[[str], str] | None = None):
        self.config = config
        # the signature policy's verdict kept with an image at its pull, by
        # image id (ImageService.signature_of); "unverified" without one
        self.image_signature = image_signature or (lambda _image_id: att.UNVERIFIED)
        self._key = key
        self._key_lock = threading.Lock()
        self.directory = Path(directory)
        self.hostname = socket.gethostname()

    @property
    def key(self) -> NodeKey:
        if self._key is None:
            with self._key_lock:
                if self._key is None:
                    self._key = NodeKey.load_or_create(self.config.root,
                                                       self.config.runtime.attestation_key)
        return self._key

    @classmethod
    def for_config(cls, config: Config,
                   image_signature: Callable[[str], str] | None = None) -> "Attestor":
        """The node key is made here on the first start (ConfigError if the
        configured one cannot be used); it is loaded at the first record."""
        ensure_node_key(config.root, config.runtime.attestation_key)
        directory = Path(config.root) / "containers"
        for leftover in interrupted_writes(directory, SUFFIX):   # a write a crash cut short
            leftover.unlink(missing_ok=True)
        return cls(config, None, directory, image_signature)

    def record(self, container: ContainerRecord, spec: dict[str, Any],
               sandbox: SandboxRecord | None) -> dict[str, Any]:
        body = att.record_body(
            spec,
            container={"id": container.id, "name": container.name,
                       "attempt": container.attempt, "pod_id": container.sandbox_id,
                       "pod_name": sandbox.name if sandbox else "",
                       "pod_namespace": sandbox.namespace if sandbox else "",
                       "pod_uid": sandbox.uid if sandbox else "",
                       "started_at": container.started_at},
            image={"name": container.image, "ref": container.image_ref,
                   "digest": att.image_digest(container.image_ref), "id": container.image_id,
                   "signature": self.image_signature(container.image_id)},
            handler=container.runtime_handler or self.config.runtime.default_runtime,
            landlock=landlock_policy(self.config, sandbox, container),
            node={"hostname": self.hostname, "key_id": self.key.id,
                  "algorithm": ALGORITHM_NAME})
        return att.signed_record(body, self.key.sign)

    def attest(self, container: ContainerRecord, spec: dict[str, Any],
               sandbox: SandboxRecord | None) -> dict[str, Any]:
        """Sign and store the record; returns it."""
        doc = self.record(container, spec, sandbox)
        self.directory.mkdir(parents=True, exist_ok=True)
        atomic_write(record_path(self.directory, container.id), att.canonical_json(doc),
                     mode=0o644)
        return doc

    def discard(self, container_id: str) -> None:
        discard(self.directory, container_id)

