"""`crio-native-runtime` driven like runc: create/start/state/kill/delete/run
with --root, --pid-file, exit codes and errors on stderr."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.root
CLI = [sys.executable, "-m", "crio_native.runtime.cli"]


@pytest.fixture
def cli(tmp_path):
    root = tmp_path / "cli-root"

    def run(*args, check=True, pre=(), detached=False):
        # A created container keeps the CLI's stdio (as with runc): give it
        # /dev/null, or the pipes would stay open for as long as it lives.
        out = subprocess.DEVNULL if detached else subprocess.PIPE
        p = subprocess.run(CLI + [*map(str, pre), "--root", str(root), *map(str, args)],
                           stdout=out, stderr=out, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        if check:
            assert p.returncode == 0, p.stderr
        return p
    yield run
    for cid in (root.iterdir() if root.exists() else []):
        run("delete", "--force", cid.name, check=False)


def test_run_exit_code_and_output(cli, make_bundle):
    b = make_bundle(["sh", "-c", "echo out; exit 4"])
    p = cli("run", "--bundle", b.path, "r1", check=False)
    assert (p.returncode, p.stdout) == (4, "out\n")


def test_create_start_state_kill_delete(cli, make_bundle, tmp_path):
    b = make_bundle(["sleep", "60"])
    pid_file = tmp_path / "pid"
    cli("create", "--bundle", b.path, "--pid-file", pid_file, "c1", detached=True)
    state = json.loads(cli("state", "c1").stdout)
    assert state["status"] == "created"
    assert state["pid"] == int(pid_file.read_text())
    cli("start", "c1")
    assert json.loads(cli("state", "c1").stdout)["status"] == "running"
    assert "c1" in cli("list").stdout
    cli("kill", "c1", "KILL")
    deadline = time.monotonic() + 5
    while json.loads(cli("state", "c1").stdout)["status"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    cli("delete", "c1")
    assert cli("state", "c1", check=False).returncode == 1


def test_errors_on_stderr(cli, make_bundle, tmp_path):
    p = cli("run", "--bundle", make_bundle(["nope"]).path, "e1", check=False)
    assert p.returncode == 1
    assert 'exec: "nope": executable file not found in $PATH' in p.stderr
    log = tmp_path / "log.json"
    p = cli("kill", "missing", "TERM", check=False, pre=["--log", log, "--log-format", "json"])
    assert p.returncode == 1
    assert "does not exist" in json.loads(log.read_text())["msg"]


def test_features(cli):
    doc = json.loads(cli("features").stdout)
    assert {"ociVersionMin", "ociVersionMax", "mountOptions", "linux"} <= set(doc)
    assert "user" in doc["linux"]["namespaces"] and doc["linux"]["seccomp"]["enabled"]
    assert "SCMP_ARCH_X86_64" in doc["linux"]["seccomp"]["archs"]
    assert "rbind" in doc["mountOptions"]


def test_pause_resume_via_cli(cli, make_bundle):
    def edit(spec):
        spec["linux"]["cgroupsPath"] = f"crn-cli-pause-{os.getpid()}"
    cli("create", "--bundle", make_bundle(["sleep", "60"], edit).path, "pz", detached=True)
    cli("start", "pz")
    cli("pause", "pz")
    assert json.loads(cli("state", "pz").stdout)["status"] == "paused"
    cli("resume", "pz")
    assert json.loads(cli("state", "pz").stdout)["status"] == "running"
    cli("delete", "--force", "pz")


def test_exec_via_cli(cli, make_bundle, tmp_path):
    cli("create", "--bundle", make_bundle(["sleep", "60"]).path, "ex", detached=True)
    cli("start", "ex")
    p = cli("exec", "--cwd", "/tmp", "-e", "X=1", "-u", "1000:1000", "ex",
            "sh", "-c", "pwd; echo $X; id -u; exit 3", check=False)
    assert (p.returncode, p.stdout) == (3, "/tmp\n1\n1000\n")
    process = tmp_path / "process.json"
    process.write_text(json.dumps({"args": ["hostname"], "cwd": "/", "env": ["PATH=/bin"],
                                   "user": {"uid": 0, "gid": 0}}))
    assert cli("exec", "--process", process, "ex").stdout == "crn\n"
    cli("delete", "--force", "ex")
