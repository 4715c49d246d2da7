"""SELinux labels in the built-in runtime, for real: process.selinuxLabel on
the container's init and on exec'd processes, linux.mountLabel on its tmpfs
mounts, mqueue and masked directories, and a label the policy does not know.

Needs a host with SELinux enforcing and a policy that has container_t and
container_file_t: `make test` boots the vmrun.sh VM with
`--selinux enforcing --selinux-policy build/selinux/policy.33` (Debian's
policy plus contrib/selinux/crio_native.cil) and runs `-m vm_selinux`."""
from __future__ import annotations

import copy
import errno
import os
from pathlib import Path

import pytest

from crio_native._native import launch
from crio_native.errors import InvalidArgument, NativeError
from crio_native.monitor import wait_exit
from crio_native.runtime.builtin.handler import BuiltinHandler
from crio_native.runtime.handler import MonitorOptions
from crio_native.runtime.builtin import records as r
from crio_native.runtime.builtin.records import Rec
from tests.integration.conftest import make_rootfs
from tests.integration.test_builtin_exec import _exec
from tests.integration.test_monitor import joined, log_entries

pytestmark = [pytest.mark.root, pytest.mark.vm_selinux]

LABEL = "system_u:system_r:container_t:s0:c1,c2"
MOUNT_LABEL = "system_u:object_r:container_file_t:s0:c1,c2"
UNKNOWN = "system_u:system_r:crn_no_such_t:s0"


def _labelled(spec: dict) -> None:
    spec["process"]["selinuxLabel"] = LABEL
    spec["linux"]["mountLabel"] = MOUNT_LABEL


def _enforcing() -> bool:
    try:
        return Path("/sys/fs/selinux/enforce").read_text().strip() == "1"
    except OSError:
        return False


@pytest.mark.requires_selinux
def test_container_runs_with_its_label(builtin, make_bundle):
    b = make_bundle(["cat", "/proc/self/attr/current"], _labelled)
    res = builtin.run(b)
    print(f"enforcing={_enforcing()} init label: {res.out.strip()!r}")
    assert res.code == 0, res.err
    assert res.out.rstrip("\0\n") == LABEL


@pytest.mark.requires_selinux
def test_monitored_container_runs_with_its_label(make_bundle, tmp_path):
    """The CRI path: the plan goes to crio-native-monitor, which launches
    it; the container writes its CRI log through the monitor's pipes."""
    handler = BuiltinHandler("builtin", tmp_path / "state")
    opts = MonitorOptions(state_dir=tmp_path / "mon", log_path=tmp_path / "mon" / "ctr.log")
    opts.state_dir.mkdir()
    b = make_bundle(["cat", "/proc/self/attr/current"], _labelled)
    try:
        handler.create("sel-mon", b.path, opts)
        handler.start("sel-mon")
        status = wait_exit(opts.state_dir, timeout=30)
        out = joined(log_entries(opts.log_path), "stdout")
        print(f"monitored: exit={status.exit_code} log={out!r}")
        assert status.exit_code == 0
        assert [line.rstrip("\0") for line in out] == [LABEL]
    finally:
        for cid in handler.runtime.list():
            handler.delete(cid, force=True)


@pytest.mark.requires_selinux
def test_tmpfs_mounts_carry_the_mount_label(rt, make_bundle):
    b = make_bundle(["sh", "-c", "grep -E ' /dev/shm | /dev/pts ' /proc/self/mountinfo"],
                    _labelled)
    rt.create("sel-mnt", b.path)
    pid = rt.state("sel-mnt")["pid"]
    # before start: created, waiting on its barrier, mounts made, label set
    # for the coming execve
    shm = os.getxattr(f"/proc/{pid}/root/dev/shm", "security.selinux").rstrip(b"\0").decode()
    pending = Path(f"/proc/{pid}/attr/exec").read_text().rstrip("\0\n")
    print(f"/dev/shm security.selinux={shm!r} attr/exec={pending!r}")
    assert shm == MOUNT_LABEL
    assert pending == LABEL
    rt.start("sel-mnt")
    assert rt.wait("sel-mnt", timeout=30) == 0
    rt.delete("sel-mnt")


def _file_label(path: str) -> str:
    return os.getxattr(path, "security.selinux").rstrip(b"\0").decode()


@pytest.mark.requires_selinux
def test_mqueue_and_masked_directories_carry_the_mount_label(rt, make_bundle):
    """As runc: mqueue's root gets the label by setxattr (no context= on
    that superblock), the read-only tmpfs over a masked directory by
    context=."""
    b = make_bundle(["true"], _labelled)
    rt.create("sel-mq", b.path)
    root = f"/proc/{rt.state('sel-mq')['pid']}/root"
    mqueue, masked = _file_label(f"{root}/dev/mqueue"), _file_label(f"{root}/sys/firmware")
    print(f"/dev/mqueue={mqueue!r} /sys/firmware={masked!r}")
    assert mqueue == masked == MOUNT_LABEL
    rt.start("sel-mq")
    assert rt.wait("sel-mq", timeout=30) == 0
    rt.delete("sel-mq")


