"""Container records: <root>/containers/<id>.json, one name (name, pod,
attempt) per container id."""
from __future__ import annotations

from pathlib import Path

from crio_native.container.record import ContainerRecord
from crio_native.state.records import RecordStore


class ContainerStore(RecordStore[ContainerRecord]):
    def __init__(self, directory: str | Path):
        super().__init__(directory, ContainerRecord.from_dict, "container")

    def of_sandbox(self, sandbox_id: str) -> list[ContainerRecord]:
        return [r for r in self.all() if r.sandbox_id == sandbox_id]
