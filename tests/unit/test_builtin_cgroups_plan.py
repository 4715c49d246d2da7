"""Where cgroupsPath goes and which files get which values, on a synthetic
hybrid host and a synthetic pure v2 host; which controllers get enabled where,
on a directory tree that stands in for cgroupfs.  No root."""
from __future__ import annotations

import errno
from pathlib import Path

import pytest

from crio_native.errors import FailedPrecondition, InvalidArgument, Unimplemented
from crio_native.linux import cgroups as cg
# the modules that read the control-file writers tests replace
from crio_native.linux.cgroups import delegation, group, hugetlb

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
    ({"memory": {"limit": -1}}, ("memory.limit_in_bytes", "-1"), ("memory.max", "max")),
    ({"pids": {"limit": 0}}, ("pids.max", "max"), ("pids.max", "max")),
    ({"cpu": {"shares": 1024}}, ("cpu.shares", "1024"), ("cpu.weight", "39")),
    ({"cpu": {"quota": 50000}}, ("cpu.cfs_quota_us", "50000"), ("cpu.max", "50000 100000")),
])
def test_resource_files(resources, v1, v2):
    h = cg.plan_cgroups("c", resources, hybrid(), cg.own_cgroups(OWN_HYBRID))
    assert [(p.name, v) for p, v in h.writes] == [v1]
    p = cg.plan_cgroups("c", resources, pure(), {"": "/"})
    assert [(p.name, v) for p, v in p.writes] == [v2]


def test_swap_is_memory_plus_swap_on_v1_and_swap_alone_on_v2():
    resources = {"memory": {"limit": 100, "swap": 300}}
    h = cg.plan_cgroups("c", resources, hybrid(), cg.own_cgroups(OWN_HYBRID))
    assert [(p.name, v) for p, v in h.writes] == [("memory.limit_in_bytes", "100"),
                                                  ("memory.memsw.limit_in_bytes", "300")]
    p = cg.plan_cgroups("c", resources, pure(), {"": "/"})
    assert [(p.name, v) for p, v in p.writes] == [("memory.max", "100"),
                                                  ("memory.swap.max", "200")]


HOST_SIZES = frozenset({"2MB", "1GB"})
# the kubelet's limits for a pod that asks for no huge pages: one per size
NO_HUGEPAGES = {"hugepageLimits": [{"pageSize": "2MB", "limit": 0},
                                   {"pageSize": "1GB", "limit": 0}]}


def v1_hugetlb():
    """A hybrid host with hugetlb mounted as v1 (so the v2 hierarchy has none)."""
    return [(cg.Hierarchy(h.mountpoint, 2, frozenset()) if h.version == 2 else h, root)
            for h, root in hybrid()] + [
        (cg.Hierarchy(Path("/sys/fs/cgroup/hugetlb"), 1, frozenset({"hugetlb"})), "/")]


