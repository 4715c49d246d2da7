"""Sandbox records on disk and in memory, with name reservations.

Each record is <root>/sandboxes/<id>.json, written crash-safely.  A name
(name, namespace, uid, attempt) maps to at most one sandbox id."""
from __future__ import annotations

import logging
import threading
from pathlib import Path

from crio_native.errors import NotFound
from crio_native.logsetup import fields
from crio_native.sandbox.record import SandboxRecord
from crio_native.state.files import atomic_write_json, read_json

log = logging.getLogger(__name__)


class SandboxStore:
    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.lock = threading.RLock()
        self._records: dict[str, SandboxRecord] = {}
        self._names: dict[str, str] = {}

    def load(self) -> list[SandboxRecord]:
        """Read every record from disk (at startup)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.lock:
            for path in sorted(self.directory.glob("*.json")):
                try:
                    record = SandboxRecord.from_dict(read_json(path))
                except (OSError, ValueError, TypeError) as e:
                    log.error("unreadable sandbox record", extra=fields(path=str(path), error=str(e)))
                    continue
                self._records[record.id] = record
                self._names[record.name_key] = record.id
            return list(self._records.values())

    def reserve(self, record: SandboxRecord) -> SandboxRecord | None:
        """Claim the record's name; returns the sandbox already holding it, if any."""
        with self.lock:
            holder = self._names.get(record.name_key)
            if holder is not None:
                return self._records[holder]
            self._names[record.name_key] = record.id
            self._records[record.id] = record
            return None

    def save(self, record: SandboxRecord) -> None:
        with self.lock:
            atomic_write_json(self.directory / f"{record.id}.json", record.to_dict())

    def drop(self, record: SandboxRecord) -> None:
        with self.lock:
            (self.directory / f"{record.id}.json").unlink(missing_ok=True)
            self._records.pop(record.id, None)
            if self._names.get(record.name_key) == record.id:
                del self._names[record.name_key]

    def find(self, sandbox_id: str) -> SandboxRecord | None:
        """By full id or unique prefix, as crictl users type them."""
        with self.lock:
            if sandbox_id in self._records:
                return self._records[sandbox_id]
            matches = [r for i, r in self._records.items() if sandbox_id and i.startswith(sandbox_id)]
            return matches[0] if len(matches) == 1 else None

    def get(self, sandbox_id: str, rpc: str) -> SandboxRecord:
        record = self.find(sandbox_id)
        if record is None:
            raise NotFound(f"{rpc}: pod sandbox {sandbox_id!r} not found")
        return record

    def all(self) -> list[SandboxRecord]:
        with self.lock:
            return list(self._records.values())
