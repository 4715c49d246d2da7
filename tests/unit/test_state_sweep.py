"""Start-up sweep of the temp files of record writes a crash interrupted:
`<root>/{containers,sandboxes}/.<id>.json.<random>` (issue 17).  Each
removal is logged; records and other files stay."""
from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass

import pytest

from crio_native.container.store import ContainerStore
from crio_native.sandbox.store import SandboxStore
from crio_native.state import files
from crio_native.state.records import JsonRecord, RecordStore


@dataclass
class Thing(JsonRecord):
    id: str
    name: str = ""

    @property
    def name_key(self) -> str:
        return self.name


def leftover_of(directory, name: str) -> str:
    """What a process killed between mkstemp and rename leaves: the temp
    file atomic_write makes, half written."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=files.temp_prefix(name))
    os.write(fd, b'{"id": "ha')
    os.close(fd)
    return os.path.basename(tmp)


def test_interrupted_writes_are_removed_and_logged(tmp_path, caplog):
    store = RecordStore(tmp_path, Thing.from_dict, "thing")
    store.save(Thing("a", "one"))
    stale = [leftover_of(tmp_path, "a.json"), leftover_of(tmp_path, "b.json")]
    keep = [".hidden", "notes.txt", ".x.json", "c.json.bak"]
    for name in keep:
        (tmp_path / name).write_text("k")
    caplog.set_level(logging.WARNING, logger="crio_native.state.records")
    loaded = RecordStore(tmp_path, Thing.from_dict, "thing").load()
    assert [r.id for r in loaded] == ["a"]
    assert sorted(os.listdir(tmp_path)) == sorted(["a.json", *keep])
    removed = sorted(r.fields["path"] for r in caplog.records
                     if "interrupted thing record write" in r.getMessage())
    assert removed == sorted(str(tmp_path / n) for n in stale)


def test_a_first_save_interrupted_leaves_no_record(tmp_path):
    leftover_of(tmp_path, "new.json")
    store = RecordStore(tmp_path, Thing.from_dict, "thing")
    assert store.load() == [] and os.listdir(tmp_path) == []


@pytest.mark.parametrize("store_cls", [ContainerStore, SandboxStore])
def test_both_stores_sweep(tmp_path, store_cls):
    name = leftover_of(tmp_path, "0123abcd.json")
    assert (tmp_path / name).exists()
    assert store_cls(tmp_path).load() == []
    assert os.listdir(tmp_path) == []


def test_a_failed_write_matches_the_sweep_pattern(tmp_path, monkeypatch):
    """The pattern follows what atomic_write really makes: a write that dies
    at its rename leaves a file the sweep finds."""
    def killed(src, dst):
        raise KeyboardInterrupt   # not cleaned up like an error: stands in for a kill

    monkeypatch.setattr(files.os, "rename", killed)
    monkeypatch.setattr(files.os, "unlink", lambda path: None)
    with pytest.raises(KeyboardInterrupt):
        files.atomic_write_json(tmp_path / "abc.json", {"id": "abc"})
    monkeypatch.undo()
    left = os.listdir(tmp_path)
    assert len(left) == 1 and left[0].startswith(".abc.json.")
    assert files.interrupted_writes(tmp_path, ".json") == [tmp_path / left[0]]


def test_no_directory_means_nothing_to_sweep(tmp_path):
    assert files.interrupted_writes(tmp_path / "absent", ".json") == []


# ---- records a power loss cut short (saves without fsync) -------------------

@pytest.mark.parametrize("content", [b"", b'{"id": "b", "na', b"\0\0\0\0"])
def test_a_record_cut_short_by_a_power_loss_is_removed_and_logged(tmp_path, caplog, content):
    """An empty or truncated record (a save without fsync that a power
    loss interrupted) is taken for an interrupted write: removed, logged
    with its id, and the other records load."""
    store = RecordStore(tmp_path, Thing.from_dict, "thing")
    store.save(Thing("a", "one"), durable=False)
    (tmp_path / "b.json").write_bytes(content)
    caplog.set_level(logging.WARNING, logger="crio_native.state.records")
    loaded = RecordStore(tmp_path, Thing.from_dict, "thing")
    assert [r.id for r in loaded.load()] == ["a"]
    assert os.listdir(tmp_path) == ["a.json"]
    assert loaded.unreadable == set()
    cut = [r for r in caplog.records if "a power loss cut short" in r.getMessage()]
    assert [(r.fields["id"], r.fields["size"]) for r in cut] == [("b", len(content))]


def test_a_record_of_another_shape_is_kept_and_its_id_noted(tmp_path, caplog):
    """JSON that is not a record (not what a power loss leaves) stays on disk,
    logged as an error, and its id is noted so sweeps spare what it owns."""
    (tmp_path / "c.json").write_text('{"no_id": 1}')
    (tmp_path / ".x.json").write_text("k")    # no record is named so: left as before
    caplog.set_level(logging.ERROR, logger="crio_native.state.records")
    store = RecordStore(tmp_path, Thing.from_dict, "thing")
    assert store.load() == []
    assert sorted(os.listdir(tmp_path)) == [".x.json", "c.json"]
    assert store.unreadable == {"c", ".x"}
    assert sum("unreadable thing record" in r.getMessage() for r in caplog.records) == 2


def test_saves_are_fsynced_only_when_durable(tmp_path, monkeypatch):
    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    store = RecordStore(tmp_path, Thing.from_dict, "thing")
    store.save(Thing("a", "one"), durable=False)
    assert calls == []
    store.save(Thing("a", "one"))
    assert len(calls) == 2      # the file and its directory
    assert RecordStore(tmp_path, Thing.from_dict, "thing").load()[0].name == "one"
