"""SELinux in the launch plan: the exec label record and `context=` on the
mounts that take linux.mountLabel, present or absent with the injected
"SELinux enabled" host fact.  No root, no SELinux needed."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from crio_native.errors import InvalidArgument
from crio_native.linux import selinux as sel
from crio_native.runtime.builtin import records as r
from crio_native.runtime.builtin.plan import HostFacts, exec_records, plan_records
from crio_native.runtime.builtin.records import Rec

OFF = HostFacts(last_cap=40, oom_score_adj=0, can_lower_oom=False)
ON = HostFacts(last_cap=40, oom_score_adj=0, can_lower_oom=False, selinux_enabled=True)
LABEL = "system_u:system_r:container_t:s0:c1,c2"
MOUNT_LABEL = "system_u:object_r:container_file_t:s0:c1,c2"
BASE = {
    "ociVersion": "1.2.0",
    "process": {"args": ["sh"], "env": ["PATH=/bin"], "cwd": "/", "selinuxLabel": LABEL},
    "root": {"path": "rootfs"},
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["newinstance", "ptmxmode=0666"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm"},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue"},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["ro"]},
        {"destination": "/etc/x", "type": "bind", "source": "hostdir", "options": ["rbind"]},
    ],
    "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}], "mountLabel": MOUNT_LABEL},
}


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "rootfs" / "etc").mkdir(parents=True)
    (tmp_path / "hostdir").mkdir()
    return tmp_path


def build(bundle, host, edit=None):
    spec = copy.deepcopy(BASE)
    if edit:
        edit(spec)
    return plan_records(spec, bundle, host=host)


def labels(records):
    return [x.fields[0] for x in records if x.type == Rec.SELINUX_LABEL]


def mount_data(records):
    """destination -> data of each mount record."""
    return {x.fields[4]: x.fields[6] for x in records if x.type == Rec.MOUNT}


def test_enabled_plan_carries_the_exec_label_last_before_seccomp(bundle):
    recs = build(bundle, ON, lambda s: s["linux"].update(
        seccomp={"defaultAction": "SCMP_ACT_ALLOW"}))
    assert labels(recs) == [LABEL]
    kinds = [x.type for x in recs]
    assert kinds.index(Rec.ARG) < kinds.index(Rec.SELINUX_LABEL) < kinds.index(Rec.SECCOMP)
    # and it survives the wire format
    assert labels(r.decode(r.encode(recs))) == [LABEL]


def test_disabled_plan_has_no_label_and_logs(bundle, caplog):
    with caplog.at_level("DEBUG", logger="crio_native.runtime.builtin.plan"):
        recs = build(bundle, OFF)
    assert labels(recs) == []
    assert all("context=" not in d for d in mount_data(recs).values())
    assert "process.selinuxLabel" in caplog.text and "SELinux is disabled" in caplog.text


@pytest.mark.parametrize("dest, expected", [
    ("/dev", f'mode=755,context="{MOUNT_LABEL}"'),
    ("/dev/pts", f'newinstance,ptmxmode=0666,context="{MOUNT_LABEL}"'),
    ("/dev/shm", f'context="{MOUNT_LABEL}"'),
    ("/dev/mqueue", ""),     # labelled by setxattr instead (below)
    ("/proc", ""),
    ("/sys", ""),
    ("/etc/x", ""),          # binds keep their source's labels
])
def test_mount_label_goes_to_the_mounts_that_take_it(bundle, dest, expected):
    assert mount_data(build(bundle, ON))[dest] == expected


def test_a_context_option_of_the_spec_wins(bundle):
    def edit(spec):
        spec["mounts"][3]["options"] = ['context="system_u:object_r:tmpfs_t:s0"']
    assert mount_data(build(bundle, ON, edit))["/dev/shm"] == 'context="system_u:object_r:tmpfs_t:s0"'


def test_no_labels_in_the_spec_no_records(bundle):
    def edit(spec):
        del spec["process"]["selinuxLabel"]
        del spec["linux"]["mountLabel"]
    recs = build(bundle, ON, edit)
    assert labels(recs) == [] and all("context=" not in d for d in mount_data(recs).values())


@pytest.mark.parametrize("edit, field", [
    (lambda s: s["process"].update(selinuxLabel="container_t"), "process.selinuxLabel"),
    (lambda s: s["process"].update(selinuxLabel=["a:b:c"]), "process.selinuxLabel"),
    (lambda s: s["linux"].update(mountLabel="a:b:c:s0\nx"), "linux.mountLabel"),
])
def test_malformed_labels_name_the_field(bundle, edit, field):
    with pytest.raises(InvalidArgument, match=rf"config\.json: {field}: "):
        build(bundle, ON, edit)


def test_a_label_the_policy_does_not_know_is_refused_before_launch(bundle):
    known = {MOUNT_LABEL}
    host = HostFacts(last_cap=40, oom_score_adj=0, can_lower_oom=False, selinux_enabled=True,
                     selinux_context_known=known.__contains__)
    with pytest.raises(InvalidArgument, match=r"process\.selinuxLabel: "
                       r"'system_u:system_r:container_t:s0:c1,c2' is not a valid context"):
        build(bundle, host)


def test_exec_takes_its_own_label_else_the_containers():
    spec = copy.deepcopy(BASE)
    own = exec_records(spec, {"args": ["id"], "cwd": "/",
                              "selinuxLabel": "system_u:system_r:other_t:s0"}, pid=1, host=ON)
    inherited = exec_records(spec, {"args": ["id"], "cwd": "/"}, pid=1, host=ON)
    off = exec_records(spec, {"args": ["id"], "cwd": "/"}, pid=1, host=OFF)
    assert labels(own) == ["system_u:system_r:other_t:s0"]
    assert labels(inherited) == [LABEL]
    assert labels(off) == []


@pytest.mark.parametrize("fstype, data, label, expected", [
    ("tmpfs", "", "a:b:c:s0", 'context="a:b:c:s0"'),
    ("tmpfs", "size=1k", "a:b:c:s0", 'size=1k,context="a:b:c:s0"'),
    ("tmpfs", "size=1k", None, "size=1k"),
    ("tmpfs", 'rootcontext="x:y:z:s0"', "a:b:c:s0", 'rootcontext="x:y:z:s0"'),
    ("proc", "", "a:b:c:s0", ""),
    ("mqueue", "", "a:b:c:s0", ""),
])
def test_mount_data_with_label(fstype, data, label, expected):
    assert sel.mount_data_with_label(fstype, data, label) == expected


def test_label_record_number_matches_plan_h():
    assert Rec.SELINUX_LABEL == 40 and r.LAYOUTS[Rec.SELINUX_LABEL] == "s"


def kinds(records):
    """destination -> mount kind of each mount record."""
    return {x.fields[4]: x.fields[2] for x in records if x.type == Rec.MOUNT}


def mount_labels(records):
    return [x.fields[0] for x in records if x.type == Rec.MOUNT_LABEL]


def test_mqueue_is_labelled_by_xattr_not_by_an_option(bundle):
    """runc mounts mqueue without the label and then sets security.selinux
    on its root: a pod's containers sharing an IPC namespace mount the same
    superblock, which takes one context= only."""
    recs = build(bundle, ON)
    assert kinds(recs)["/dev/mqueue"] == r.MOUNT_FS | r.MOUNT_LABEL_XATTR
    assert mount_data(recs)["/dev/mqueue"] == ""
    assert mount_labels(recs) == [MOUNT_LABEL]
    # nothing else is labelled that way
    assert [d for d, k in kinds(recs).items() if k & r.MOUNT_LABEL_XATTR] == ["/dev/mqueue"]
    # and it survives the wire format
    assert mount_labels(r.decode(r.encode(recs))) == [MOUNT_LABEL]


def test_mqueue_with_a_context_option_of_its_own_is_left_alone(bundle):
    def edit(spec):
        spec["mounts"][4]["options"] = ['context="system_u:object_r:tmpfs_t:s0"']
    assert kinds(build(bundle, ON, edit))["/dev/mqueue"] == r.MOUNT_FS


@pytest.mark.parametrize("host, edit", [
    (OFF, None),
    (ON, lambda s: s["linux"].pop("mountLabel")),
])
def test_no_mount_label_no_label_record_nor_xattr(bundle, host, edit):
    recs = build(bundle, host, edit)
    assert mount_labels(recs) == []
    assert not any(k & r.MOUNT_LABEL_XATTR for k in kinds(recs).values())


def test_masked_directories_get_the_label_from_the_plan(bundle):
    """The child mounts the tmpfs over a masked directory itself: the label
    record comes before the masks (it goes to that tmpfs as context=, as
    runc's maskPath does)."""
    recs = build(bundle, ON, lambda s: s["linux"].update(maskedPaths=["/proc/acpi"]))
    types = [x.type for x in recs]
    assert mount_labels(recs) == [MOUNT_LABEL]
    assert types.index(Rec.ROOTFS) < types.index(Rec.MOUNT_LABEL) < types.index(Rec.MASK)


def test_v1_cgroup_tmpfs_takes_the_label(bundle):
    """A cgroup mount on a v1/hybrid host is a tmpfs holding binds: runc
    mounts that tmpfs with the mount label; the binds keep their own."""
    from crio_native.linux.cgroups import CgroupPlan

    def edit(spec):
        spec["mounts"] = [{"destination": "/sys/fs/cgroup", "type": "cgroup",
                           "source": "cgroup", "options": ["ro"]}]
    plan = CgroupPlan(views=[("memory", Path("/cg/memory/c"), 1)])
    recs = plan_records(_spec(edit), bundle, host=ON, cgroups=plan)
    assert mount_data(recs) == {"/sys/fs/cgroup": f'mode=755,context="{MOUNT_LABEL}"',
                                "/sys/fs/cgroup/memory": ""}
    off = plan_records(_spec(edit), bundle, host=OFF, cgroups=plan)
    assert mount_data(off)["/sys/fs/cgroup"] == "mode=755"


def _spec(edit):
    spec = copy.deepcopy(BASE)
    edit(spec)
    return spec


def test_an_overlong_mount_label_names_the_field(bundle):
    long = "system_u:object_r:container_file_t:s0:" + "c1," * 1500 + "c2"
    with pytest.raises(InvalidArgument, match=r"linux\.mountLabel: longer than 4096 bytes"):
        build(bundle, ON, lambda s: s["linux"].update(mountLabel=long))
