"""The monitor in front of an external OCI runtime: it runs `runc create`
in the container's place, adopts the container process runc leaves (it is
the child subreaper) and records that process's exit and output."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from crio_native.errors import Internal, InvalidArgument
from crio_native.monitor import launch_monitor
from crio_native.linux.cgroups.warm import own_cgroup_procs

from tests.bundles import RuncBundle
from tests.integration.test_monitor import (  # noqa: F401
    joined, log_entries, monitors, wait_gone,
)

pytestmark = pytest.mark.skipif(shutil.which("runc") is None,
                                reason="needs runc (Debian package runc)")


@pytest.fixture
def runc_bundle(tmp_path):
    return RuncBundle(tmp_path / "bundle").with_args


@pytest.fixture
def runc(tmp_path):
    root = tmp_path / "runc-root"
    created = []

    def call(*args: str, check: bool = True):
        if args[0] == "create":
            created.append(args[-1])
        return subprocess.run(["runc", "--root", str(root), *args], check=check,
                              capture_output=True, text=True)
    call.root = root
    yield call
    for cid in created:
        call("delete", "--force", cid, check=False)


def runc_create(runc, bundle, state, cid: str) -> list[str]:
    return ["runc", "--root", str(runc.root), "create", "--bundle", str(bundle),
            "--pid-file", str(state / "ctr.pid"), cid]


def test_runc_container_exit_and_log(monitors, runc, runc_bundle):
    bundle = runc_bundle("/bin/busybox", "sh", "-c", "echo hello; echo oops >&2; exit 5")
    state = monitors.state_dir("r1")
    mon = monitors.launch(runc_create(runc, bundle, state, "r1"), name="r1",
                          container_pid_file=state / "ctr.pid")
    assert (state / "pid").read_text().strip() == (state / "ctr.pid").read_text().strip()
    assert json.loads(runc("state", "r1").stdout)["status"] == "created"
    runc("start", "r1")
    status = monitors.finish(mon)
    assert (status.exit_code, status.signal) == (5, 0)
    entries = log_entries(mon.log_path)
    assert joined(entries, "stdout") == ["hello"]
    assert joined(entries, "stderr") == ["oops"]
    runc("delete", "r1")


def test_runc_container_killed(monitors, runc, runc_bundle):
    bundle = runc_bundle("/bin/busybox", "sleep", "30")
    state = monitors.state_dir("r2")
    mon = monitors.launch(runc_create(runc, bundle, state, "r2"), name="r2",
                          container_pid_file=state / "ctr.pid")
    runc("start", "r2")
    runc("kill", "r2", "KILL")
    status = monitors.finish(mon)
    assert (status.exit_code, status.signal) == (137, 9)
    runc("delete", "r2")


def test_failed_runc_create_fails_the_launch(monitors, runc, runc_bundle):
    bundle = runc_bundle("/bin/no-such-binary")
    state = monitors.state_dir("r3")
    with pytest.raises(Internal, match="runtime create failed with status 1: .*no-such-binary"):
        launch_monitor("r3", runc_create(runc, bundle, state, "r3"), state,
                       state / "ctr.log", container_pid_file=state / "ctr.pid")
    assert not (state / "attach").exists()
    assert not (state / "pid").exists()


# ---- --warm-cgroup: the cgroup attach lock kept warm while runc creates ---------

def test_warm_cgroup_is_written_while_the_create_runs(monitors, runc, runc_bundle, tmp_path):
    # a plain file stands in for cgroup.procs: each write appends our "0"
    procs = tmp_path / "procs"
    procs.write_text("")
    bundle = runc_bundle("/bin/busybox", "sh", "-c", "echo warm; exit 3")
    state = monitors.state_dir("w1")
    mon = monitors.launch(runc_create(runc, bundle, state, "w1"), name="w1",
                          container_pid_file=state / "ctr.pid", warm_cgroup=procs)
    written = procs.read_text()
    # runc create takes tens of ms, the writes come every 2 ms
    assert len(written) >= 3 and set(written) == {"0"}
    runc("start", "w1")
    status = monitors.finish(mon)
    assert (status.exit_code, status.signal) == (3, 0)
    assert joined(log_entries(mon.log_path), "stdout") == ["warm"]
    assert procs.read_text() == written      # nothing once the create is done
    runc("delete", "w1")


def test_warm_cgroup_in_our_own_cgroup_moves_nothing(monitors, runc, runc_bundle):
    procs = own_cgroup_procs()
    if procs is None:
        pytest.skip("no mount shows this process's cgroup")
    bundle = runc_bundle("/bin/busybox", "sleep", "30")
    state = monitors.state_dir("w2")
    mon = monitors.launch(runc_create(runc, bundle, state, "w2"), name="w2",
                          container_pid_file=state / "ctr.pid", warm_cgroup=procs)
    with open(f"/proc/{mon.pid}/cgroup") as f:
        assert f.read() == open("/proc/self/cgroup").read()
    runc("start", "w2")
    runc("kill", "w2", "KILL")
    assert monitors.finish(mon).signal == 9
    runc("delete", "w2")


def test_an_unwritable_warm_cgroup_leaves_the_create_as_it_was(monitors, runc, runc_bundle,
                                                               tmp_path):
    bundle = runc_bundle("/bin/busybox", "true")
    state = monitors.state_dir("w3")
    mon = monitors.launch(runc_create(runc, bundle, state, "w3"), name="w3",
                          container_pid_file=state / "ctr.pid",
                          warm_cgroup=tmp_path / "no-such-dir" / "cgroup.procs")
    runc("start", "w3")
    assert monitors.finish(mon).exit_code == 0
    runc("delete", "w3")


def test_warm_cgroup_needs_a_runtime_create(monitors, tmp_path):
    state = monitors.state_dir("w4")
    with pytest.raises(InvalidArgument, match="--warm-cgroup needs `--container-pid-file`"):
        launch_monitor("w4", ["/bin/true"], state, state / "ctr.log",
                       warm_cgroup=tmp_path / "procs")
