"""The pod cgroup a kubelet made in only some of the host's hierarchies
(its cgroupfs driver makes /kubepods/... in the v1 ones and leaves a hybrid
host's v2 hierarchy alone): the runtime makes the missing groups for the
containers and writes no limit anywhere; the kubelet's limits, and its
unset memsw, stay the kubelet's.  Synthetic hierarchies in a tmp dir; no root."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from crio_native.linux import cgroups
from crio_native.linux.cgroups import group
from crio_native.runtime.pod_cgroup import PodCgroup

PARENT = "/kubepods/pod1"
RESOURCES = {"memory": {"limit": 64 << 20, "swap": 64 << 20}}


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A v1 memory hierarchy and a v2 one (hugetlb only), as on this host."""
    hierarchies = [(cgroups.Hierarchy(tmp_path / "memory", 1, frozenset({"memory"})), "/"),
                   (cgroups.Hierarchy(tmp_path / "unified", 2, frozenset({"hugetlb"})), "/")]
    for h, _root in hierarchies:
        h.mountpoint.mkdir()
    real = cgroups.plan_cgroups
    monkeypatch.setattr(cgroups, "plan_cgroups", lambda path, resources, root=None: real(
        path, resources, hierarchies, {"memory": "/", "": "/"}, root, frozenset()))
    written: list[tuple[Path, str]] = []

    def write(path: Path, value: str) -> None:
        written.append((path, value))
        path.write_text(value)

    monkeypatch.setattr(group, "_write_existing", write)
    return SimpleNamespace(v1=tmp_path / "memory" / PARENT.lstrip("/"),
                           v2=tmp_path / "unified" / PARENT.lstrip("/"), written=written)


def create(journaled: list[int]) -> SimpleNamespace:
    pod = SimpleNamespace(id="p", cgroup_parent=PARENT, cgroup_dirs=[], cgroups_made=[])
    PodCgroup("cgroupfs", None).create(pod, RESOURCES, lambda: journaled.append(1))
    return pod


def test_a_group_the_kubelet_made_in_v1_only_gets_no_limits(host):
    host.v1.mkdir(parents=True)
    (host.v1 / "memory.limit_in_bytes").write_text("134217728")   # the kubelet's
    journaled: list[int] = []
    pod = create(journaled)
    assert pod.cgroup_dirs == [str(host.v1), str(host.v2)]
    assert pod.cgroups_made == [str(host.v2.parent), str(host.v2)] and journaled
    assert host.v2.is_dir()
    assert host.written == []
    assert (host.v1 / "memory.limit_in_bytes").read_text() == "134217728"
    PodCgroup("cgroupfs", None).remove(pod)
    assert not host.v2.parent.exists() and host.v1.is_dir()


def test_a_group_nobody_made_gets_the_pod_limits(host):
    pod = create([])
    assert set(pod.cgroups_made) >= {str(host.v1), str(host.v2)}
    assert [(p.name, v) for p, v in host.written] == [
        ("memory.limit_in_bytes", str(64 << 20)), ("memory.memsw.limit_in_bytes", str(64 << 20))]


def test_a_group_made_everywhere_is_left_alone(host):
    host.v1.mkdir(parents=True)
    host.v2.mkdir(parents=True)
    pod = create([])
    assert pod.cgroups_made == [] and host.written == []
