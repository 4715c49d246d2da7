"""linux.resources.network (classID -> net_cls.classid, priorities ->
net_prio.ifpriomap): cgroup v1 controllers only.

Where no v1 hierarchy has them (this host; any pure v2 host as it boots),
create fails naming the field and leaves nothing behind, and update refuses
them the same way.  Inside the throw-away vmrun.sh VM (pure v2) a test
mounts a v1 `net_cls,net_prio` hierarchy beside the v2 root: the host stays
a v2 host, and a container that sets network resources also gets a group
there, with the values written before it runs."""
from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path

import pytest

from crio_native.errors import FailedPrecondition
from crio_native.linux import cgroups
from tests.hostinfo import pure_cgroup2

# Also run inside the pure cgroup v2 VM by `make test`.
pytestmark = [pytest.mark.root, pytest.mark.vm]

NETWORK = {"classID": 0x100001, "priorities": [{"name": "lo", "priority": 3}]}


def _net_hierarchies() -> list[cgroups.Hierarchy]:
    return [h for h, _ in cgroups.host_hierarchies()
            if h.version == 1 and h.controllers & {"net_cls", "net_prio"}]


def _needs_no_net_hierarchy() -> None:
    if _net_hierarchies():
        pytest.skip("this host has a v1 net_cls/net_prio hierarchy mounted")


def _snapshot(rt, name: str) -> tuple[list, list[Path]]:
    return rt.list(), cgroups.plan_cgroups(name, {}, root=rt.cgroup_root).dirs


@pytest.mark.parametrize("network,field", [
    ({"classID": 7}, "network.classID"),
    ({"priorities": [{"name": "lo", "priority": 1}]}, "network.priorities[0]"),
], ids=["classID", "priorities"])
def test_create_fails_where_no_hierarchy_can_enforce(rt, make_bundle, network, field):
    _needs_no_net_hierarchy()
    name = f"crn-net-{os.getpid()}"

    def edit(spec):
        spec["linux"]["cgroupsPath"] = name
        spec["linux"]["resources"] = {"network": network, "pids": {"limit": 10}}
    with pytest.raises(FailedPrecondition, match="^" + re.escape(
            f"config.json: linux.resources.{field}: this host has no ") + "net_(cls|prio) "):
        rt.create("net1", make_bundle(["true"], edit).path)
    listed, dirs = _snapshot(rt, name)
    assert listed == [] and not (rt.root / "net1").exists()
    assert not any(d.exists() for d in dirs)


def test_update_refuses_them_too(rt, make_bundle):
    _needs_no_net_hierarchy()
    name = f"crn-netup-{os.getpid()}"

    def edit(spec):
        spec["linux"]["cgroupsPath"] = name
    rt.create("net2", make_bundle(["sleep", "60"], edit).path)
    try:
        with pytest.raises(FailedPrecondition, match=r"linux\.resources\.network\.classID: "):
            rt.update("net2", {"network": {"classID": 9}})
    finally:
        rt.delete("net2", force=True)


# ---- a v1 net_cls,net_prio hierarchy beside cgroup v2, in the VM only ------------------

def _in_vmrun_vm() -> bool:
    """vmrun.sh's guest: its hostname and its init ramdisk.  Mounting a v1
    hierarchy binds net_cls/net_prio for the whole machine, so this is only
    ever done there."""
    cmdline = Path("/proc/cmdline").read_text().split()
    return socket.gethostname() == "vmrun" and "rdinit=/init" in cmdline


@pytest.fixture
def net_hierarchy(tmp_path):
    """A v1 net_cls,net_prio hierarchy mounted beside the v2 root (the VM
    only), with the runtimes' cgroup root made in it; all undone after."""
    if not _in_vmrun_vm() or not pure_cgroup2():
        pytest.skip("mounts a v1 cgroup hierarchy: only inside the vmrun.sh VM")
    if "cgroup_no_v1=all" in Path("/proc/cmdline").read_text().split():
        pytest.skip("this VM was booted with cgroup_no_v1=all: no v1 hierarchy can be mounted")
    _needs_no_net_hierarchy()
    mnt = tmp_path / "net_cls,net_prio"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "cgroup", "-o", "net_cls,net_prio", "crn-test-net", str(mnt)],
                   check=True)
    made = []
    try:
        root = os.environ.get("CRIO_NATIVE_CGROUP_ROOT", "").strip("/")
        if root and not (mnt / root).is_dir():
            (mnt / root).mkdir(parents=True)
            made.append(mnt / root)
        yield mnt
    finally:
        for d in reversed(made):
            d.rmdir()
        subprocess.run(["umount", str(mnt)], check=True)


