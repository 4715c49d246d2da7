"""Lifecycle of the built-in runtime (create/start/state/kill/delete), joined
namespaces, and bad input that must leave nothing behind."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from crio_native.errors import (AlreadyExists, FailedPrecondition, InvalidArgument, NotFound,
                                Unimplemented)

pytestmark = pytest.mark.root
OCI_STATE_KEYS = {"ociVersion", "id", "status", "pid", "bundle", "annotations"}


def _mounts() -> str:
    return Path("/proc/self/mountinfo").read_text()


def _wait_status(rt, cid, status, timeout=5.0):
    deadline = time.monotonic() + timeout
    while rt.state(cid)["status"] != status:
        assert time.monotonic() < deadline, rt.state(cid)
        time.sleep(0.01)


def test_create_start_state_kill_delete(rt, make_bundle, tmp_path):
    def edit(spec):
        spec["annotations"] = {"org.example/k": "v"}
    b = make_bundle(["sleep", "60"], edit)
    created = rt.create("c1", b.path)
    assert OCI_STATE_KEYS <= set(created)
    assert created["status"] == "created" and created["pid"] > 0
    assert created["annotations"] == {"org.example/k": "v"}
    assert created["bundle"] == str(b.path)
    # the process waits at the barrier: it has not exec'd sleep yet
    assert Path(f"/proc/{created['pid']}/exe").resolve().name != "busybox"
    rt.start("c1")
    _wait_status(rt, "c1", "running")
    with pytest.raises(FailedPrecondition, match="not stopped: running"):
        rt.delete("c1")
    rt.kill("c1", signal.SIGKILL)
    assert rt.wait("c1", timeout=5) == 128 + signal.SIGKILL
    assert rt.state("c1")["status"] == "stopped"
    assert rt.state("c1")["pid"] == 0
    with pytest.raises(FailedPrecondition, match="not running"):
        rt.kill("c1")
    rt.delete("c1")
    assert not (tmp_path / "state" / "c1").exists()
    with pytest.raises(NotFound):
        rt.state("c1")


def test_kill_created_then_start_fails(rt, make_bundle):
    rt.create("c2", make_bundle(["true"]).path)
    rt.kill("c2", signal.SIGKILL)
    rt.wait("c2", timeout=5)
    assert rt.state("c2")["status"] == "stopped"
    with pytest.raises(FailedPrecondition, match="stopped"):
        rt.start("c2")
    rt.delete("c2")


def test_delete_force_running(rt, make_bundle):
    rt.create("c3", make_bundle(["sleep", "60"]).path)
    rt.start("c3")
    pid = rt.state("c3")["pid"]
    rt.delete("c3", force=True)
    assert rt.list() == []
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def test_duplicate_id(rt, make_bundle):
    b = make_bundle(["true"])
    rt.create("dup", b.path)
    with pytest.raises(AlreadyExists):
        rt.create("dup", b.path)
    rt.delete("dup", force=True)


def test_join_namespaces_by_path(rt, make_bundle):
    """A second container joins the first one's network, uts, ipc and pid
    namespaces (the pod case)."""
    rt.create("pod", make_bundle(["sleep", "60"]).path)
    rt.start("pod")
    pod_pid = rt.state("pod")["pid"]
    ns = {t: f"/proc/{pod_pid}/ns/{f}" for t, f in
          (("network", "net"), ("uts", "uts"), ("ipc", "ipc"), ("pid", "pid"))}

    def edit(spec):
        spec.pop("hostname")
        spec["linux"]["namespaces"] = [{"type": t, "path": p} for t, p in ns.items()] \
            + [{"type": "mount"}]
    out_path = Path(make_bundle(["true"]).path) / "out"
    b = make_bundle(["sh", "-c", "hostname; readlink /proc/self/ns/net; readlink /proc/self/ns/ipc; "
                     "ps -o comm | grep -c sleep"], edit)
    with open(out_path, "w+") as out:
        rt.create("member", b.path, stdio=(-1, out.fileno(), out.fileno()))
        rt.start("member")
        assert rt.wait("member", timeout=10) == 0
        out.seek(0)
        lines = out.read().splitlines()
    assert lines == ["crn", os.readlink(ns["network"]), os.readlink(ns["ipc"]), "1"]
    rt.delete("member")
    rt.delete("pod", force=True)


# ---- bad input: clear error naming the field, nothing left behind ------------

def _edit_ns(spec):
    spec["linux"]["namespaces"].append({"type": "bogus"})


def _edit_root_relative_missing(spec):
    spec["root"]["path"] = "no-such-rootfs"


def _edit_root_missing(spec):
    del spec["root"]


def _edit_dest_dotdot(spec):
    spec["mounts"].append({"destination": "/tmp/../../etc", "type": "tmpfs", "source": "tmpfs"})


def _edit_dest_relative(spec):
    spec["mounts"].append({"destination": "tmp/x", "type": "tmpfs", "source": "tmpfs"})


def _edit_bad_cap(spec):
    spec["process"]["capabilities"]["bounding"].append("CAP_FLY")


def _edit_bad_rlimit(spec):
    spec["process"]["rlimits"] = [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]


def _edit_hostname_no_uts(spec):
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "uts"]


@pytest.mark.parametrize("edit,field", [
    (_edit_ns, "linux.namespaces[5].type"),
    (_edit_root_relative_missing, "root.path"),
    (_edit_root_missing, "root.path"),
    (_edit_dest_dotdot, "mounts[6].destination"),
    (_edit_dest_relative, "mounts[6].destination"),
    (_edit_bad_cap, "process.capabilities.bounding[3]"),
    (_edit_bad_rlimit, "process.rlimits[0].type"),
    (_edit_hostname_no_uts, "hostname"),
])
def test_invalid_config_names_field(rt, make_bundle, tmp_path, edit, field):
    before = _mounts()
    b = make_bundle(["true"], edit)
    with pytest.raises(InvalidArgument) as exc:
        rt.create("bad", b.path)
    assert f"config.json: {field}:" in str(exc.value)
    assert not (tmp_path / "state" / "bad").exists()
    assert _mounts() == before


def test_symlink_escape_is_refused(rt, make_bundle, tmp_path):
    def edit(spec):
        spec["mounts"].append({"destination": "/evil/x", "type": "tmpfs", "source": "tmpfs"})
    b = make_bundle(["true"], edit)
    (b.rootfs / "evil").symlink_to("../../../../../../../../tmp")
    with pytest.raises(InvalidArgument, match=r"mounts\[6\].destination: .* outside"):
        rt.create("esc", b.path)
    assert not (tmp_path / "state" / "esc").exists()


@pytest.mark.parametrize("bad_id", ["", "..", "a/b", "x y", "ü"])
def test_bad_id(rt, make_bundle, bad_id):
    with pytest.raises(InvalidArgument, match="^id: "):
        rt.create(bad_id, make_bundle(["true"]).path)


def test_unsupported_section_is_an_error(rt, make_bundle, tmp_path):
    def edit(spec):
        spec["process"]["terminal"] = True
    with pytest.raises(Unimplemented, match="process.terminal"):
        rt.create("u", make_bundle(["true"], edit).path)
    assert not (tmp_path / "state" / "u").exists()


def test_failure_in_child_leaves_nothing(rt, make_bundle, tmp_path):
    """A mount that fails in the child (missing bind source made to vanish
    after validation is hard to stage; a bad fs option is not)."""
    def edit(spec):
        spec["mounts"].append({"destination": "/bad", "type": "tmpfs", "source": "tmpfs",
                               "options": ["size=notasize"]})
    before = _mounts()
    with pytest.raises(FailedPrecondition, match=r"mounts: mount `/bad`: Invalid argument"):
        rt.create("childfail", make_bundle(["true"], edit).path)
    assert not (tmp_path / "state" / "childfail").exists()
    assert _mounts() == before


def test_delete_force_cleans_interrupted_create(rt, tmp_path):
    """A crash between mkdir and the first record leaves only the dir."""
    (tmp_path / "state" / "half").mkdir(parents=True)
    assert rt.list() == ["half"]
    with pytest.raises(NotFound):
        rt.delete("half")
    rt.delete("half", force=True)
    assert rt.list() == []


def test_oom_score_adj_below_ours_is_clamped(rt, make_bundle, caplog, tmp_path):
    """Without CAP_SYS_RESOURCE a lower score would fail the container:
    it runs with the runtime's own score and a warning instead."""
    from crio_native.linux.capabilities import CAP_SYS_RESOURCE, effective_caps
    if effective_caps() & (1 << CAP_SYS_RESOURCE):
        pytest.skip("this runtime has CAP_SYS_RESOURCE: nothing to clamp")
    ours = int(Path("/proc/self/oom_score_adj").read_text())

    def edit(spec):
        spec["process"]["oomScoreAdj"] = ours - 100 if ours > -900 else -1000
    out = tmp_path / "out"
    with open(out, "w") as f:
        rt.create("oom", make_bundle(["cat", "/proc/self/oom_score_adj"], edit).path,
                  stdio=(-1, f.fileno(), -1))
        rt.start("oom")
        assert rt.wait("oom", timeout=10) == 0
    assert int(out.read_text()) == ours
    assert "CAP_SYS_RESOURCE is missing" in caplog.text
    rt.delete("oom")
