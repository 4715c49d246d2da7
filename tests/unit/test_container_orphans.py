"""container/orphans.py on plain directories standing in for cgroups (rmdir
behaves alike: an empty one goes, one with something in it stays)."""
from __future__ import annotations

import logging

import pytest

from crio_native.container import orphans
from crio_native.errors import FailedPrecondition

A, B, C = "a" * 64, "b" * 64, "c" * 64


def test_sweep_removes_only_unowned_empty_container_groups(tmp_path, caplog):
    pod = tmp_path / "kubepods" / "pod1"
    for name in (f"crio-{A}", f"crio-{B}", f"crio-{C}", f"crio-{A}.scope", "crio-short",
                 "kubelet-thing"):
        (pod / name).mkdir(parents=True)
    (pod / f"crio-{C}" / "child").mkdir()           # busy: left, and said so
    caplog.set_level(logging.WARNING)
    removed = orphans.sweep_container_cgroups([pod, pod, tmp_path / "missing"], owned={B})
    assert removed == [pod / f"crio-{A}"]
    assert sorted(p.name for p in pod.iterdir()) == sorted(
        [f"crio-{B}", f"crio-{C}", f"crio-{A}.scope", "crio-short", "kubelet-thing"])
    messages = [r.getMessage() for r in caplog.records]
    assert "removed a container cgroup no record owns" in messages
    assert any("still has processes" in m for m in messages)


def test_leftover_groups_of_a_record(tmp_path):
    mine = [tmp_path / h / f"crio-{A}" for h in ("memory", "pids")]
    for d in mine:
        d.mkdir(parents=True)
    other = tmp_path / "memory" / f"crio-{B}"
    other.mkdir()
    orphans.remove_leftover_cgroups(A, [str(d) for d in mine] + [str(other),
                                                                 str(tmp_path / "gone")])
    assert not any(d.exists() for d in mine) and other.exists()


def test_a_busy_leftover_fails_the_removal(tmp_path):
    d = tmp_path / f"crio-{A}"
    (d / "sub").mkdir(parents=True)
    with pytest.raises(FailedPrecondition, match=f"crio-{A}.*cannot be removed"):
        orphans.remove_leftover_cgroups(A, [str(d)])


def test_stray_runtime_states(tmp_path):
    builtin, runc = tmp_path / "builtin", tmp_path / "runc"
    for d in (builtin / A, builtin / B, builtin / "not-an-id", runc / C):
        d.mkdir(parents=True)
    (runc / ("d" * 64)).write_text("a file, not a state dir")
    found = orphans.stray_runtime_states(
        {"builtin": builtin, "runc": runc, "crun": tmp_path / "none"}, owned={B})
    assert found == [("builtin", A), ("runc", C)]
