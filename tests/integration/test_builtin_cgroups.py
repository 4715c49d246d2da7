"""cgroups of the built-in runtime on this host: groups made below the cgroup
root (the test process's own cgroup, or the one tests/conftest.py set up in
CRIO_NATIVE_CGROUP_ROOT), the pid placed before the process runs, limits the
host can enforce written, everything removed on delete.  Comparisons with
runc/crun use a path all three place in the same group."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from crio_native.errors import FailedPrecondition
from crio_native.linux import cgroups
from tests.hostinfo import cgroup_controller_usable

# Also run inside the pure cgroup v2 VM by `make test` (crun works there as a second oracle).
pytestmark = [pytest.mark.root, pytest.mark.vm]


def test_placed_and_limited_before_start(rt, make_bundle):
    name = f"crn-cg-{os.getpid()}"
    resources = {}
    if cgroup_controller_usable("pids"):
        resources["pids"] = {"limit": 42}
    if cgroup_controller_usable("memory"):
        resources["memory"] = {"limit": 64 * 1024 * 1024}

    def edit(spec):
        spec["linux"]["cgroupsPath"] = name
        spec["linux"]["resources"] = resources
    rt.create("cg1", make_bundle(["sleep", "60"], edit).path)
    pid = rt.state("cg1")["pid"]
    plan = cgroups.plan_cgroups(name, resources, root=rt.cgroup_root)
    membership = Path(f"/proc/{pid}/cgroup").read_text()
    for d in plan.dirs:
        assert d.is_dir()
        assert str(pid) in (d / "cgroup.procs").read_text().split()
    assert f"/{name}\n" in membership
    for path, value in plan.writes:
        assert path.read_text().strip() == value
    rt.delete("cg1", force=True)
    assert not any(d.exists() for d in plan.dirs)


def test_pids_limit_is_enforced(builtin, oracle, make_bundle, cgroups_path):
    if not cgroup_controller_usable("pids"):
        pytest.skip("this host has no pids controller")

    def edit(spec):
        spec["linux"]["cgroupsPath"] = cgroups_path(f"crn-pids-{os.getpid()}")
        spec["linux"]["resources"] = {"pids": {"limit": 2}}
    script = ["sh", "-c", "sleep 5 & sleep 5 & sleep 5 & echo done; kill $(jobs -p) 2>/dev/null"]
    mine, ref = builtin.run(make_bundle(script, edit)), oracle.run(make_bundle(script, edit))
    assert mine.out == ref.out
    assert "can't fork" in mine.err and "can't fork" in ref.err


def test_same_cgroup_view_as_runc(builtin, oracle, make_bundle, cgroups_path):
    def edit(spec):
        spec["linux"]["cgroupsPath"] = cgroups_path(f"crn-view-{os.getpid()}")
    script = ["cat", "/proc/self/cgroup"]
    mine, ref = builtin.run(make_bundle(script, edit)), oracle.run(make_bundle(script, edit))
    assert mine.code == ref.code == 0
    assert mine.out == ref.out
    assert f"crn-view-{os.getpid()}" in mine.out


def test_cgroup_namespace_rooted_at_container_group(builtin, oracle, make_bundle, cgroups_path):
    def edit(spec):
        spec["linux"]["cgroupsPath"] = cgroups_path(f"crn-cgns-{os.getpid()}")
        spec["linux"]["namespaces"].append({"type": "cgroup"})
    script = ["cat", "/proc/self/cgroup"]
    mine, ref = builtin.run(make_bundle(script, edit)), oracle.run(make_bundle(script, edit))
    assert mine.out == ref.out
    assert all(line.endswith(":/") for line in mine.out.splitlines())


@pytest.mark.requires_cgroup2
def test_clone_into_cgroup_on_pure_v2(rt, make_bundle):
    """On a pure v2 host the child is cloned straight into its group."""
    name = f"crn-v2-{os.getpid()}"

    def edit(spec):
        spec["linux"]["cgroupsPath"] = name
        spec["linux"]["resources"] = {"pids": {"limit": 10}, "memory": {"limit": 33554432}}
    rt.create("v2", make_bundle(["sleep", "60"], edit).path)
    plan = cgroups.plan_cgroups(name, {}, root=rt.cgroup_root)
    assert plan.into is not None and plan.procs == []
    pid = rt.state("v2")["pid"]
    assert Path(f"/proc/{pid}/cgroup").read_text().strip().endswith(f"/{name}")
    assert (plan.into / "pids.max").read_text().strip() == "10"
    assert (plan.into / "memory.max").read_text().strip() == "33554432"
    rt.delete("v2", force=True)
    assert not plan.into.exists()


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def test_pause_resume(rt, make_bundle, tmp_path):
    if not any({"freezer"} & h.controllers or h.version == 2 for h, _ in cgroups.host_hierarchies()):
        pytest.skip("no freezer on this host")
    shared = tmp_path / "shared"
    shared.mkdir()

    def edit(spec):
        spec["linux"]["cgroupsPath"] = f"crn-pause-{os.getpid()}"
        spec["mounts"].append({"destination": "/out", "type": "bind", "source": str(shared),
                               "options": ["rbind"]})
    ticker = "while true; do echo x >> /out/ticks; usleep 10000; done"
    rt.create("p1", make_bundle(["sh", "-c", ticker], edit).path)
    rt.start("p1")
    ticks = shared / "ticks"
    deadline = time.monotonic() + 5
    while _size(ticks) < 4:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    rt.pause("p1")
    assert rt.state("p1")["status"] == "paused"
    frozen_at = _size(ticks)
    time.sleep(0.2)
    assert _size(ticks) == frozen_at
    with pytest.raises(FailedPrecondition, match="not running"):
        rt.pause("p1")
    rt.resume("p1")
    assert rt.state("p1")["status"] == "running"
    deadline = time.monotonic() + 5
    while _size(ticks) <= frozen_at:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    rt.pause("p1")
    rt.delete("p1", force=True)
    assert rt.list() == []



def test_mount_table_read_again_after_a_mount(tmp_path):
    """The cgroup layout comes from a cached copy of mountinfo that is read
    again only after the mount table changed: a mount made here is seen at
    once, and so is its unmount."""
    import subprocess

    table = cgroups._MountTable()
    first = table.text()
    assert table.text() is first            # unchanged: no second read
    target = tmp_path / "mnt"
    target.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "crn-mount-table", str(target)], check=True)
    try:
        assert f" {target} " in table.text()
        assert cgroups.host_hierarchies() == cgroups._parse_hierarchies(
            Path("/proc/self/mountinfo").read_text())
    finally:
        subprocess.run(["umount", str(target)], check=True)
    assert f" {target} " not in table.text()


def _a_block_device() -> tuple[int, int] | None:
    """major:minor of a whole disk of this machine (throttles must name one)."""
    for dev in sorted(Path("/sys/block").glob("*/dev")):
        if dev.parent.name.startswith(("loop", "ram", "zram")):
            continue
        major, minor = dev.read_text().split(":")
        return int(major), int(minor)
    return None


def test_blockio_throttle_written(rt, make_bundle):
    """blockIO throttles land in the container's own group: the v1 blkio
    throttle files here, io.max on a pure v2 host (VM, device)."""
    if not cgroup_controller_usable("blkio") and not cgroup_controller_usable("io"):
        pytest.skip("no blkio (v1) or io (v2) controller for the cgroup root")
    disk = _a_block_device()
    if disk is None:
        pytest.skip("no block device on this machine")
    where = f"{disk[0]}:{disk[1]}"
    name = f"crn-blkio-{os.getpid()}"

    def edit(spec):
        spec["linux"]["cgroupsPath"] = name
        spec["linux"]["resources"] = {"blockIO": {
            "throttleReadBpsDevice": [{"major": disk[0], "minor": disk[1], "rate": 1048576}],
            "throttleWriteIOPSDevice": [{"major": disk[0], "minor": disk[1], "rate": 300}]}}
    rt.create("io1", make_bundle(["sleep", "60"], edit).path)
    try:
        plan = cgroups.plan_cgroups(name, {}, root=rt.cgroup_root)
        found = {}
        for d in plan.dirs:
            for f in ("io.max", "blkio.throttle.read_bps_device",
                      "blkio.throttle.write_iops_device"):
                if (d / f).exists():
                    found[f] = (d / f).read_text()
        if "io.max" in found:
            assert f"{where} rbps=1048576 wbps=max riops=max wiops=300" in found["io.max"]
        else:
            assert found["blkio.throttle.read_bps_device"].split() == [where, "1048576"]
            assert found["blkio.throttle.write_iops_device"].split() == [where, "300"]
    finally:
        rt.delete("io1", force=True)
