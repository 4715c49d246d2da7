"""The child's AppArmor and Landlock steps (src/_native/exec.c,
src/_native/landlock.c) driven by hand-made plans, directly and through the
crio-native-launch executable: a Landlock ruleset lets writes through only
beneath its read-write rule and fails with EACCES elsewhere, a missing rule
path fails at the `landlock` stage naming it, and an AppArmor profile on a
kernel without AppArmor fails at the `apparmor` stage."""
from __future__ import annotations

import errno
import os

import pytest

from crio_native.errors import NativeError
from crio_native.linux import apparmor
from crio_native.linux import landlock as ll
from crio_native.runtime.builtin import records as r
from crio_native.runtime.builtin.records import Rec
from tests.native.test_launch import launch_mode, plan, rootfs, run, start  # noqa: F401

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(ll.abi_version() < 1, reason="needs a kernel with Landlock")]


def landlock(*rules):
    abi = ll.abi_version()
    fs = ll.fs_handled(abi)
    return [r.rec(Rec.NO_NEW_PRIVS),
            r.rec(Rec.LANDLOCK, abi, fs, ll.net_handled(abi), ll.scoped(abi)),
            *(r.rec(Rec.LANDLOCK_PATH, fs if rw else ll.FS_READ, path) for path, rw in rules)]


def test_writes_only_beneath_the_read_write_rule(rootfs, tmp_path):  # noqa: F811
    (rootfs / "tmp" / "rw").mkdir()
    out = tmp_path / "out"
    script = "echo a > /tmp/rw/f && echo RW; echo b > /tmp/other 2>&1; cat /etc/passwd"
    with open(out, "w") as f:
        code = run(plan(rootfs, ["sh", "-c", script],
                        *landlock(("/bin", False), ("/etc", False), ("/tmp/rw", True))),
                   (-1, f.fileno(), f.fileno()))
    text = out.read_text()
    assert code == 0, text
    assert (rootfs / "tmp" / "rw" / "f").read_text() == "a\n"
    assert "RW" in text and "can't create /tmp/other: Permission denied" in text, text
    assert "root:x:0:0" in text
    assert not (rootfs / "tmp" / "other").exists()


def test_a_missing_rule_path_fails_at_the_landlock_stage(rootfs):  # noqa: F811
    with pytest.raises(NativeError) as exc:
        start(plan(rootfs, ["true"], *landlock(("/bin", False), ("/nope", False))))
    assert exc.value.stage == "landlock" and exc.value.errno == errno.ENOENT
    assert "/nope" in str(exc.value)


@pytest.mark.skipif(apparmor.enabled(), reason="checks a kernel without AppArmor")
def test_apparmor_profile_without_apparmor_fails_at_its_stage(rootfs):  # noqa: F811
    with pytest.raises(NativeError) as exc:
        start(plan(rootfs, ["true"], r.rec(Rec.APPARMOR, "p1"),
                   r.rec(Rec.MOUNT, 0, 0, r.MOUNT_FS, "proc", "/proc", "proc", "")))
    assert exc.value.stage == "apparmor", str(exc.value)
    assert os.path.exists("/proc/self/attr/exec")
