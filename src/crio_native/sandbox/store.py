"""Sandbox records: <root>/sandboxes/<id>.json, one name (name, namespace,
uid, attempt) per sandbox id."""
from __future__ import annotations

from pathlib import Path

from crio_native.sandbox.record import SandboxRecord
from crio_native.state.records import RecordStore


class SandboxStore(RecordStore[SandboxRecord]):
    def __init__(self, directory: str | Path):
        super().__init__(directory, SandboxRecord.from_dict, "pod sandbox")
