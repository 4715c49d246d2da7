"""OCI hooks: createRuntime/createContainer while the child waits before
pivot_root, poststart after start, poststop after delete, each with the
state JSON on stdin; failures and timeouts fail create and leave nothing."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from crio_native.errors import FailedPrecondition

pytestmark = pytest.mark.root

RECORDER = """#!/bin/sh
# $1: kind; appends "kind status pid root" to $2, root being "inside" once
# the process has pivoted into the rootfs (which holds /crn-marker)
state=$(cat)
status=$(echo "$state" | sed 's/.*"status": *"\\([a-z]*\\)".*/\\1/')
pid=$(echo "$state" | sed 's/.*"pid": *\\([0-9]*\\).*/\\1/')
root=-
if [ "$pid" != 0 ]; then
    if [ -e /proc/$pid/root/crn-marker ]; then root=inside; else root=host; fi
fi
echo "$1 $status $pid $root" >> "$2"
"""


@pytest.fixture
def recorder(tmp_path):
    path = tmp_path / "record.sh"
    path.write_text(RECORDER)
    path.chmod(0o755)
    return path


def _hook(script: Path, *args: str, **extra):
    return {"path": str(script), "args": [script.name, *args], **extra}


def test_hooks_run_in_order_with_state(rt, make_bundle, recorder, tmp_path):
    log_file = tmp_path / "calls"

    def edit(spec):
        spec["hooks"] = {k: [_hook(recorder, k, str(log_file))]
                         for k in ("createRuntime", "createContainer", "poststart", "poststop")}
    b = make_bundle(["sleep", "60"], edit)
    (b.rootfs / "crn-marker").touch()
    created = rt.create("h1", b.path)
    pid = created["pid"]
    calls = log_file.read_text().splitlines()
    # before pivot_root the child still has the host's root
    assert calls == [f"createRuntime created {pid} host", f"createContainer created {pid} host"]
    rt.start("h1")
    assert log_file.read_text().splitlines()[2] == f"poststart running {pid} inside"
    rt.delete("h1", force=True)
    assert log_file.read_text().splitlines()[3] == "poststop stopped 0 -"


@pytest.mark.parametrize("hook,match", [
    ({"path": "/bin/false"}, r"createRuntime hook #0 \(/bin/false\): exit status 1"),
    ({"path": "/bin/sleep", "args": ["sleep", "10"], "timeout": 1},
     r"createRuntime hook #0 \(/bin/sleep\): timed out after 1s"),
    ({"path": "/no/such/hook"}, r"createRuntime hook #0 \(/no/such/hook\): No such file"),
])
def test_failing_create_hook_leaves_nothing(rt, make_bundle, tmp_path, hook, match):
    def edit(spec):
        spec["hooks"] = {"createRuntime": [hook]}
    before = set(os.listdir("/proc"))
    with pytest.raises(FailedPrecondition, match=match):
        rt.create("bad", make_bundle(["true"], edit).path)
    assert not (tmp_path / "state" / "bad").exists()
    leftover = {p for p in set(os.listdir("/proc")) - before if p.isdigit()
                and Path(f"/proc/{p}/stat").exists()
                and Path(f"/proc/{p}/stat").read_text().split()[3] == str(os.getpid())}
    assert not leftover


def test_poststart_failure_is_a_warning(rt, make_bundle, caplog):
    def edit(spec):
        spec["hooks"] = {"poststart": [{"path": "/bin/false"}]}
    rt.create("h2", make_bundle(["sleep", "60"], edit).path)
    with caplog.at_level(logging.WARNING):
        rt.start("h2")
    assert "poststart hook #0 (/bin/false): exit status 1" in caplog.text
    assert rt.state("h2")["status"] == "running"
    rt.delete("h2", force=True)


def test_start_container_hooks_run_inside_after_start(rt, make_bundle, tmp_path):
    """startContainer hooks run after `start`, before the program, by the
    container process itself: path resolved in the container, its user and
    cwd, the state (host pid, status "created") on stdin, args and env."""
    def edit(spec):
        spec["root"]["readonly"] = False
        spec["process"]["user"] = {"uid": 1000, "gid": 1000}
        spec["process"]["cwd"] = "/tmp"
        spec["hooks"] = {"startContainer": [
            {"path": "/bin/sh", "args": ["sh", "-c", "cat > state.json; id -u >> log; "
                                         "pwd >> log; echo $HOOK_ENV >> log"],
             "env": ["HOOK_ENV=from-hook"], "timeout": 10},
            {"path": "/bin/sh", "args": ["sh", "-c", "echo second >> log"]}]}
    b = make_bundle(["sh", "-c", "echo program >> /tmp/log; sleep 60"], edit)
    (b.rootfs / "tmp").chmod(0o1777)
    created = rt.create("sh1", b.path)
    assert not (b.rootfs / "tmp" / "log").exists()     # nothing ran at create
    rt.start("sh1")
    _wait_for(lambda: (b.rootfs / "tmp" / "log").exists()
              and "program" in (b.rootfs / "tmp" / "log").read_text())
    assert (b.rootfs / "tmp" / "log").read_text().splitlines() == [
        "1000", "/tmp", "from-hook", "second", "program"]
    doc = json.loads((b.rootfs / "tmp" / "state.json").read_text())
    assert doc == {"ociVersion": "1.2.0", "id": "sh1", "status": "created",
                   "pid": created["pid"], "bundle": str(b.path), "annotations": {}}
    assert rt.state("sh1")["status"] == "running"
    assert not (tmp_path / "state" / "sh1" / "start.result").exists()
    rt.delete("sh1", force=True)


def _wait_for(cond, timeout=5.0):
    import time
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.mark.parametrize("hook,match", [
    ({"path": "/bin/false"}, r"startContainer hook #1 \(/bin/false\): exit status 1"),
    ({"path": "/bin/sleep", "args": ["sleep", "10"], "timeout": 1},
     r"startContainer hook #1 \(/bin/sleep\): timed out after 1s"),
    # resolved in the container, where the host's hook does not exist
    ({"path": "/usr/bin/python3"},
     r"startContainer hook #1 \(/usr/bin/python3\): No such file or directory"),
])
def test_failing_start_container_hook_fails_start(rt, make_bundle, tmp_path, hook, match):
    """start fails naming the hook; the program never runs; the process
    exits 1 (as runc's init does), with the failure on its stderr."""
    def edit(spec):
        spec["hooks"] = {"startContainer": [{"path": "/bin/true"}, hook]}
    err = tmp_path / "err"
    out = tmp_path / "out"
    with open(out, "w") as o, open(err, "w") as e:
        rt.create("sh2", make_bundle(["echo", "program ran"], edit).path,
                  stdio=(-1, o.fileno(), e.fileno()))
    with pytest.raises(FailedPrecondition, match=match):
        rt.start("sh2")
    assert rt.wait("sh2", timeout=5) == 1
    assert rt.state("sh2")["status"] == "stopped"
    assert out.read_text() == ""
    assert "startContainer hook #1" in err.read_text()
    rt.delete("sh2")
    assert not (tmp_path / "state" / "sh2").exists()


def test_state_json_matches_runc_shape(rt, make_bundle, tmp_path):
    out = tmp_path / "state.json"
    script = tmp_path / "dump.sh"
    script.write_text(f"#!/bin/sh\ncat > {out}\n")
    script.chmod(0o755)

    def edit(spec):
        spec["annotations"] = {"a": "b"}
        spec["hooks"] = {"createRuntime": [{"path": str(script)}]}
    b = make_bundle(["true"], edit)
    rt.create("h4", b.path)
    doc = json.loads(out.read_text())
    assert doc == {"ociVersion": "1.2.0", "id": "h4", "status": "created",
                   "pid": rt.state("h4")["pid"], "bundle": str(b.path), "annotations": {"a": "b"}}
    rt.delete("h4", force=True)
