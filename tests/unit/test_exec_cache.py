"""runtime/builtin/exec_cache: what an exec keeps from the last one, and
when it must build again."""
from __future__ import annotations

from pathlib import Path

import pytest

from crio_native.runtime.builtin import exec_cache
from crio_native.runtime.builtin.exec_cache import ExecCache, process_key


class Builds:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, value: bytes = b"plan"):
        def build() -> bytes:
            self.count += 1
            return value + str(self.count).encode()
        return build


def test_a_plan_is_built_once_per_inputs():
    cache, builds = ExecCache(), Builds()
    first = cache.plan("c", (1, 2), [], "true", builds())
    assert cache.plan("c", (1, 2), [], "true", builds()) == first
    other = cache.plan("c", (1, 2), [], "false", builds())
    assert other != first and builds.count == 2


@pytest.mark.parametrize("identity", [(2, 2), (1, 3)])
def test_a_new_identity_builds_again(identity):
    """Another init pid or start time (a restarted container under the same
    id), another spec stamp or cgroups: nothing kept applies."""
    cache, builds = ExecCache(), Builds()
    first = cache.plan("c", (1, 2), [], "true", builds())
    assert cache.plan("c", identity, [], "true", builds()) != first
    assert builds.count == 2


def test_forget_drops_the_container():
    cache, builds = ExecCache(), Builds()
    cache.plan("c", (1,), [], "true", builds())
    cache.forget("c")
    cache.plan("c", (1,), [], "true", builds())
    assert builds.count == 2


def test_a_failed_build_keeps_nothing():
    cache, builds = ExecCache(), Builds()

    def bad() -> bytes:
        raise ValueError("bad process")
    with pytest.raises(ValueError):
        cache.plan("c", (1,), [], "x", bad)
    cache.plan("c", (1,), [], "x", builds())
    assert builds.count == 1


def test_sizes_are_bounded(monkeypatch):
    monkeypatch.setattr(exec_cache, "CONTAINERS", 2)
    monkeypatch.setattr(exec_cache, "PLANS", 2)
    cache, builds = ExecCache(), Builds()
    for cmd in ("a", "b", "c"):
        cache.plan("c1", (1,), [], cmd, builds())
    cache.plan("c1", (1,), [], "a", builds())         # pushed out by "c"
    assert builds.count == 4
    cache.plan("c2", (1,), [], "a", builds())
    cache.plan("c3", (1,), [], "a", builds())
    cache.plan("c1", (1,), [], "a", builds())         # c1 pushed out by c3
    assert builds.count == 7


def test_the_freezer_probe_reads_the_state_each_time(tmp_path: Path):
    """Which file says "paused" is found once; its content is read at each ask."""
    d = tmp_path / "freezer" / "c"
    d.mkdir(parents=True)
    (d / "freezer.state").write_text("THAWED\n")
    cache = ExecCache()
    assert not cache.is_frozen("c", (1,), [d])
    (d / "freezer.state").write_text("FROZEN\n")
    assert cache.is_frozen("c", (1,), [d])


def test_process_key_ignores_key_order():
    assert process_key({"args": ["a"], "cwd": "/"}) == process_key({"cwd": "/", "args": ["a"]})
    assert process_key({"args": ["a"]}) != process_key({"args": ["b"]})
