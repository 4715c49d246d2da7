"""Per-pod MCS levels."""
from __future__ import annotations

import errno
import functools
import json
import random
import re
import shutil
from pathlib import Path

import pytest

from crio_native._proto import api_pb2
from crio_native.config import Config
from crio_native.errors import FailedPrecondition
from crio_native.sandbox import mcs
from crio_native.sandbox.manager import SandboxManager
from crio_native.sandbox.record import SandboxRecord

LEVEL = re.compile(r"^s0:c(\d+),c(\d+)$")


def test_levels_are_ordered_pairs_of_distinct_categories():
    rng = random.Random(7)
    for _ in range(200):
        a, b = map(int, LEVEL.match(mcs.allocate_level((), rng)).groups())
        assert 0 <= a < b < mcs.CATEGORIES


def test_a_level_in_use_is_never_handed_out():
    class Repeating(random.Random):
        """Draws the same pair a few times before another one."""
        draws = [[3, 9], [9, 3], [3, 9], [5, 1]]

        def sample(self, population, k):
            return self.draws.pop(0)

    assert mcs.allocate_level({"s0:c3,c9"}, Repeating()) == "s0:c1,c5"


def test_the_exhaustive_search_finds_the_last_free_pair(monkeypatch):
    monkeypatch.setattr(mcs, "CATEGORIES", 4)
    monkeypatch.setattr(mcs, "ATTEMPTS", 0)
    taken = {mcs.level_of(a, b) for a in range(4) for b in range(a + 1, 4)} - {"s0:c1,c3"}
    assert mcs.allocate_level(taken) == "s0:c1,c3"


def _manager(tmp_path) -> SandboxManager:
    config = Config()
    config.root, config.runroot = str(tmp_path / "root"), str(tmp_path / "run")
    manager = SandboxManager(config)
    manager.selinux_enabled = lambda: True
    return manager


def _request(level: str = "") -> api_pb2.RunPodSandboxRequest:
    request = api_pb2.RunPodSandboxRequest()
    request.config.linux.security_context.selinux_options.level = level
    return request


def test_pods_get_different_levels_and_a_requested_one_is_kept(tmp_path):
    manager = _manager(tmp_path)
    records = []
    for i in range(30):
        record = SandboxRecord(id=f"p{i}", name=f"p{i}", namespace="n", uid=f"u{i}", attempt=0)
        assert manager.store.reserve(record) is None
        manager._assign_selinux_level(record, _request())
        records.append(record)
    levels = [r.selinux_level for r in records]
    assert len(set(levels)) == 30 and all(LEVEL.match(lv) for lv in levels)
    own = SandboxRecord(id="q", name="q", namespace="n", uid="q", attempt=0)
    manager.store.reserve(own)
    manager._assign_selinux_level(own, _request("s0:c1,c2"))
    assert own.selinux_level == "s0:c1,c2"


def test_no_level_without_selinux(tmp_path):
    manager = _manager(tmp_path)
    manager.selinux_enabled = lambda: False
    record = SandboxRecord(id="p", name="p", namespace="n", uid="u", attempt=0)
    manager._assign_selinux_level(record, _request())
    assert record.selinux_level == ""


# ---- pods whose records are unreadable ---------------------------------------------------

class _DrawsTaken(random.Random):
    """Draws the unreadable pod's pair first, then another one."""

    def __init__(self):
        super().__init__()
        self.draws = [[3, 9], [5, 1]]

    def sample(self, population, k):
        return self.draws.pop(0)


def _with_unreadable_pod(tmp_path, monkeypatch, doc: dict, files: dict[str, str] | None):
    """A manager whose store loaded one record it cannot read (`doc`: JSON
    of another shape), the pod's directory holding `files` (name -> label)
    unless None; the next level drawn is s0:c3,c9."""
    manager = _manager(tmp_path)
    pod_id = "ab" * 32
    manager.store.directory.mkdir(parents=True)
    (manager.store.directory / f"{pod_id}.json").write_text(json.dumps(doc))
    manager.store.load()
    assert manager.store.unreadable == {pod_id}
    labels: dict[Path, str] = {}
    if files is not None:
        (manager.pod_root / pod_id).mkdir(parents=True)
        for name, label in files.items():
            (manager.pod_root / pod_id / name).write_text("")
            labels[manager.pod_root / pod_id / name] = label

    def read_label(path: Path) -> str:
        if path not in labels:
            raise OSError(errno.ENODATA, "no label", str(path))
        return labels[path]

    manager.read_file_label = read_label
    monkeypatch.setattr(mcs, "allocate_level",
                        functools.partial(mcs.allocate_level, rng=_DrawsTaken()))
    return manager


def _new_pod_level(manager, level: str = "") -> str:
    record = SandboxRecord(id="new", name="new", namespace="n", uid="new", attempt=0)
    assert manager.store.reserve(record) is None
    manager._assign_selinux_level(record, _request(level))
    return record.selinux_level


def test_the_level_an_unreadable_record_still_names_is_not_handed_out(tmp_path, monkeypatch):
    manager = _with_unreadable_pod(tmp_path, monkeypatch,
                                   {"selinux_level": "s0:c3,c9", "written_by": "another"}, {})
    assert _new_pod_level(manager) == "s0:c1,c5"


def test_the_level_on_an_unreadable_pod_s_files_is_not_handed_out(tmp_path, monkeypatch):
    manager = _with_unreadable_pod(
        tmp_path, monkeypatch, {"written_by": "another"},
        {"hostname": "system_u:object_r:container_file_t:s0:c3,c9"})
    assert _new_pod_level(manager) == "s0:c1,c5"


def test_no_level_is_chosen_while_an_unreadable_pod_s_level_is_unknown(tmp_path, monkeypatch):
    manager = _with_unreadable_pod(tmp_path, monkeypatch, {"written_by": "another"},
                                   {"hostname": "not a label"})
    with pytest.raises(FailedPrecondition, match="unreadable"):
        _new_pod_level(manager)
    # a level the request asks for is the request's
    manager.store.drop(manager.store.find("new"))
    assert _new_pod_level(manager, "s0:c7,c8") == "s0:c7,c8"
    # with its directory gone (a reboot: nothing of it runs) it holds none
    shutil.rmtree(manager.pod_root)
    manager.store.drop(manager.store.find("new"))
    assert _new_pod_level(manager) == "s0:c3,c9"


def test_a_level_is_read_from_a_label():
    assert mcs.level_in_label("system_u:object_r:container_file_t:s0:c3,c9") == "s0:c3,c9"
    assert mcs.level_in_label("system_u:object_r:container_file_t:s0") == "s0"
    assert mcs.level_in_label("system_u:object_r:container_file_t") is None
    assert mcs.level_in_label("a:b:c:s0:c1,$(x)") is None
