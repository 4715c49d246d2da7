"""crio_native._native.launch: plan validation in C, launching a process from
a plan, failures reported with their stage, the start barrier.  Every test
runs twice: with this process cloning itself, and through the
crio-native-launch executable (CLONE_PARENT), which the runtime uses."""
from __future__ import annotations

import errno
import os
import struct

import pytest

from crio_native._native import launch
from crio_native.errors import NativeError
from crio_native.monitor.paths import launcher_binary
from crio_native.runtime.builtin import records as r
from crio_native.runtime.builtin.records import Rec
from tests.integration.conftest import make_rootfs

pytestmark = pytest.mark.root
NEWNS, NEWPID, NEWUTS = 0x00020000, 0x20000000, 0x04000000
_MODE: dict[str, str | None] = {"launcher": None}


@pytest.fixture(autouse=True, params=["direct", "launcher"])
def launch_mode(request):
    _MODE["launcher"] = str(launcher_binary()) if request.param == "launcher" else None
    yield request.param
    _MODE["launcher"] = None


def start(buf, stdio=(-1, -1, -1), **kw):
    return launch.launch(buf, stdio, launcher=_MODE["launcher"], **kw)


@pytest.fixture
def rootfs(tmp_path):
    return make_rootfs(tmp_path / "rootfs")


def plan(rootfs, args, *extra, flags=NEWNS | NEWPID):
    return r.encode([r.rec(Rec.NS_NEW, flags), r.rec(Rec.ROOTFS, str(rootfs)), *extra,
                     r.rec(Rec.CWD, "/"), *(r.rec(Rec.ARG, a) for a in args),
                     r.rec(Rec.ENV, "PATH=/bin")])


