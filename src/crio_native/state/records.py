"""Records on disk and in memory, with name reservations: the one store
behind pod sandboxes and containers.

Each record is <directory>/<id>.json, written atomically.  A record's
`name_key` maps to at most one id, so a name cannot be taken twice.

Durability (docs/recovery.md, "Durability"): a save is fsynced only when
the caller says the record notes something that outlives a reboot and
that nothing else durable notes (a pod's network attachment before CNI
ADD: its IPAM lease is on disk).  Every other save is atomic without
fsync: a daemon crash cannot lose it (the page cache outlives the
process), and what it notes (processes, mounts, pins, cgroups, the
runroot) a reboot ends anyway.  A power loss may then leave a record
empty or cut short: load() takes that for a write the loss interrupted."""
from __future__ import annotations

import dataclasses
import logging
import threading
from pathlib import Path
from typing import Any, Callable, Generic, Protocol, Self, TypeVar

from crio_native.errors import NotFound
from crio_native.logsetup import fields
from crio_native.state.files import atomic_write_json, interrupted_writes, read_json

log = logging.getLogger(__name__)


class Record(Protocol):
    id: str

    @property
    def name_key(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=Record)


class JsonRecord:
    """to_dict/from_dict for a record dataclass; keys a newer version wrote
    and this one does not know are dropped on load."""

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = dataclasses.asdict(self)  # type: ignore[call-overload]
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Self:
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in doc.items() if k in known})


class RecordStore(Generic[R]):
    def __init__(self, directory: str | Path, from_dict: Callable[[dict[str, Any]], R],
                 kind: str):
        self.directory = Path(directory)
        self.from_dict = from_dict
        self.kind = kind                      # "pod sandbox", "container": for messages
        self.lock = threading.RLock()
        self._records: dict[str, R] = {}
        self._names: dict[str, str] = {}
        # ids of records kept on disk that load() could not read for a
        # reason other than an interrupted write: sweeps leave what they own
        self.unreadable: set[str] = set()

    def load(self) -> list[R]:
        """Read every record from disk (at startup), after sweeping the temp
        files of writes a crash interrupted."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.lock:
            self.sweep_interrupted_writes()
            for path in sorted(self.directory.glob("*.json")):
                record = self._read(path)
                if record is None:
                    continue
                self._records[record.id] = record
                self._names[record.name_key] = record.id
            return list(self._records.values())

    def _read(self, path: Path) -> R | None:
        try:
            doc = read_json(path)
        except ValueError as e:
            if not path.name.startswith("."):    # save() names no record so
                self._drop_cut_short(path, e)
                return None
            problem: Exception = e
        except OSError as e:
            problem = e
        else:
            try:
                return self.from_dict(doc)
            except (ValueError, TypeError) as e:
                problem = e
        log.error(f"unreadable {self.kind} record",
                  extra=fields(path=str(path), error=str(problem)))
        self.unreadable.add(path.stem)
        return None

    def _drop_cut_short(self, path: Path, error: ValueError) -> None:
        """A record that is not JSON (empty, or cut short): a save without
        fsync that a power loss interrupted.  What the record noted of the
        pod or container is found by its id (the sweeps of pins, pod and
        run dirs, rootfs and cgroups; CNI GC from its durable cache), so
        the record goes, logged, as a save cut short by a crash would."""
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return
        except OSError as e:
            log.error(f"cannot remove a {self.kind} record a power loss cut short",
                      extra=fields(path=str(path), error=str(e)))
            self.unreadable.add(path.stem)
            return
        log.warning(f"removed a {self.kind} record a power loss cut short (an interrupted "
                    "write): what it owned is swept by id", extra=fields(
                        path=str(path), id=path.stem, size=size, error=str(error)))

    def sweep_interrupted_writes(self) -> None:
        """Remove `.<id>.json.<random>`: a save the process died in before
        its rename.  The record it was writing is the one on disk (or none,
        for a first save that never finished)."""
        for path in interrupted_writes(self.directory, ".json"):
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as e:
                log.error(f"cannot remove the temp file of an interrupted {self.kind} "
                          "record write", extra=fields(path=str(path), error=str(e)))
                continue
            log.warning(f"removed the temp file of an interrupted {self.kind} record write",
                        extra=fields(path=str(path)))

    def reserve(self, record: R) -> R | None:
        """Claim the record's name; returns the record already holding it, if any."""
        with self.lock:
            holder = self._names.get(record.name_key)
            if holder is not None:
                return self._records[holder]
            self._names[record.name_key] = record.id
            self._records[record.id] = record
            return None

    def claim(self, record: R, settle: Callable[[R], str | None]) -> str | None:
        """Reserve the record's name.  While another record holds it,
        `settle(holder)` answers: the id to return instead (a retry of the
        same request), or None to try the reservation again (the holder
        failed and is gone).  None once the name is this record's."""
        while True:
            holder = self.reserve(record)
            if holder is None:
                return None
            answer = settle(holder)
            if answer is not None:
                return answer

    def save(self, record: R, durable: bool = True) -> None:
        """`durable=False`: atomic, not fsynced (see the module's text for
        when that is enough)."""
        with self.lock:
            atomic_write_json(self.directory / f"{record.id}.json", record.to_dict(),
                              durable=durable)

    def drop(self, record: R) -> None:
        with self.lock:
            (self.directory / f"{record.id}.json").unlink(missing_ok=True)
            self._records.pop(record.id, None)
            if self._names.get(record.name_key) == record.id:
                del self._names[record.name_key]

    def known_ids(self) -> set[str]:
        """The ids of the records loaded and of those kept on disk that
        load() could not read: what a start-up sweep must leave alone."""
        with self.lock:
            return set(self._records) | self.unreadable

    def find(self, record_id: str) -> R | None:
        """By full id or unique prefix, as crictl users type them."""
        with self.lock:
            if record_id in self._records:
                return self._records[record_id]
            matches = [r for i, r in self._records.items() if record_id and i.startswith(record_id)]
            return matches[0] if len(matches) == 1 else None

    def get(self, record_id: str, rpc: str) -> R:
        record = self.find(record_id)
        if record is None:
            raise NotFound(f"{rpc}: {self.kind} {record_id!r} not found")
        return record

    def all(self) -> list[R]:
        with self.lock:
            return list(self._records.values())
