"""The pure parts of the OCI CLI handler: the runtime's messages, where the
container's memory cgroup is, and what a `features` document promises."""
from __future__ import annotations

from pathlib import Path

import pytest

from crio_native.linux.cgroups import Hierarchy
from crio_native.linux.cgroups.warm import own_cgroup_procs
from crio_native.runtime.oci.cgroups import memory_cgroup_dir
from crio_native.runtime.oci.exec import tmpfs_mount_points
from crio_native.runtime.oci.handler import features_from_json
from crio_native.runtime.oci.messages import runtime_messages

HYBRID = [
    (Hierarchy(Path("/sys/fs/cgroup/cpu"), 1, frozenset({"cpu"})), "/"),
    (Hierarchy(Path("/sys/fs/cgroup/memory"), 1, frozenset({"memory"})), "/"),
    (Hierarchy(Path("/sys/fs/cgroup/unified"), 2, frozenset({"hugetlb"})), "/"),
]
HYBRID_OWN = {"cpu": "/", "memory": "/svc/me", "": "/"}
V2 = [(Hierarchy(Path("/sys/fs/cgroup"), 2, frozenset({"cpu", "memory", "pids"})), "/")]
V2_OWN = {"": "/system.slice/crn.service"}


@pytest.mark.parametrize("text, want", [
    ('{"level":"error","msg":"container does not exist","time":"2024-01-01T00:00:00Z"}\n',
     "container does not exist"),
    # crun's field order
    ('{"msg":"error opening file `/r/x/status`: No such file or directory","level":"error"}',
     "error opening file `/r/x/status`: No such file or directory"),
    # warnings only matter when no error was said
    ('{"level":"warning","msg":"w"}\n{"level":"error","msg":"e1"}\n{"level":"error","msg":"e1"}',
     "e1"),
    ('{"level":"warning","msg":"only a warning"}', "only a warning"),
    ("plain text\n\n", "plain text"),
    ('{"level":"error","msg":"a"}\nrunc: b\n', "a; runc: b"),
    ("", ""),
])
def test_runtime_messages(text, want):
    assert runtime_messages(text) == want
    assert runtime_messages(text.encode()) == want


@pytest.mark.parametrize("hierarchies, own, path, want", [
    (HYBRID, HYBRID_OWN, "/kubepods/pod1/c1", "/sys/fs/cgroup/memory/kubepods/pod1/c1"),
    (HYBRID, HYBRID_OWN, "c1", "/sys/fs/cgroup/memory/svc/me/c1"),
    (HYBRID, HYBRID_OWN, None, "/sys/fs/cgroup/memory/svc/me/ctr"),
    (V2, V2_OWN, "/kubepods/pod1/c1", "/sys/fs/cgroup/kubepods/pod1/c1"),
    (V2, V2_OWN, "c1", "/sys/fs/cgroup/system.slice/c1"),     # runc: parent of own group
    (V2, {"": "/"}, "c1", "/sys/fs/cgroup/c1"),
    (V2, V2_OWN, "kubepods-pod1.slice:crio:c1",                  # systemd driver: the scope
     "/sys/fs/cgroup/kubepods.slice/kubepods-pod1.slice/crio-c1.scope"),
    (V2, V2_OWN, "kubepods-.slice:crio:c1", None),              # not a slice name
    (HYBRID[:1], HYBRID_OWN, "/c1", None),                      # no memory controller
])
def test_memory_cgroup_dir(hierarchies, own, path, want):
    got = memory_cgroup_dir(path, "ctr", hierarchies=hierarchies, own=own)
    assert got == (Path(want) if want else None)


def test_memory_cgroup_dir_outside_the_mounts_view():
    nested = [(Hierarchy(Path("/sys/fs/cgroup"), 2, frozenset({"memory"})), "/ns-root")]
    assert memory_cgroup_dir("/elsewhere/c1", "ctr", hierarchies=nested, own={"": "/"}) is None
    assert memory_cgroup_dir("/ns-root/c1", "ctr", hierarchies=nested, own={"": "/"}) \
        == Path("/sys/fs/cgroup/c1")


RUNC_1_1 = {"ociVersionMax": "1.0.2-dev", "mountOptions": ["ro", "rro", "rbind"],
            "linux": {"namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"]}}
