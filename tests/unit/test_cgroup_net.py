"""linux.resources.network (v1 net_cls / net_prio): the files and values,
the error when no hierarchy can enforce them, and a cgroup v2 host with a
v1 net_cls,net_prio hierarchy mounted beside it.  No root."""
from __future__ import annotations

import errno
from pathlib import Path

import pytest

from crio_native.errors import FailedPrecondition, InvalidArgument
from crio_native.linux import cgroup_net
from crio_native.linux import cgroups as cg
# the modules that read the control-file writers tests replace
from crio_native.linux.cgroups import delegation, group
from tests.unit.test_builtin_cgroups_plan import OWN_HYBRID, FakeCgroupfs, hybrid, pure

NETWORK = {"classID": 0x100001,
           "priorities": [{"name": "lo", "priority": 2}, {"name": "eth0", "priority": 5}]}
NET_V1 = cg.Hierarchy(Path("/sys/fs/cgroup/net_cls,net_prio"), 1,
                      frozenset({"net_cls", "net_prio"}))
NET_MOUNTINFO = ("40 25 0:40 / /run/netcg rw - cgroup cgroup rw,net_cls,net_prio\n"
                 "41 25 0:41 / /run/named rw - cgroup cgroup rw,xattr,name=systemd\n")


def test_files_and_values():
    assert cgroup_net.network_files(NETWORK) == [
        ("network.classID", "net_cls", "net_cls.classid", "", "1048577"),
        ("network.priorities[0]", "net_prio", "net_prio.ifpriomap", "", "lo 2"),
        ("network.priorities[1]", "net_prio", "net_prio.ifpriomap", "", "eth0 5")]
    assert cgroup_net.network_files({}) == cgroup_net.network_files(None) == []
    # 0 is a class id like any other (the kernel's default): written when given
    assert cgroup_net.network_files({"classID": 0})[0][-1] == "0"


@pytest.mark.parametrize("network,field", [
    ({"classID": -1}, "network.classID"),
    ({"classID": 1 << 32}, "network.classID"),
    ({"classID": "1"}, "network.classID"),
    ({"priorities": {"lo": 1}}, "network.priorities"),
    ({"priorities": ["lo 1"]}, "network.priorities[0]"),
    ({"priorities": [{"name": "lo"}]}, "network.priorities[0].priority"),
    ({"priorities": [{"name": "lo", "priority": True}]}, "network.priorities[0].priority"),
    ({"priorities": [{"name": "", "priority": 1}]}, "network.priorities[0].name"),
    ({"priorities": [{"name": "eth 0", "priority": 1}]}, "network.priorities[0].name"),
    ({"priorities": [{"name": "a" * 16, "priority": 1}]}, "network.priorities[0].name"),
    ({"priorities": [{"name": "lo", "priority": 1}, {"name": "x/y", "priority": 1}]},
     "network.priorities[1].name"),
    ([1], "network"),
])
def test_bad_fields_are_named(network, field):
    with pytest.raises(InvalidArgument) as exc:
        cg.plan_cgroups("c", {"network": network}, hybrid() + [(NET_V1, "/")],
                        cg.own_cgroups(OWN_HYBRID))
    assert str(exc.value).startswith(f"config.json: linux.resources.{field}: ")


@pytest.mark.parametrize("layout", [hybrid, pure], ids=["hybrid", "pure-v2"])
@pytest.mark.parametrize("network,field", [
    ({"classID": 7}, "network.classID"),
    ({"priorities": [{"name": "lo", "priority": 1}]}, "network.priorities[0]"),
])
def test_no_hierarchy_to_enforce_is_an_error(layout, network, field):
    with pytest.raises(FailedPrecondition) as exc:
        cg.plan_cgroups("c", {"network": network}, layout(), cg.own_cgroups(OWN_HYBRID))
    ctrl = "net_cls" if "classID" in field else "net_prio"
    assert str(exc.value) == (
        f"config.json: linux.resources.{field}: this host has no {ctrl} cgroup controller to "
        f"enforce it: it is a cgroup v1 controller (v2 has none) and no v1 hierarchy with "
        f"{ctrl} is mounted")


def test_written_in_the_v1_hierarchy_on_a_hybrid_host():
    own = cg.own_cgroups(OWN_HYBRID + "9:net_cls,net_prio:/\n")
    plan = cg.plan_cgroups("pod/c", {"network": NETWORK}, hybrid() + [(NET_V1, "/")], own)
    d = NET_V1.mountpoint / "pod/c"
    assert d in plan.dirs and d / "cgroup.procs" in plan.procs
    assert plan.writes == [(d / "net_cls.classid", "1048577"),
                           (d / "net_prio.ifpriomap", "lo 2"),
                           (d / "net_prio.ifpriomap", "eth0 5")]
    assert plan.v2 is None and plan.into is None


# ---- a v2 host with v1 hierarchies beside it --------------------------------------

def mixed():
    return pure() + [(NET_V1, "/")]


