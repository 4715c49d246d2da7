"""runtime/oci/exec.py: ExecSync holds the process's attach warmer
(linux/cgroups/warm.py) while `<runtime> exec` runs, so runc's own
cgroup.procs writes find the rwsem warm, and lets go when the runtime
exits, fails to start, or the window ends.  A shell script stands in for
runc and a plain file for cgroup.procs."""
from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest

from crio_native.errors import CrioNativeError
from crio_native.linux.cgroups.warm import AttachWarmer
from crio_native.runtime.oci import exec as oci_exec
from crio_native.runtime.oci.command import RuntimeCommand

# Waits (up to 5 s) for the warmer's first write to show, then acts as
# `runc exec --pid-file P`: writes its pid there, prints, exits.
FAKE_RUNTIME = """#!/bin/sh
for i in $(seq "${CRN_TEST_WARM_TRIES:-500}"); do [ -s "$CRN_TEST_WARM_FILE" ] && break; sleep 0.01; done
[ -s "$CRN_TEST_WARM_FILE" ] || { echo "not warmed" >&2; exit 3; }
while [ "$#" -gt 0 ]; do
  [ "$1" = "--pid-file" ] && echo $$ > "$2"
  shift
done
echo warmed
"""


def warmer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "cgroup-warmer"]


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.002)


@pytest.fixture
def runtime(tmp_path) -> RuntimeCommand:
    script = tmp_path / "fake-runc"
    script.write_text(FAKE_RUNTIME)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return RuntimeCommand("fake", str(script), tmp_path / "root")


@pytest.fixture
def warm_file(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "cgroup.procs"
    path.write_text("")
    monkeypatch.setenv("CRN_TEST_WARM_FILE", str(path))
    return path


def test_exec_sync_warms_while_the_runtime_runs_and_lets_go_after(runtime, warm_file):
    warmer = AttachWarmer(warm_file)
    result = oci_exec.exec_sync(runtime, "c1", {"args": ["true"]}, 10.0, warmer=warmer)
    assert (result.exit_code, result.stdout) == (0, b"warmed\n"), result.stderr
    assert warm_file.read_text().startswith(str(os.getpid()))
    wait_for(lambda: not warmer_threads())


def test_without_a_warmer_the_runtime_sees_no_write(runtime, warm_file, monkeypatch):
    monkeypatch.setenv("CRN_TEST_WARM_TRIES", "10")
    warmer = AttachWarmer(None, probe=False)      # off: as on a pure v2 host
    with pytest.raises(CrioNativeError):          # the stand-in refuses: never started
        oci_exec.exec_sync(runtime, "c1", {"args": ["true"]}, 10.0, warmer=warmer)
    assert warm_file.read_text() == ""


def test_a_missing_runtime_releases_the_warmer(tmp_path, warm_file):
    warmer = AttachWarmer(warm_file)
    missing = RuntimeCommand("fake", str(tmp_path / "no-such-runc"), tmp_path / "root")
    with pytest.raises(CrioNativeError):
        oci_exec.exec_sync(missing, "c1", {"args": ["true"]}, 10.0, warmer=warmer)
    wait_for(lambda: not warmer_threads())


def test_exec_sync_uses_the_shared_warmer_by_default(runtime, warm_file, monkeypatch):
    from crio_native.linux.cgroups import warm
    shared = AttachWarmer(warm_file)
    monkeypatch.setattr(warm, "_shared", shared)
    result = oci_exec.exec_sync(runtime, "c1", {"args": ["true"]}, 10.0)
    assert result.exit_code == 0 and shared.writes >= 1