def test_hugetlb_goes_to_unified_on_hybrid():
    plan = cg.plan_cgroups("c", {"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}]},
                           hybrid(), cg.own_cgroups(OWN_HYBRID), page_sizes=HOST_SIZES)
    assert plan.writes == [(Path("/sys/fs/cgroup/unified/c/hugetlb.2MB.max"), str(4 << 20))]


@pytest.mark.parametrize("hierarchies, sizes, written", [
    # limits written where a hugetlb controller takes them, 0 included
    (v1_hugetlb, HOST_SIZES, [("hugetlb/c/hugetlb.2MB.limit_in_bytes", "0"),
                              ("hugetlb/c/hugetlb.1GB.limit_in_bytes", "0")]),
    (pure, HOST_SIZES, [("c/hugetlb.2MB.max", "0"), ("c/hugetlb.1GB.max", "0")]),
    # a size the host lacks: its 0 limit is skipped
    (pure, frozenset({"2MB"}), [("c/hugetlb.2MB.max", "0")]),
    (v1_hugetlb, frozenset(), []),
    # hugetlb in a hybrid host's v2 hierarchy only (this host): nobody enables
    # it there, so its groups have no hugetlb files to write 0 to
    (hybrid, HOST_SIZES, []),
    # no hugetlb controller at all
    (lambda: [(h, r) for h, r in hybrid() if h.version == 1], HOST_SIZES, []),
])
def test_zero_hugepage_limits_the_host_cannot_enforce_are_skipped(hierarchies, sizes, written):
    plan = cg.plan_cgroups("c", NO_HUGEPAGES, hierarchies(), cg.own_cgroups(OWN_HYBRID),
                           page_sizes=sizes)
    assert [(str(p.relative_to("/sys/fs/cgroup")), v) for p, v in plan.writes] == written
    assert ("hugetlb" in plan.controllers) == (hierarchies is pure and bool(written))


def test_nonzero_hugepage_limit_for_a_size_the_host_lacks_is_an_error():
    resources = {"hugepageLimits": [{"pageSize": "2MB", "limit": 0},
                                    {"pageSize": "16GB", "limit": 1 << 34}]}
    with pytest.raises(FailedPrecondition, match=r"linux\.resources\.hugepageLimits\[1\]: "
                       r"this host has no 16GB huge pages \(it has: 1GB, 2MB\)"):
        cg.plan_cgroups("c", resources, pure(), {"": "/"}, page_sizes=HOST_SIZES)


def test_nonzero_hugepage_limit_without_a_controller_is_an_error():
    no_hugetlb = [(h, r) for h, r in hybrid() if h.version == 1]
    with pytest.raises(FailedPrecondition, match=r"hugepageLimits\[0\]: .* no hugetlb"):
        cg.plan_cgroups("c", {"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}, no_hugetlb,
                        cg.own_cgroups(OWN_HYBRID), page_sizes=HOST_SIZES)


@pytest.mark.parametrize("dirs, want", [
    (["hugepages-2048kB", "hugepages-1048576kB"], {"2MB", "1GB"}),
    (["hugepages-64kB", "hugepages-32768kB", "hugepages-16777216kB"], {"64KB", "32MB", "16GB"}),
    (["hugepages-x", "other"], set()),
    (None, set()),      # no /sys/kernel/mm/hugepages: a kernel without hugetlbfs
])
def test_host_page_sizes_by_their_cgroup_names(tmp_path, dirs, want):
    sysfs = tmp_path / "hugepages"
    for d in dirs or []:
        (sysfs / d).mkdir(parents=True)
    assert hugetlb.host_page_sizes(sysfs) == want


def test_missing_controller_is_an_error():
    with pytest.raises(FailedPrecondition, match=r"linux.resources.cpu.cpus: .* no cpuset"):
        cg.plan_cgroups("c", {"cpu": {"cpus": "0"}}, hybrid(), cg.own_cgroups(OWN_HYBRID))


@pytest.mark.parametrize("path", ["../up", "a/../../b", "/a/../b", "", ".", "./"])
@pytest.mark.parametrize("root", [None, "/", "/crio-native"])
def test_bad_paths(path, root):
    with pytest.raises(InvalidArgument, match="linux.cgroupsPath"):
        cg.plan_cgroups(path, {}, hybrid(), {}, root=root)


# (cgroupsPath, configured root, own v2 cgroup, the container's dir or None if refused)
V2_PLACEMENT = [
    ("c1", None, "/user.slice", "/sys/fs/cgroup/user.slice/c1"),
    ("a/b/c", None, "/", "/sys/fs/cgroup/a/b/c"),
    ("c1", "/crio-native", "/user.slice", "/sys/fs/cgroup/crio-native/c1"),
    ("c1", "/crio-native/", "/", "/sys/fs/cgroup/crio-native/c1"),
    ("./pod//c1", "/crio-native", "/", "/sys/fs/cgroup/crio-native/pod/c1"),
    # no root configured: an absolute path goes where it says, as with runc
    ("/user.slice/c1", None, "/user.slice", "/sys/fs/cgroup/user.slice/c1"),
    ("/user.slice", None, "/user.slice", "/sys/fs/cgroup/user.slice"),
    ("/other/c1", None, "/user.slice", "/sys/fs/cgroup/other/c1"),
    ("/kubepods/burstable/pod1/crio-x", None, "/system.slice/crio-native.service",
     "/sys/fs/cgroup/kubepods/burstable/pod1/crio-x"),
    ("/user.slice/c1", "/user.slice", "/", "/sys/fs/cgroup/user.slice/c1"),
    ("/other/c1", "/user.slice", "/", None),
    ("/user.slicex/c1", "/user.slice", "/system.slice", None),
    ("/kubepods/pod1/crio-x", None, "/", "/sys/fs/cgroup/kubepods/pod1/crio-x"),
    ("/crio-native/kubepods/pod1/crio-x", "/crio-native", "/",
     "/sys/fs/cgroup/crio-native/kubepods/pod1/crio-x"),
    ("/crio-native", "/crio-native", "/", "/sys/fs/cgroup/crio-native"),
    ("/kubepods/pod1/crio-x", "/crio-native", "/", None),
    ("/crio-native2/c1", "/crio-native", "/", None),
    ("/", "/crio-native", "/", None),
    ("/anything/c1", "/", "/user.slice", "/sys/fs/cgroup/anything/c1"),
]


@pytest.mark.parametrize("path,root,own,want", V2_PLACEMENT)
def test_placement_pure_v2(path, root, own, want):
    if want is None:
        with pytest.raises(InvalidArgument, match=r"linux.cgroupsPath: .* outside the cgroup "
                                                  r"root '(/crio-native|/user.slice)'"):
            cg.plan_cgroups(path, {}, pure(), {"": own}, root=root)
        return
    plan = cg.plan_cgroups(path, {}, pure(), {"": own}, root=root)
    assert plan.dirs == [Path(want)] and plan.into == Path(want)
    # the base: the configured root, else the hierarchy's root for an
    # absolute path and our own cgroup for a relative one
    base = root or ("/" if path.startswith("/") else own)
    assert plan.bases == [Path("/sys/fs/cgroup") / base.strip("/")]


def test_hybrid_placement_below_configured_root():
    plan = cg.plan_cgroups("pod/c1", {}, hybrid(), cg.own_cgroups(OWN_HYBRID), root="/crn")
    assert plan.dirs[1:3] == [Path("/sys/fs/cgroup/memory/crn/pod/c1"),
                              Path("/sys/fs/cgroup/pids/crn/pod/c1")]
    assert all(b.name == "crn" for b in plan.bases)
    assert len(plan.procs) == 5 and plan.into is None


def test_hybrid_absolute_goes_anywhere_without_a_root():
    own = cg.own_cgroups(OWN_HYBRID)  # memory in /job/x, the rest in /
    for path in ("/job/x/c", "/kubepods/burstable/pod1/c"):
        plan = cg.plan_cgroups(path, {}, hybrid(), own)
        assert Path("/sys/fs/cgroup/memory" + path) in plan.dirs
        assert Path("/sys/fs/cgroup/pids" + path) in plan.dirs
    # a relative one still goes below our own group, per hierarchy
    plan = cg.plan_cgroups("c", {}, hybrid(), own)
    assert Path("/sys/fs/cgroup/memory/job/x/c") in plan.dirs
    assert Path("/sys/fs/cgroup/pids/c") in plan.dirs


def test_hybrid_absolute_must_be_below_a_configured_root():
    own = cg.own_cgroups(OWN_HYBRID)
    with pytest.raises(InvalidArgument, match=r"outside the cgroup root '/job'"):
        cg.plan_cgroups("/c", {}, hybrid(), own, root="/job")


def test_absolute_path_the_mount_does_not_show():
    mounted_at_sub = [(cg.Hierarchy(Path("/sys/fs/cgroup"), 2, frozenset({"pids"})), "/sub")]
    with pytest.raises(FailedPrecondition, match="'/elsewhere/c' is not visible"):
        cg.plan_cgroups("/elsewhere/c", {}, mounted_at_sub, {"": "/sub"})
    plan = cg.plan_cgroups("/sub/c", {}, mounted_at_sub, {"": "/sub"})
    assert plan.dirs == [Path("/sys/fs/cgroup/c")]


@pytest.mark.parametrize("root", ["relative", "/a/../b", "/.."])
def test_bad_configured_root(root):
    with pytest.raises(InvalidArgument, match="cgroup_root"):
        cg.plan_cgroups("c", {}, pure(), {"": "/"}, root=root)


def test_runtime_cgroup_root_from_argument_or_environment(monkeypatch):
    from crio_native.runtime.builtin.container import BuiltinRuntime

    monkeypatch.setenv("CRIO_NATIVE_CGROUP_ROOT", "/from-env//x/")
    assert BuiltinRuntime("/nonexistent").cgroup_root == "/from-env/x"
    assert BuiltinRuntime("/nonexistent", cgroup_root="/given").cgroup_root == "/given"
    assert BuiltinRuntime("/nonexistent", cgroup_root="").cgroup_root == ""
    monkeypatch.setenv("CRIO_NATIVE_CGROUP_ROOT", "../up")
    with pytest.raises(InvalidArgument, match="CRIO_NATIVE_CGROUP_ROOT: '../up'"):
        BuiltinRuntime("/nonexistent")
    monkeypatch.delenv("CRIO_NATIVE_CGROUP_ROOT")
    assert BuiltinRuntime("/nonexistent").cgroup_root == ""


def test_configured_root_outside_the_mount():
    mounted_at_sub = [(cg.Hierarchy(Path("/sys/fs/cgroup"), 2, frozenset({"pids"})), "/sub")]
    with pytest.raises(FailedPrecondition, match="'/elsewhere' is not visible"):
        cg.plan_cgroups("c", {}, mounted_at_sub, {"": "/sub"}, root="/elsewhere")
    plan = cg.plan_cgroups("c", {}, mounted_at_sub, {"": "/sub/x"}, root="/sub/y")
    assert plan.dirs == [Path("/sys/fs/cgroup/y/c")]


def test_required_controllers_only_on_pure_v2():
    res = {"pids": {"limit": 7}, "memory": {"limit": 1 << 20}, "cpu": {"period": 1000}}
    assert cg.plan_cgroups("c", res, pure(), {"": "/"}).controllers == {"pids", "memory", "cpu"}
    assert cg.plan_cgroups("c", res, hybrid(), cg.own_cgroups(OWN_HYBRID)).controllers == set()


# ---- enabling controllers, on a tree that mimics cgroupfs ---------------------

class FakeCgroupfs:
    """Directories with cgroup.controllers / cgroup.subtree_control files (and
    cgroup.type below the top, as in the kernel); a write of "+c ..." behaves
    like the kernel's for domain controllers: all or nothing, EBUSY when the
    group (not the top) holds processes, ENOENT for a controller the group is
    not offered.  Writes are recorded in order."""

    def __init__(self, top: Path, controllers: str):
        self.top, self.writes = top, []
        self.group(top, controllers)

    def group(self, d: Path, controllers: str = "", procs: str = "") -> Path:
        d.mkdir(parents=True, exist_ok=True)
        (d / "cgroup.controllers").write_text(controllers)
        (d / "cgroup.subtree_control").write_text("")
        (d / "cgroup.procs").write_text(procs)
        if d != self.top:
            (d / "cgroup.type").write_text("domain\n")
        return d

    def write(self, path: Path, text: str) -> None:
        d = path.parent
        self.writes.append((d.relative_to(self.top).as_posix() or ".", text))
        wanted = {w.lstrip("+") for w in text.split()}
        if d != self.top and (d / "cgroup.procs").read_text().strip():
            raise OSError(errno.EBUSY, "Device or resource busy")
        if wanted - set((d / "cgroup.controllers").read_text().split()):
            raise OSError(errno.ENOENT, "No such file or directory")
        enabled = set(path.read_text().split()) | wanted
        path.write_text(" ".join(sorted(enabled)))
        for child in d.iterdir():
            if child.is_dir():
                (child / "cgroup.controllers").write_text(" ".join(sorted(enabled)))
                (child / "cgroup.subtree_control").touch()
                (child / "cgroup.procs").touch()
                (child / "cgroup.type").write_text("domain\n")


@pytest.fixture
def fakefs(tmp_path, monkeypatch):
    fs = FakeCgroupfs(tmp_path / "cg", "cpu memory pids")
    monkeypatch.setattr(delegation, "_write_control", fs.write)
    # cgroupfs makes every control file with its group; the stand-in does
    # not, so limits are written as new files here
    monkeypatch.setattr(group, "_write_existing", lambda path, value: path.write_text(value))
    return fs


def _plan(fs: FakeCgroupfs, path: str, resources: dict, root: str) -> cg.CgroupPlan:
    layout = [(cg.Hierarchy(fs.top, 2, frozenset({"cpu", "memory", "pids"})), "/")]
    return cg.plan_cgroups(path, resources, layout, {"": "/"}, root=root)


def test_delegation_chain():
    base = Path("/sys/fs/cgroup/r")
    assert cg.delegation_chain(base, base / "a/b/c") == [base, base / "a", base / "a/b"]
    assert cg.delegation_chain(base, base / "c") == [base]
    assert cg.delegation_chain(base, base) == []


def test_controllers_enabled_from_root_down(fakefs):
    fakefs.group(fakefs.top / "r", "cpu memory pids")
    fakefs.group(fakefs.top / "r" / "a")  # exists, offered nothing yet
    plan = _plan(fakefs, "a/b/c", {"pids": {"limit": 5}}, "/r")
    made = cg.create(plan)
    assert made == [fakefs.top / "r/a/b", fakefs.top / "r/a/b/c"]
    # the required controller first, then the others the group has, each
    # group before the groups below it
    assert fakefs.writes == [("r", "+pids"), ("r", "+cpu +memory"),
                             ("r/a", "+pids"), ("r/a", "+cpu +memory"),
                             ("r/a/b", "+pids"), ("r/a/b", "+cpu +memory")]
    assert (fakefs.top / "r/a/b/c/pids.max").read_text() == "5"


def test_only_missing_controllers_are_written(fakefs):
    r = fakefs.group(fakefs.top / "r", "cpu memory pids")
    (r / "cgroup.subtree_control").write_text("memory pids")
    cg.create(_plan(fakefs, "c", {}, "/r"))
    assert fakefs.writes == [("r", "+cpu")]


def test_root_with_processes_refuses_a_needed_controller(fakefs):
    r = fakefs.group(fakefs.top / "r", "cpu memory pids", procs="123\n")
    with pytest.raises(FailedPrecondition, match=r"cannot delegate controllers below a cgroup "
                                                  r"that holds processes; set runtime.cgroup_root "
                                                  r"\(or CRIO_NATIVE_CGROUP_ROOT\)"):
        cg.create(_plan(fakefs, "c", {"memory": {"limit": 1 << 20}}, "/r"))
    assert not (r / "c").exists()


def test_root_with_processes_is_fine_without_limits(fakefs):
    r = fakefs.group(fakefs.top / "r", "cpu memory pids", procs="123\n")
    made = cg.create(_plan(fakefs, "c", {}, "/r"))
    assert made == [r / "c"]
    # not even threaded controllers (cpu, pids), which the kernel would take
    # and so make "r" a thread root whose children can hold no processes
    assert fakefs.writes == []


def test_hierarchy_root_may_hold_processes(fakefs):
    (fakefs.top / "cgroup.procs").write_text("1\n")
    cg.create(_plan(fakefs, "c", {"memory": {"limit": 1 << 20}}, "/"))
    assert fakefs.writes == [(".", "+memory"), (".", "+cpu +pids")]
    assert (fakefs.top / "c" / "memory.max").read_text() == "1048576"


def test_kernel_refusal_of_a_needed_controller(fakefs, monkeypatch):
    fakefs.group(fakefs.top / "r", "cpu memory pids")

    def refuse(path, text):
        raise OSError(errno.EINVAL, "Invalid argument")
    monkeypatch.setattr(delegation, "_write_control", refuse)
    with pytest.raises(FailedPrecondition, match=r"cannot enable cpu for its child groups: "
                                                  r"Invalid argument"):
        cg.create(_plan(fakefs, "c", {"cpu": {"shares": 512}}, "/r"))
    assert not (fakefs.top / "r" / "c").exists()
    cg.create(_plan(fakefs, "d", {}, "/r"))  # optional ones may fail quietly


def test_controller_not_offered_to_root(fakefs):
    r = fakefs.group(fakefs.top / "r", "cpu memory")
    with pytest.raises(FailedPrecondition, match=r"does not offer the pids controller"):
        cg.create(_plan(fakefs, "a/c", {"pids": {"limit": 5}}, "/r"))
    assert not (r / "a").exists()


def test_missing_root_is_not_created(fakefs):
    with pytest.raises(FailedPrecondition, match=r"cgroup root .*/r does not exist"):
        cg.create(_plan(fakefs, "c", {}, "/r"))
    assert not (fakefs.top / "r").exists()


def test_unsupported_resource_section():
    with pytest.raises(Unimplemented, match="linux.resources.fromTheFuture"):
        cg.plan_cgroups("c", {"fromTheFuture": {"x": 1}}, hybrid(), {})


def with_io(layout):
    """A layout whose v1 side also has blkio and rdma, or whose v2 root offers io and rdma."""
    out = []
    for h, root in layout:
        extra = {"io", "rdma"} if h.version == 2 and "cpu" in h.controllers else set()
        out.append((cg.Hierarchy(h.mountpoint, h.version, h.controllers | extra), root))
    if layout is not None and all(h.version == 1 or "cpu" not in h.controllers for h, _ in layout):
        out += [(cg.Hierarchy(Path("/sys/fs/cgroup/blkio"), 1, frozenset({"blkio"})), "/"),
                (cg.Hierarchy(Path("/sys/fs/cgroup/rdma"), 1, frozenset({"rdma"})), "/")]
    return out


BLOCKIO = {"weight": 500, "leafWeight": 300,
           "weightDevice": [{"major": 8, "minor": 0, "weight": 200}],
           "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
           "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 0}]}


def test_blockio_files_on_each_version():
    h = cg.plan_cgroups("c", {"blockIO": BLOCKIO}, with_io(hybrid()), cg.own_cgroups(OWN_HYBRID))
    assert [(p.parent.parent.name, p.name, v) for p, v in h.writes] == [
        ("blkio", "blkio.weight", "500"), ("blkio", "blkio.leaf_weight", "300"),
        ("blkio", "blkio.weight_device", "8:0 200"),
        ("blkio", "blkio.throttle.read_bps_device", "8:0 1048576"),
        ("blkio", "blkio.throttle.write_iops_device", "8:16 0")]
    p = cg.plan_cgroups("c", {"blockIO": BLOCKIO}, with_io(pure()), {"": "/"})
    # leaf weights have no v2 knob; a rate of 0 lifts the limit
    assert [(p.name, v) for p, v in p.writes] == [
        ("io.bfq.weight", "500"), ("io.bfq.weight", "8:0 200"),
        ("io.max", "8:0 rbps=1048576"), ("io.max", "8:16 wiops=max")]
    assert "io" in p.controllers


def test_io_weight_falls_back_to_iocost_scale(tmp_path):
    """io.bfq.weight exists only with BFQ: otherwise io.weight gets the value
    rescaled from 10..1000 to 1..10000 (runc's conversion)."""
    from crio_native.linux import cgroup_io

    assert (cgroup_io.io_weight_from_bfq(10), cgroup_io.io_weight_from_bfq(1000)) == (1, 10000)
    (tmp_path / "io.weight").write_text("")
    cg.write_limits([(tmp_path / "io.bfq.weight", "8:0 500")])
    assert (tmp_path / "io.weight").read_text() == f"8:0 {cgroup_io.io_weight_from_bfq(500)}"
    with pytest.raises(FailedPrecondition, match="io.max is missing"):
        cg.write_limits([(tmp_path / "io.max", "8:0 rbps=1")])


def test_rdma_and_unified():
    rdma = {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}, "mlx4_0": {"hcaObjects": 7}}
    p = cg.plan_cgroups("c", {"rdma": rdma, "unified": {"memory.high": "5000000",
                                                         "cgroup.max.depth": "3"}},
                        with_io(pure()), {"": "/"})
    assert [(q.name, v) for q, v in p.writes] == [
        ("rdma.max", "mlx5_1 hca_handle=3 hca_object=10000"), ("rdma.max", "mlx4_0 hca_object=7"),
        ("memory.high", "5000000"), ("cgroup.max.depth", "3")]
    assert {"rdma", "memory"} <= p.controllers
    h = cg.plan_cgroups("c", {"rdma": rdma}, with_io(hybrid()), cg.own_cgroups(OWN_HYBRID))
    assert {(q.parent.parent.name, q.name) for q, _ in h.writes} == {("rdma", "rdma.max")}
    with pytest.raises(FailedPrecondition, match="unified: needs a pure cgroup v2 host"):
        cg.plan_cgroups("c", {"unified": {"memory.high": "1"}}, hybrid(),
                        cg.own_cgroups(OWN_HYBRID))


@pytest.mark.parametrize("resources,field", [
    ({"blockIO": {"weight": 5}}, "blockIO.weight"),
    ({"blockIO": {"weightDevice": [{"major": 8, "weight": 100}]}}, "blockIO.weightDevice[0].minor"),
    ({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": -2}]}},
     "blockIO.throttleReadBpsDevice[0].rate"),
    ({"rdma": {"bad name": {"hcaHandles": 1}}}, "rdma['bad name']"),
    ({"unified": {"../escape": "1"}}, "unified['../escape']"),
    ({"unified": {"memory.high": 5}}, "unified['memory.high']"),
    ({"unified": {"cgroup.procs": "1"}}, "unified['cgroup.procs']"),
])
def test_bad_io_rdma_unified_fields_are_named(resources, field):
    with pytest.raises(InvalidArgument) as e:
        cg.plan_cgroups("c", resources, with_io(pure()), {"": "/"})
    assert f"linux.resources.{field}" in str(e.value)
