"""What a create no longer repeats: the cgroup hierarchies parsed again only
when the cgroup mounts change (not on every rootfs mount), the groups made
leaf first with the root checked only on the way up, one state write before
the groups are made, and the built-in seccomp default rendered once per
bounding set.  Plain directories stand in for cgroupfs."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from crio_native.errors import FailedPrecondition
from crio_native.linux.cgroups import CgroupPlan, create, hierarchy, missing_dirs
from crio_native.runtime.builtin import creation
from crio_native.runtime.builtin.cgroup_records import ContainerCgroups, oom_cgroup
from crio_native.runtime.builtin.state import read_state
from crio_native.spec import seccomp, seccomp_default

CGROUP_LINES = [
    "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu",
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
]
ROOT_LINE = "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw"


def _rootfs_line(i: int) -> str:
    return (f"{900 + i} 22 0:{90 + i} / /run/crio-native/rootfs/c{i}/merged rw - overlay "
            "overlay rw,lowerdir=/l,upperdir=/u,workdir=/w")


class FakeTable:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def text(self) -> str:   # a new str object each time, as after a change
        return "\n".join(self.lines) + "\n"


@pytest.fixture
def table(monkeypatch):
    fake = FakeTable([ROOT_LINE, *CGROUP_LINES])
    parsed: list[str] = []
    real = hierarchy._parse_hierarchies

    def counting(text: str):
        parsed.append(text)
        return real(text)
    monkeypatch.setattr(hierarchy, "_mount_table", fake)
    monkeypatch.setattr(hierarchy, "_hierarchies_cache", None)
    monkeypatch.setattr(hierarchy, "_parse_hierarchies", counting)
    return fake, parsed


def test_rootfs_mounts_do_not_parse_the_hierarchies_again(table):
    fake, parsed = table
    first = hierarchy.host_hierarchies()
    for i in range(3):
        fake.lines.append(_rootfs_line(i))
        assert hierarchy.host_hierarchies() == first
    fake.lines.pop()
    assert hierarchy.host_hierarchies() == first
    assert len(parsed) == 1
    assert [h.mountpoint for h, _root in first] == [Path("/sys/fs/cgroup/cpu"),
                                                   Path("/sys/fs/cgroup/memory")]


def test_a_changed_cgroup_mount_is_parsed_again(table):
    fake, parsed = table
    hierarchy.host_hierarchies()
    fake.lines.append("36 31 0:33 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids")
    got = hierarchy.host_hierarchies()
    assert len(parsed) == 2
    assert Path("/sys/fs/cgroup/pids") in [h.mountpoint for h, _root in got]
    fake.lines.pop()
    fake.lines.pop()            # the memory hierarchy unmounted
    got = hierarchy.host_hierarchies()
    assert len(parsed) == 3
    assert [h.mountpoint for h, _root in got] == [Path("/sys/fs/cgroup/cpu")]


def test_cgroup_lines_only_by_filesystem_type():
    odd = r"40 22 0:50 / /mnt/a\040-\040cgroup\040b rw - tmpfs tmpfs rw"
    text = "\n".join([ROOT_LINE, odd, *CGROUP_LINES,
                      "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw"])
    lines = hierarchy.cgroup_mount_lines(text)
    assert lines == [*CGROUP_LINES, "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw"]


def _plan(tmp_path: Path, *leaves: str) -> CgroupPlan:
    bases = [tmp_path / "cpu", tmp_path / "memory"]
    plan = CgroupPlan()
    for base in bases:
        base.mkdir(exist_ok=True)
        for leaf in leaves:
            plan.bases.append(base)
            plan.dirs.append(base / leaf)
    return plan


def test_leaf_made_with_one_mkdir_when_the_parent_exists(tmp_path, monkeypatch):
    plan = _plan(tmp_path, "pod/c1")
    for base in plan.bases:
        (base / "pod").mkdir()
    stats: list[Path] = []
    real_exists = Path.exists
    monkeypatch.setattr(Path, "exists", lambda p, *a, **k: stats.append(p) or real_exists(p))
    monkeypatch.setattr(Path, "is_dir", lambda p: pytest.fail(f"stat of {p}"))
    made = create(plan)
    assert made == plan.dirs
    # only the v1 cpuset check of each dir made
    assert stats == [d / "cpuset.cpus" for d in plan.dirs]


def test_missing_parents_made_parents_first_as_journaled(tmp_path):
    plan = _plan(tmp_path, "a/b/c")
    journaled = missing_dirs(plan)
    made = create(plan)
    assert made == journaled
    assert [str(d.relative_to(tmp_path)) for d in made] == [
        "cpu/a", "cpu/a/b", "cpu/a/b/c", "memory/a", "memory/a/b", "memory/a/b/c"]
    assert create(plan) == []        # all there: nothing made, nothing raised


def test_missing_root_fails_and_leaves_nothing(tmp_path):
    plan = _plan(tmp_path, "a/b")
    (tmp_path / "memory").rmdir()
    with pytest.raises(FailedPrecondition, match=r"cgroup root .*memory does not exist"):
        create(plan)
    assert list((tmp_path / "cpu").iterdir()) == []
    assert not (tmp_path / "memory").exists()   # the root itself is never made


def test_missing_root_when_the_group_is_the_root(tmp_path):
    plan = CgroupPlan(bases=[tmp_path / "x"], dirs=[tmp_path / "x"])
    with pytest.raises(FailedPrecondition, match="does not exist"):
        create(plan)
    (tmp_path / "x").mkdir()
    assert create(plan) == []


def test_make_writes_the_state_once_with_its_groups(tmp_path, monkeypatch):
    (tmp_path / "cg").mkdir()
    plan = _plan(tmp_path / "cg", "k/c1")
    journal = [str(d) for d in missing_dirs(plan)]
    p = creation.Prepared("c1", tmp_path / "state" / "c1", tmp_path / "bundle",
                          {"process": {"args": ["sh"]}},
                          ContainerCgroups(plan, "k/c1", "", None), {}, [])
    writes: list[dict] = []
    real = creation.write_state

    def recording(root, container_id, state):
        # what each write holds, and which groups existed when it was made
        writes.append({**json.loads(json.dumps(state)),
                       "made before": [d for d in journal if Path(d).exists()]})
        real(root, container_id, state)
    monkeypatch.setattr(creation, "write_state", recording)
    with contextlib.ExitStack() as undo:
        state, scope = creation.make(tmp_path / "state", p, undo)
        assert scope is None
        assert len(writes) == 1
        assert writes[0]["_cgroups"] == journal
        assert writes[0]["made before"] == []
        assert writes[0]["status"] == "creating"
        assert all(d.is_dir() for d in plan.dirs)
        on_disk = read_state(tmp_path / "state", "c1")
        assert on_disk["_cgroups"] == journal
        assert on_disk["_cgroup_dirs"] == [str(d) for d in plan.dirs]
        assert on_disk["_cgroups_path"] == "k/c1"
    # the undo removed the groups and the state dir
    assert not any(Path(d).exists() for d in journal)
    assert not (tmp_path / "state" / "c1").exists()


CAPS = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID"]


@pytest.mark.parametrize("caps, machine", [(CAPS, "x86_64"), (CAPS + ["CAP_SYS_ADMIN"], "x86_64"),
                                           (CAPS, "aarch64"), ([], "s390x")])
def test_default_rendered_once_and_copied(caps, machine, monkeypatch):
    monkeypatch.setattr(seccomp, "_rendered", {})
    fresh = seccomp.render_template(seccomp_default.template(), caps, machine)
    first = seccomp._rendered_default(tuple(caps), machine)
    second = seccomp._rendered_default(tuple(caps), machine)
    assert first == second == fresh
    assert len(seccomp._rendered) == 1
    # a caller that changes its copy (the notifier's listener fields) changes no other
    first["listenerPath"] = "/x"
    first["syscalls"][0]["names"].append("x")
    first["syscalls"][0]["action"] = "SCMP_ACT_LOG"
    for rule in first["syscalls"]:
        for arg in rule.get("args") or []:
            arg["value"] = -1
    assert seccomp._rendered_default(tuple(caps), machine) == fresh


def test_rendered_defaults_are_bounded(monkeypatch):
    monkeypatch.setattr(seccomp, "_rendered", {})
    for i in range(seccomp._RENDERED_SIZE + 5):
        seccomp._rendered_default(tuple(CAPS[: i % 5]) + (f"CAP_X{i}",), "x86_64")
    assert len(seccomp._rendered) == seccomp._RENDERED_SIZE


def _prepared(tmp_path: Path, plan: CgroupPlan, scope=None) -> creation.Prepared:
    return creation.Prepared("c1", tmp_path / "state" / "c1", tmp_path / "bundle",
                             {"process": {"args": ["sh"]}},
                             ContainerCgroups(plan, "k/c1", "", scope), {}, [])


def test_cgroups_while_launching_only_for_v1_groups_of_cgroupfs(tmp_path):
    (tmp_path / "cg").mkdir()
    v1 = _plan(tmp_path / "cg", "k/c1")
    assert creation.cgroups_while_launching(_prepared(tmp_path, v1))
    v2 = CgroupPlan(dirs=[tmp_path / "cg" / "k"], bases=[tmp_path / "cg"],
                    into=tmp_path / "cg" / "k")
    assert not creation.cgroups_while_launching(_prepared(tmp_path, v2))
    assert not creation.cgroups_while_launching(_prepared(tmp_path, v1, scope=object()))
    assert not creation.cgroups_while_launching(_prepared(tmp_path, CgroupPlan()))
    no_groups = creation.Prepared("c1", tmp_path, tmp_path, {}, None, {}, [])
    assert not creation.cgroups_while_launching(no_groups)


def test_make_with_cgroups_later_journals_them_and_makes_none(tmp_path):
    """make(cgroups_later=True) writes the groups into the record but makes
    none; make_cgroups makes them with their undo; a crash in between finds
    them all in the record (a delete removes what exists of them)."""
    (tmp_path / "cg").mkdir()
    plan = _plan(tmp_path / "cg", "k/c1")
    journal = [str(d) for d in missing_dirs(plan)]
    p = _prepared(tmp_path, plan)
    with contextlib.ExitStack() as undo:
        state, scope = creation.make(tmp_path / "state", p, undo, cgroups_later=True)
        assert scope is None
        assert not any(Path(d).exists() for d in journal)
        assert read_state(tmp_path / "state", "c1")["_cgroups"] == journal
        creation.make_cgroups(tmp_path / "state", p, state, undo)
        assert all(d.is_dir() for d in plan.dirs)
        assert read_state(tmp_path / "state", "c1")["_cgroups"] == journal
    assert not any(Path(d).exists() for d in journal)
    assert not (tmp_path / "state" / "c1").exists()


def test_make_cgroups_failure_removes_what_it_made(tmp_path, monkeypatch):
    (tmp_path / "cg").mkdir()
    plan = _plan(tmp_path / "cg", "k/c1")
    plan.writes = [(plan.dirs[1] / "memory.limit_in_bytes", "1")]
    p = _prepared(tmp_path, plan)
    journal = [str(d) for d in missing_dirs(plan)]
    with pytest.raises(FailedPrecondition, match="is missing"):
        with contextlib.ExitStack() as undo:
            state, _ = creation.make(tmp_path / "state", p, undo, cgroups_later=True)
            creation.make_cgroups(tmp_path / "state", p, state, undo)
    assert not any(Path(d).exists() for d in journal)
    assert not (tmp_path / "state" / "c1").exists()


def test_oom_cgroup_of_a_v1_memory_group_not_made_yet(tmp_path):
    """The monitor reads the oom_kill counter after its gate: a v1 memory
    group made while it starts is named from its nearest existing
    ancestor (every v1 memory group, the root's too, has memory.oom_control);
    a v2 group must exist and have memory.events."""
    for c in ("cpu", "memory", "unified"):
        (tmp_path / c / "pod").mkdir(parents=True)
    for d in (tmp_path / "memory", tmp_path / "memory" / "pod"):
        (d / "memory.oom_control").write_text("")
    dirs = [tmp_path / c / "pod" / "crio-1" for c in ("cpu", "memory", "unified")]
    assert oom_cgroup(dirs, made_later=True) == tmp_path / "memory" / "pod" / "crio-1"
    assert oom_cgroup(dirs) is None          # made before the monitor: they must exist
    assert oom_cgroup([dirs[0], dirs[2]], made_later=True) is None
    deeper = tmp_path / "memory" / "pod2" / "crio-2"   # its parent is made too
    assert oom_cgroup([deeper], made_later=True) == deeper
    dirs[2].mkdir()
    (dirs[2] / "memory.events").write_text("")
    assert oom_cgroup([dirs[0], dirs[2]]) == dirs[2]
    assert oom_cgroup([dirs[0], dirs[2]], made_later=True) == dirs[2]


def test_new_v1_cpuset_group_gets_the_parents_sets(tmp_path):
    from crio_native.linux.cgroups.group import _inherit_cpuset
    parent = tmp_path / "cpuset" / "pod"
    child = parent / "crio-1"
    child.mkdir(parents=True)
    (parent / "cpuset.cpus").write_text("0-3\n")
    (parent / "cpuset.mems").write_text("0\n")
    (child / "cpuset.cpus").write_text("\n")
    (child / "cpuset.mems").write_text("1\n")      # set already: kept
    _inherit_cpuset(child)
    assert (child / "cpuset.cpus").read_text() == "0-3\n"
    assert (child / "cpuset.mems").read_text() == "1\n"
    v2 = tmp_path / "v2" / "c"
    v2.mkdir(parents=True)
    (v2 / "cgroup.controllers").write_text("cpuset\n")
    (v2 / "cpuset.cpus").write_text("")
    _inherit_cpuset(v2)                              # v2: empty means the parent's
    assert (v2 / "cpuset.cpus").read_text() == ""
    bare = tmp_path / "cpu" / "c"
    bare.mkdir(parents=True)
    _inherit_cpuset(bare)                            # no cpuset files: nothing to do
    assert sorted(p.name for p in bare.iterdir()) == []