RUNC_1_2 = {**RUNC_1_1, "linux": {**RUNC_1_1["linux"],
                                  "mountExtensions": {"idmap": {"enabled": True}}}}


@pytest.mark.parametrize("doc, kernel_ok, rro, userns", [
    (RUNC_1_1, True, True, False),     # no idmapped mounts reported
    (RUNC_1_1, False, False, False),   # rro needs mount_setattr (5.12)
    (RUNC_1_2, True, True, True),
    ({**RUNC_1_2, "mountOptions": ["ro"]}, True, False, True),
    ({**RUNC_1_2, "linux": {"namespaces": ["pid"],
                            "mountExtensions": {"idmap": {"enabled": True}}}},
     True, True, False),                                         # no user namespace
    ({}, True, False, False),
])
def test_features_from_json(doc, kernel_ok, rro, userns):
    f = features_from_json(doc, kernel_ok)
    assert (f.recursive_read_only_mounts, f.user_namespaces) == (rro, userns)
    assert f.extra["oci_features"] is doc


MOUNTINFO = """\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
25 22 0:5 / /dev rw,nosuid shared:2 - devtmpfs udev rw,mode=755
26 25 0:21 / /dev/shm rw,nosuid,nodev shared:3 - tmpfs tmpfs rw
27 22 0:22 / /run rw,nosuid,nodev - ext4 /dev/vdb rw
28 22 0:23 / /run/user rw - tmpfs tmpfs rw
"""


@pytest.mark.parametrize("mountinfo, want", [
    (MOUNTINFO, ["/dev/shm"]),
    # /run a tmpfs too: both, in the candidates' order
    (MOUNTINFO + "29 22 0:24 / /run rw - tmpfs tmpfs rw\n", ["/dev/shm", "/run"]),
    # the last mount on a point is the one seen: /dev/shm covered by ext4
    (MOUNTINFO + "30 26 254:1 / /dev/shm rw - ext4 /dev/vdc rw\n", []),
    ("", []),
])
def test_tmpfs_mount_points(mountinfo, want):
    assert tmpfs_mount_points(mountinfo, ("/dev/shm", "/run")) == want


# ---- the monitor's --warm-cgroup: our own cgroup.procs ---------------------------

def fake_mount(root: Path, *groups: str) -> Path:
    """A directory standing in for a cgroup mount, with a cgroup.procs in
    each of `groups` (paths below it)."""
    for g in groups:
        (root / g.strip("/")).mkdir(parents=True, exist_ok=True)
        (root / g.strip("/") / "cgroup.procs").write_text("")
    return root


def test_own_cgroup_procs_prefers_the_v2_hierarchy(tmp_path):
    cpu = fake_mount(tmp_path / "cpu", "/")
    unified = fake_mount(tmp_path / "unified", "/svc")
    hierarchies = [(Hierarchy(cpu, 1, frozenset({"cpu"})), "/"),
                   (Hierarchy(unified, 2, frozenset()), "/")]
    got = own_cgroup_procs(hierarchies, {"cpu": "/", "": "/svc"})
    assert got == unified / "svc" / "cgroup.procs"


def test_own_cgroup_procs_falls_back_to_a_v1_hierarchy_that_shows_our_group(tmp_path):
    cpu = fake_mount(tmp_path / "cpu", "/a")
    memory = fake_mount(tmp_path / "memory", "/svc/me")
    unified = tmp_path / "unified"          # mounted, but our group is not there
    unified.mkdir()
    hierarchies = [(Hierarchy(unified, 2, frozenset()), "/"),
                   (Hierarchy(cpu, 1, frozenset({"cpu"})), "/other-root"),
                   (Hierarchy(memory, 1, frozenset({"memory"})), "/")]
    own = {"cpu": "/a", "memory": "/svc/me", "": "/x"}
    assert own_cgroup_procs(hierarchies, own) == memory / "svc" / "me" / "cgroup.procs"


def test_own_cgroup_procs_none_where_no_mount_shows_our_group(tmp_path):
    nested = [(Hierarchy(tmp_path, 2, frozenset({"memory"})), "/ns-root")]
    assert own_cgroup_procs(nested, {"": "/elsewhere"}) is None
