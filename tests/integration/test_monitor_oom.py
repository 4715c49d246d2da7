"""OOM recording: the monitor reports oom=1 when the oom_kill count of the
container's memory cgroup grew.  This host is hybrid, so the cgroup here is
a v1 memory cgroup (memory.oom_control); the monitor reads cgroup v2's
memory.events the same way."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.integration.test_monitor import BB, monitors, sh  # noqa: F401

# Also run inside the pure cgroup v2 VM by `make test` (memory.events there).
pytestmark = pytest.mark.vm


def own_memory_cgroup() -> Path | None:
    """This process's v1 memory cgroup directory, or on a unified host the v2
    directory where the tests make groups, with memory handed to its children."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            d = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            if (d / "memory.oom_control").exists():
                return d
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            # Where the tests may make groups: the configured root (see
            # tests/conftest.py) or this process's own cgroup.
            root = os.environ.get("CRIO_NATIVE_CGROUP_ROOT") or line[3:]
            d = Path("/sys/fs/cgroup") / root.lstrip("/")
            subtree = d / "cgroup.subtree_control"
            if not subtree.exists() or "memory" not in (d / "cgroup.controllers").read_text().split():
                return None
            if "memory" not in subtree.read_text().split():
                try:
                    subtree.write_text("+memory")
                except OSError:
                    return None  # a non-root cgroup that holds processes
            return d
    return None


@pytest.fixture
def memory_cgroup():
    parent = own_memory_cgroup()
    if parent is None:
        pytest.skip("no memory cgroup controller for children of this process's cgroup "
                    "(v1 memory, or v2 with memory in cgroup.subtree_control)")
    cg = parent / f"crn-monitor-oom-{os.getpid()}"
    cg.mkdir()
    try:
        limit = "memory.limit_in_bytes" if (cg / "memory.limit_in_bytes").exists() else "memory.max"
        (cg / limit).write_text(str(32 << 20))
        yield cg
    finally:
        # the hog's helpers (head, tr) may take a moment to die after it
        deadline = time.monotonic() + 10
        while (cg / "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.02)
        cg.rmdir()


@pytest.mark.root
def test_oom_kill_recorded(monitors, memory_cgroup):
    procs = memory_cgroup / "cgroup.procs"
    # join the limited cgroup, then hold ~100 MB in a shell variable
    hog = f"echo $$ > {procs}; x=$({BB} head -c 100000000 /dev/zero | {BB} tr '\\0' a); echo survived"
    mon = monitors.launch(sh(hog), cgroup_path=str(memory_cgroup))
    status = monitors.finish(mon, timeout=30)
    assert status.oom_killed
    assert (status.exit_code, status.signal) == (137, 9)


@pytest.mark.root
def test_no_oom_when_within_limit(monitors, memory_cgroup):
    procs = memory_cgroup / "cgroup.procs"
    mon = monitors.launch(sh(f"echo $$ > {procs}; echo fine"), cgroup_path=str(memory_cgroup))
    status = monitors.finish(mon)
    assert not status.oom_killed and status.exit_code == 0