def _line(pid: int, ctrl: str) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _hid, ctrls, path = line.split(":", 2)
        if ctrl in ctrls.split(",") or (ctrl == "" and ctrls == ""):
            return path
    raise AssertionError(f"{pid} has no {ctrl!r} line")


def test_written_in_a_v1_hierarchy_beside_v2(rt, make_bundle, net_hierarchy, tmp_path):
    hierarchies = cgroups.host_hierarchies()
    assert cgroups.pure_v2(hierarchies), hierarchies
    name = f"crn-netv1-{os.getpid()}"

    def edit(spec):
        spec["linux"]["cgroupsPath"] = name
        spec["linux"]["resources"] = {"network": NETWORK, "pids": {"limit": 20}}
    b = make_bundle(["sleep", "60"], edit)
    rt.create("nv", b.path)
    plan = cgroups.plan_cgroups(name, {}, root=rt.cgroup_root)
    v2_dir = plan.v2[1]
    [net_dir] = [d for d in plan.dirs if d.is_relative_to(net_hierarchy)]
    try:
        pid = rt.state("nv")["pid"]
        # placed in both before it ran, the values already there
        assert _line(pid, "net_cls").endswith(f"/{name}") and _line(pid, "").endswith(f"/{name}")
        assert (net_dir / "net_cls.classid").read_text().strip() == str(0x100001)
        assert "lo 3" in (net_dir / "net_prio.ifpriomap").read_text().splitlines()
        assert (v2_dir / "pids.max").read_text().strip() == "20"
        # the container's cgroup mount is still cgroup2 alone
        assert [version for _n, _d, version in plan.views] == [2]
        # update writes them again, in the same group
        rt.update("nv", {"network": {"classID": 0x20002,
                                     "priorities": [{"name": "lo", "priority": 7}]}})
        assert (net_dir / "net_cls.classid").read_text().strip() == str(0x20002)
        assert "lo 7" in (net_dir / "net_prio.ifpriomap").read_text().splitlines()
        # an exec'd process joins both groups too
        rt.start("nv")
        out = tmp_path / "exec-out"
        with open(out, "w") as f:
            epid = rt.exec("nv", {**b.spec["process"], "args": ["sleep", "0.5"]},
                           stdio=(-1, f.fileno(), f.fileno()))
        try:
            assert _line(epid, "net_prio").endswith(f"/{name}")
        finally:
            os.waitpid(epid, 0)
    finally:
        rt.delete("nv", force=True)
    assert not net_dir.exists() and not v2_dir.exists()


def test_a_container_without_network_resources_stays_out(rt, make_bundle, net_hierarchy):
    """As under runc and crun: no group in the v1 hierarchy, cloned into
    its v2 group; so update cannot add network resources later."""
    name = f"crn-netnone-{os.getpid()}"

    def edit(spec):
        spec["linux"]["cgroupsPath"] = name
    rt.create("nn", make_bundle(["sleep", "60"], edit).path)
    try:
        pid = rt.state("nn")["pid"]
        assert _line(pid, "net_cls") == "/" and _line(pid, "").endswith(f"/{name}")
        assert not any(d.is_relative_to(net_hierarchy)
                       for d in cgroups.plan_cgroups(name, {}, root=rt.cgroup_root).dirs)
        with pytest.raises(FailedPrecondition, match="created without a group in the hierarchy"
                           ".*can only be set when the container is created"):
            rt.update("nn", {"network": {"classID": 42}})
    finally:
        rt.delete("nn", force=True)
    assert not (net_hierarchy / name).exists()
