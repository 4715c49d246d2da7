"""Per-pod MCS levels."""
from __future__ import annotations

import random
import re

from crio_native._proto import api_pb2
from crio_native.config import Config
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