def test_hierarchies_beside_v2_keep_it_a_v2_host():
    parsed = cg.host_hierarchies(NET_MOUNTINFO)
    assert [h.controllers for h, _ in parsed] == [frozenset({"net_cls", "net_prio"}),
                                                  frozenset({"name=systemd"})]
    assert cg.pure_v2(pure())
    assert cg.pure_v2(pure() + parsed)
    assert not cg.pure_v2(parsed)                   # no v2 hierarchy at all
    assert not cg.pure_v2(hybrid())                 # v1 holds cpu, memory, ...
    assert not cg.pure_v2(pure() + [(cg.Hierarchy(Path("/x"), 1, frozenset({"pids"})), "/")])


def test_v2_host_with_net_hierarchy():
    res = {"network": NETWORK, "pids": {"limit": 9}, "unified": {"memory.high": "1000000"},
           "devices": [{"allow": False, "access": "rwm"}]}
    plan = cg.plan_cgroups("c", res, mixed(), {"": "/user.slice"})
    v2_dir, net_dir = Path("/sys/fs/cgroup/user.slice/c"), NET_V1.mountpoint / "c"
    assert plan.dirs == [v2_dir, net_dir]
    assert plan.v2 == (Path("/sys/fs/cgroup/user.slice"), v2_dir)
    # one launch plan cannot clone into v2 and be moved into v1 too: the
    # parent places the child in both
    assert plan.into is None
    assert plan.procs == [v2_dir / "cgroup.procs", net_dir / "cgroup.procs"]
    # the container's own cgroup mount shows cgroup2 alone, as on any v2 host
    assert plan.views == [("cgroup", v2_dir, 2)]
    assert plan.controllers == {"pids", "memory"}    # no net_cls: v2 has none
    assert plan.device_program is not None
    assert sorted(plan.writes) == sorted([
        (v2_dir / "pids.max", "9"), (v2_dir / "memory.high", "1000000"),
        (net_dir / "net_cls.classid", "1048577"), (net_dir / "net_prio.ifpriomap", "lo 2"),
        (net_dir / "net_prio.ifpriomap", "eth0 5")])


@pytest.mark.parametrize("layout", [pure, mixed], ids=["alone", "net-beside"])
def test_without_network_only_the_v2_group(layout):
    """A v1 hierarchy beside v2 that the spec sets nothing in is left alone,
    as runc and crun leave it: the child is cloned into its v2 group."""
    plan = cg.plan_cgroups("c", {"pids": {"limit": 9}}, layout(), {"": "/"})
    assert plan.dirs == [Path("/sys/fs/cgroup/c")] and plan.bases == [Path("/sys/fs/cgroup")]
    assert plan.into == plan.v2[1] == Path("/sys/fs/cgroup/c") and plan.procs == []


def test_an_existing_group_beside_v2_is_kept(tmp_path):
    """Once a create with network resources made the v1 group, planning the
    same path again (update, without network) finds both groups."""
    v2_top, net_top = tmp_path / "v2", tmp_path / "net"
    layout = [(cg.Hierarchy(v2_top, 2, frozenset({"pids"})), "/"),
              (cg.Hierarchy(net_top, 1, frozenset({"net_cls", "net_prio"})), "/")]
    own = {"": "/", "net_cls": "/", "net_prio": "/"}
    assert cg.plan_cgroups("c", {}, layout, own).dirs == [v2_top / "c"]
    (net_top / "c").mkdir(parents=True)
    plan = cg.plan_cgroups("c", {"pids": {"limit": 3}}, layout, own)
    assert plan.dirs == [v2_top / "c", net_top / "c"] and plan.into is None
    assert plan.writes == [(v2_top / "c" / "pids.max", "3")]
    # the root itself is never joined that way
    assert cg.plan_cgroups("/", {}, layout, own).dirs == [v2_top]


def test_create_delegates_in_v2_only(tmp_path, monkeypatch):
    fs = FakeCgroupfs(tmp_path / "v2", "cpu memory pids")
    monkeypatch.setattr(delegation, "_write_control", fs.write)
    monkeypatch.setattr(group, "_write_existing", lambda path, value: path.write_text(value))
    net_top = tmp_path / "net"
    net_top.mkdir()
    layout = [(cg.Hierarchy(fs.top, 2, frozenset({"cpu", "memory", "pids"})), "/"),
              (cg.Hierarchy(net_top, 1, frozenset({"net_cls", "net_prio"})), "/")]
    plan = cg.plan_cgroups("a/c", {"network": {"classID": 3}, "pids": {"limit": 4}}, layout,
                           {"": "/", "net_cls": "/", "net_prio": "/"})
    made = cg.create(plan)
    assert made == [fs.top / "a", fs.top / "a/c", net_top / "a", net_top / "a/c"]
    assert (net_top / "a/c/net_cls.classid").read_text() == "3"
    assert (fs.top / "a/c/pids.max").read_text() == "4"
    assert [w for w in fs.writes if "pids" in w[1]] == [(".", "+pids"), ("a", "+pids")]


def test_a_value_the_kernel_refuses_is_named(tmp_path, monkeypatch):
    def refuse(path, value):
        raise OSError(errno.ENODEV, "No such device")
    monkeypatch.setattr(group, "_write_existing", refuse)
    f = tmp_path / "net_prio.ifpriomap"
    with pytest.raises(FailedPrecondition) as exc:
        cg.write_limits([(f, "nosuch0 3")])
    assert str(exc.value) == f"cgroup file {f}: the kernel refused 'nosuch0 3': No such device"
