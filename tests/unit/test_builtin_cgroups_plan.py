"""Where cgroupsPath goes and which files get which values, on a synthetic
hybrid host and a synthetic pure v2 host.  No root, no I/O."""
from __future__ import annotations

from pathlib import Path

import pytest

from crio_native.errors import FailedPrecondition, InvalidArgument, Unimplemented
from crio_native.linux import cgroups as cg

HYBRID_MOUNTINFO = """\
30 25 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
31 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
32 25 0:28 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
33 25 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
34 25 0:30 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
35 25 0:27 / /mnt/again rw - cgroup cgroup rw,memory
"""
OWN_HYBRID = "5:memory:/job/x\n4:pids:/\n3:cpu,cpuacct:/\n1:name=systemd:/\n0::/\n"


def hybrid():
    """The layout above, with the v2 hierarchy holding only hugetlb (as here)."""
    return [(cg.Hierarchy(h.mountpoint, h.version,
                          frozenset({"hugetlb"}) if h.version == 2 else h.controllers), root)
            for h, root in cg.host_hierarchies(HYBRID_MOUNTINFO)]


def pure():
    return [(cg.Hierarchy(Path("/sys/fs/cgroup"), 2,
                          frozenset({"cpu", "memory", "pids", "cpuset", "hugetlb"})), "/")]


def test_hierarchies_deduplicated():
    hs = cg.host_hierarchies(HYBRID_MOUNTINFO)
    assert [str(h.mountpoint) for h, _ in hs] == [
        "/sys/fs/cgroup/unified", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids",
        "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/systemd"]
    assert hs[4][0].controllers == frozenset({"name=systemd"})


def test_hybrid_placement_below_own_cgroup():
    plan = cg.plan_cgroups("pod/c1", {}, hybrid(), cg.own_cgroups(OWN_HYBRID))
    assert Path("/sys/fs/cgroup/memory/job/x/pod/c1") in plan.dirs
    assert Path("/sys/fs/cgroup/pids/pod/c1") in plan.dirs
    assert plan.into is None
    assert Path("/sys/fs/cgroup/memory/job/x/pod/c1/cgroup.procs") in plan.procs
    assert len(plan.procs) == 5


def test_pure_v2_clones_into():
    plan = cg.plan_cgroups("c1", {"pids": {"limit": 7}}, pure(), {"": "/user.slice"})
    assert plan.into == Path("/sys/fs/cgroup/user.slice/c1")
    assert plan.procs == []
    assert plan.writes == [(Path("/sys/fs/cgroup/user.slice/c1/pids.max"), "7")]


@pytest.mark.parametrize("resources,v1,v2", [
    ({"memory": {"limit": 1048576}}, ("memory.limit_in_bytes", "1048576"), ("memory.max", "1048576")),
    ({"memory": {"limit": -1}}, ("memory.limit_in_bytes", "max"), ("memory.max", "max")),
    ({"pids": {"limit": 0}}, ("pids.max", "max"), ("pids.max", "max")),
    ({"cpu": {"shares": 1024}}, ("cpu.shares", "1024"), ("cpu.weight", "39")),
    ({"cpu": {"quota": 50000}}, ("cpu.cfs_quota_us", "50000"), ("cpu.max", "50000 100000")),
])
def test_resource_files(resources, v1, v2):
    h = cg.plan_cgroups("c", resources, hybrid(), cg.own_cgroups(OWN_HYBRID))
    assert [(p.name, v) for p, v in h.writes] == [v1]
    p = cg.plan_cgroups("c", resources, pure(), {"": "/"})
    assert [(p.name, v) for p, v in p.writes] == [v2]


def test_hugetlb_goes_to_unified_on_hybrid():
    plan = cg.plan_cgroups("c", {"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]},
                           hybrid(), cg.own_cgroups(OWN_HYBRID))
    assert plan.writes == [(Path("/sys/fs/cgroup/unified/c/hugetlb.2MB.max"), "0")]


def test_missing_controller_is_an_error():
    with pytest.raises(FailedPrecondition, match=r"linux.resources.cpu.cpus: .* no cpuset"):
        cg.plan_cgroups("c", {"cpu": {"cpus": "0"}}, hybrid(), cg.own_cgroups(OWN_HYBRID))


@pytest.mark.parametrize("path", ["/abs", "../up", "a/../../b", ""])
def test_bad_paths(path):
    with pytest.raises(InvalidArgument, match="linux.cgroupsPath"):
        cg.plan_cgroups(path, {}, hybrid(), {})


def test_unsupported_resource_section():
    with pytest.raises(Unimplemented, match="linux.resources.blockIO"):
        cg.plan_cgroups("c", {"blockIO": {"weight": 10}}, hybrid(), {})
