"""state/files.py: atomic writes, fsynced unless asked not to be (runroot
files, which a reboot wipes anyway)."""
from __future__ import annotations

import os

import pytest

from crio_native.state import files


@pytest.fixture
def fsyncs(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)   # files.py calls os.fsync
    return calls


def test_a_durable_write_fsyncs_the_file_and_its_directory(tmp_path, fsyncs):
    files.atomic_write_json(tmp_path / "r.json", {"a": 1})
    assert (tmp_path / "r.json").read_text() == '{"a":1}'
    assert len(fsyncs) == 2


def test_a_runroot_write_is_atomic_but_not_fsynced(tmp_path, fsyncs):
    (tmp_path / "r.json").write_text("old")
    files.atomic_write_json(tmp_path / "r.json", {"b": 2}, mode=0o640, durable=False)
    assert (tmp_path / "r.json").read_text() == '{"b":2}'
    assert oct((tmp_path / "r.json").stat().st_mode & 0o777) == "0o640"
    assert fsyncs == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]   # no temp file left