def run(buf, stdio=(-1, -1, -1)) -> int:
    pid, pidfd = start(buf, stdio)
    os.close(pidfd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.parametrize("buf,what", [
    (b"NOTAPLAN", "bad magic"),
    (r.MAGIC + struct.pack("=HHI", Rec.ARG, 0, 100) + b"x\0", "truncated record"),
    (r.MAGIC + struct.pack("=HHI", 999, 0, 0), "unknown record type"),
    (r.MAGIC + struct.pack("=HHI", Rec.ARG, 0, 2) + b"xy", "malformed record"),
    (r.MAGIC + struct.pack("=HHI", Rec.NS_NEW, 0, 2) + b"\0\0", "malformed record"),
    (r.MAGIC + struct.pack("=HHI", Rec.USER, 0, 16) + struct.pack("=IIII", 0, 0, 2, 5),
     "malformed record"),
])
def test_validate_rejects(buf, what):
    with pytest.raises(NativeError) as exc:
        launch.validate(buf)
    assert exc.value.errno == errno.EINVAL and what in str(exc.value)
    with pytest.raises(NativeError):
        start(buf)


def test_validate_accepts_every_layout():
    launch.validate(r.encode([r.rec(t, *sample) for t, sample in (
        (Rec.NS_NEW, (1,)), (Rec.NS_JOIN, (2, "/x")), (Rec.ID_MAP, (0, 0, 1, 1)),
        (Rec.MOUNT, (1, 2, 0, "a", "/b", "c", "")), (Rec.USER, (1, 2, (3, 4))),
        (Rec.CAPS, (1, 2, 3, 4, 5, 40)), (Rec.SECCOMP, (0, b"\0" * 8)),
        (Rec.OOM_SCORE_ADJ, (-5,)), (Rec.ROOT_READONLY, ()))]))


def test_exit_code_and_stdio(rootfs, tmp_path):
    out = tmp_path / "out"
    with open(out, "w") as f:
        code = run(plan(rootfs, ["sh", "-c", "echo $$ $0; exit 7"]), (-1, f.fileno(), -1))
    assert code == 7
    assert out.read_text() == "1 sh\n"


def test_failure_carries_stage_and_path(rootfs):
    buf = plan(rootfs, ["true"], r.rec(Rec.MOUNT, 0, 0, r.MOUNT_FS, "x", "/mnt", "nosuchfs", ""))
    with pytest.raises(NativeError) as exc:
        start(buf)
    assert exc.value.stage == "mounts"
    assert exc.value.errno == errno.ENODEV
    assert "mount `/mnt`" in str(exc.value)


def test_lookup_failure(rootfs):
    with pytest.raises(FileNotFoundError) as exc:
        start(plan(rootfs, ["no-such-binary"]))
    assert exc.value.stage == "lookup" and "exec `no-such-binary`" in str(exc.value)


def test_hostname_needs_its_own_uts(rootfs, tmp_path):
    out = tmp_path / "out"
    with open(out, "w") as f:
        assert run(plan(rootfs, ["hostname"], r.rec(Rec.HOSTNAME, "native-test"),
                        flags=NEWNS | NEWPID | NEWUTS), (-1, f.fileno(), -1)) == 0
    assert out.read_text() == "native-test\n"
    assert os.uname().nodename != "native-test"


def test_pid_join_restores_callers_pid_for_children(rootfs):
    before = os.readlink("/proc/thread-self/ns/pid_for_children")
    pid, pidfd = start(plan(rootfs, ["sleep", "30"]))
    try:
        target = f"/proc/{pid}/ns/pid"
        code = run(plan(rootfs, ["sh", "-c", "test $(ps -o pid,comm | grep -c sleep) = 1"],
                        r.rec(Rec.NS_JOIN, NEWPID, target),
                        r.rec(Rec.MOUNT, 0, 0, r.MOUNT_FS, "proc", "/proc", "proc", ""),
                        flags=NEWNS))
        assert code == 0
        assert os.readlink("/proc/thread-self/ns/pid_for_children") == before
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(pidfd)


def test_barrier_holds_until_release(rootfs, tmp_path):
    fifo = tmp_path / "exec.fifo"
    os.mkfifo(fifo, 0o600)
    buf = plan(rootfs, ["true"], r.rec(Rec.BARRIER, str(fifo)))
    pid, pidfd = start(buf)
    try:
        assert os.waitpid(pid, os.WNOHANG) == (0, 0)
        launch.release(fifo)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        os.close(pidfd)
    with pytest.raises(NativeError) as exc:
        launch.release(fifo)
    assert exc.value.errno == errno.ENXIO


def test_stage_names():
    assert launch.stage_name(7) == "mounts"
    assert launch.stage_name(99) == "unknown"


def test_time_namespace_via_clone3(rootfs, tmp_path):
    out = tmp_path / "out"
    mine = os.readlink("/proc/self/ns/time")
    with open(out, "w") as f:
        code = run(plan(rootfs, ["readlink", "/proc/self/ns/time"],
                        r.rec(Rec.MOUNT, 0, 0, r.MOUNT_FS, "proc", "/proc", "proc", ""),
                        flags=NEWNS | NEWPID | 0x80), (-1, f.fileno(), -1))
    assert code == 0
    theirs = out.read_text().strip()
    assert theirs.startswith("time:[") and theirs != mine


# ---- through crio-native-launch -------------------------------------------

def children() -> set[int]:
    """This process's live and zombie children, all threads included."""
    found: set[int] = set()
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/children") as f:
            found.update(int(p) for p in f.read().split())
    return found


def ppid_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_process_is_our_child_and_nothing_else_is(rootfs, launch_mode):
    before = children()
    pid, pidfd = start(plan(rootfs, ["sleep", "30"]))
    try:
        assert ppid_of(pid) == os.getpid()
        # the launcher is gone and reaped: the container is our only new child
        assert children() - before == {pid}
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(pidfd)


def test_failed_launch_leaves_no_child(rootfs, launch_mode):
    before = children()
    with pytest.raises(FileNotFoundError):
        start(plan(rootfs, ["no-such-binary"]))
    assert children() == before


def test_hook_error_is_raised_and_the_child_reaped(rootfs, launch_mode):
    before = children()
    seen = []

    def hooks(pid):
        seen.append(ppid_of(pid))
        raise RuntimeError("hook said no")

    with pytest.raises(RuntimeError, match="hook said no"):
        start(plan(rootfs, ["true"], r.rec(Rec.HOOK_PAUSE)), on_hooks=hooks)
    assert seen == [os.getpid()]
    assert children() == before


def test_swapped_stdio_reaches_the_right_fds(rootfs, tmp_path, launch_mode):
    """stdout and stderr crossed over (2 -> 1, 1 -> 2): the dup2 order of the
    launcher's spawn must not let one overwrite the other first."""
    out, err = tmp_path / "out", tmp_path / "err"
    saved = os.dup(1), os.dup(2)
    try:
        with open(out, "w") as fo, open(err, "w") as fe:
            os.dup2(fo.fileno(), 1)
            os.dup2(fe.fileno(), 2)
            code = run(plan(rootfs, ["sh", "-c", "echo to-out; echo to-err >&2"]), (-1, 2, 1))
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
    assert code == 0
    assert out.read_text() == "to-err\n" and err.read_text() == "to-out\n"


def test_launcher_killed_midway_fails_cleanly(rootfs):
    """The launcher dies while the child waits for its hooks: the launch
    fails with a clear error and the child is killed and reaped."""
    before = children()

    def hooks(pid):
        for other in children() - before - {pid}:
            os.kill(other, 9)   # the launcher
            os.waitid(os.P_PID, other, os.WEXITED | os.WNOWAIT)

    with pytest.raises(NativeError) as exc:
        launch.launch(plan(rootfs, ["true"], r.rec(Rec.HOOK_PAUSE)), on_hooks=hooks,
                      launcher=str(launcher_binary()))
    assert exc.value.errno == errno.EPIPE
    assert children() == before


def test_missing_launcher_is_named(rootfs, tmp_path):
    missing = tmp_path / "no-launcher"
    with pytest.raises(FileNotFoundError) as exc:
        launch.launch(plan(rootfs, ["true"]), launcher=str(missing))
    assert str(missing) in str(exc.value)