@pytest.mark.requires_selinux
def test_containers_sharing_ipc_label_one_mqueue(rt, make_bundle):
    """A second container in the first one's IPC namespace mounts the same
    mqueue superblock again: with the label set by setxattr that works (a
    second context= option on it would be refused)."""
    first = make_bundle(["sleep", "60"], _labelled)
    rt.create("sel-ipc1", first.path)
    pid = rt.state("sel-ipc1")["pid"]

    def join(spec):
        _labelled(spec)
        spec["linux"]["namespaces"] = [
            {"type": "ipc", "path": f"/proc/{pid}/ns/ipc"} if ns["type"] == "ipc" else ns
            for ns in spec["linux"]["namespaces"]]
    second = make_bundle(["true"], join)
    rt.create("sel-ipc2", second.path)
    other = rt.state("sel-ipc2")["pid"]
    assert os.stat(f"/proc/{pid}/root/dev/mqueue").st_dev == \
        os.stat(f"/proc/{other}/root/dev/mqueue").st_dev
    assert _file_label(f"/proc/{other}/root/dev/mqueue") == MOUNT_LABEL
    rt.start("sel-ipc2")
    assert rt.wait("sel-ipc2", timeout=30) == 0
    rt.delete("sel-ipc2")
    rt.delete("sel-ipc1", force=True)


@pytest.mark.requires_selinux
def test_mountinfo_shows_the_context_option(builtin, make_bundle):
    b = make_bundle(["sh", "-c", "grep -E ' /dev/shm | /dev/pts | /sys/firmware ' "
                     "/proc/self/mountinfo"], _labelled)
    res = builtin.run(b)
    print(res.out)
    assert res.code == 0, res.err
    lines = res.out.splitlines()
    assert len(lines) == 3
    assert all(f'context="{MOUNT_LABEL}"' in line for line in lines)


@pytest.mark.requires_selinux
def test_exec_gets_the_containers_label_or_its_own(rt, make_bundle, tmp_path):
    b = make_bundle(["sleep", "60"], _labelled)
    rt.create("sel-exec", b.path)
    rt.start("sel-exec")
    process = copy.deepcopy(b.spec["process"])
    process["args"] = ["cat", "/proc/self/attr/current"]
    del process["selinuxLabel"]
    code, out = _exec(rt, "sel-exec", process, tmp_path)
    print(f"exec label: {out.strip()!r}")
    assert code == 0, out
    assert out.rstrip("\0\n") == LABEL
    # its own label, another MCS pair
    process["selinuxLabel"] = "system_u:system_r:container_t:s0:c5,c6"
    code, out = _exec(rt, "sel-exec", process, tmp_path)
    assert code == 0 and out.rstrip("\0\n") == process["selinuxLabel"]
    rt.delete("sel-exec", force=True)


@pytest.mark.requires_selinux
def test_mcs_keeps_other_categories_out(builtin, make_bundle):
    """container_t is MCS-constrained: a file at s0:c3,c4 is off limits to a
    container at s0:c1,c2, even though container_t may read
    container_file_t."""
    if not _enforcing():
        pytest.skip("MCS denials need enforcing mode")
    def edit(spec):
        _labelled(spec)
        spec["mounts"].append({"destination": "/other", "type": "tmpfs", "source": "tmpfs",
                               "options": ['context="system_u:object_r:container_file_t:s0:c3,c4"']})
        spec["process"]["args"] = ["sh", "-c", "ls /other >/dev/null 2>&1 && echo read || "
                                   "echo denied; ls / >/dev/null && echo root-ok"]
    res = builtin.run(make_bundle(edit=edit))
    print(res.out)
    assert res.out.split() == ["denied", "root-ok"], res.err


@pytest.mark.requires_selinux
def test_unknown_label_fails_create_and_leaves_nothing(rt, make_bundle):
    def edit(spec):
        spec["process"]["selinuxLabel"] = UNKNOWN
    b = make_bundle(["true"], edit)
    with pytest.raises(InvalidArgument) as exc:
        rt.create("sel-bad", b.path)
    print(f"create: {exc.value}")
    assert UNKNOWN in str(exc.value) and "process.selinuxLabel" in str(exc.value)
    assert rt.list() == []
    assert not (rt.root / "sel-bad").exists()


def test_child_reports_a_refused_label_with_its_stage(tmp_path):
    """The child's own check, without the daemon's: the kernel refuses the
    write to /proc/thread-self/attr/exec (EINVAL: a context the policy does
    not know, or no SELinux at all), reported as stage "selinux"."""
    rootfs = make_rootfs(tmp_path / "rootfs")
    buf = r.encode([r.rec(Rec.NS_NEW, 0x00020000 | 0x20000000), r.rec(Rec.ROOTFS, str(rootfs)),
                    r.rec(Rec.MOUNT, 0, 0, r.MOUNT_FS, "proc", "/proc", "proc", ""),
                    r.rec(Rec.CWD, "/"), r.rec(Rec.ARG, "true"), r.rec(Rec.ENV, "PATH=/bin"),
                    r.rec(Rec.SELINUX_LABEL, UNKNOWN)])
    with pytest.raises(NativeError) as exc:
        launch.launch(buf)
    print(f"launch: stage={exc.value.stage} {exc.value}")
    assert exc.value.stage == "selinux"
    assert exc.value.errno == errno.EINVAL
    assert "write `/proc/thread-self/attr/exec`" in str(exc.value)


@pytest.mark.requires_selinux
def test_relabel_gives_a_host_directory_the_containers_file_label(tmp_path):
    """What CreateContainer does for a mount with selinux_relabel."""
    from crio_native.linux.selinux import XATTR, relabel

    top = tmp_path / "vol"
    (top / "sub").mkdir(parents=True)
    (top / "sub" / "f").write_text("data")
    assert relabel(top, MOUNT_LABEL) == 3
    for p in (top, top / "sub", top / "sub" / "f"):
        assert os.getxattr(p, XATTR).rstrip(b"\0").decode() == MOUNT_LABEL
