"""Suite-wide fixtures: markers for what this host lacks, and the session leak
check that fails the run if anything the tests made was left behind (mounts,
network namespaces, cgroups, network links, processes)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.hostinfo import host_lacks
from tests.processes import live_descendants


def pytest_collection_modifyitems(config, items):
    for item in items:
        for marker in item.iter_markers():
            reason = host_lacks(marker.name)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))
                break


# ---- leak check -------------------------------------------------------------

def _mounts() -> set[tuple[str, str, str]]:
    out = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        fstype, source = right.split()[:2]
        out.add((fields[4], fstype, source))
    return out


def own_cgroup_dirs() -> list[str]:
    """This process's cgroup directory in every mounted hierarchy (as the
    runtime itself finds them).  Tests may only create cgroups below these;
    the host makes others of its own at any time, so only ours are checked."""
    from crio_native.linux import cgroups

    own = cgroups.own_cgroups()
    dirs = (h.dir_of(h.own_path(own), mount_root) for h, mount_root in cgroups.host_hierarchies())
    return [str(d) for d in dirs if d is not None]


# ---- a cgroup root the runtimes can delegate from ------------------------------

CGROUP_ROOT_ENV = "CRIO_NATIVE_CGROUP_ROOT"
RUNNER_LEAF = "crn-test-runner"
# Set once the runner leaf exists: (the cgroup root's dir, the leaf's dir).
_DELEGATED: dict[str, Path] = {}


def _populated_v2_own_cgroup() -> tuple[str, Path] | None:
    """(path, dir) of this process's cgroup on a pure v2 host when it is a
    non-root cgroup that holds processes, else None."""
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    if len(lines) != 1 or not lines[0].startswith("0::"):
        return None
    path, dirs = lines[0][3:], own_cgroup_dirs()
    if path == "/" or not dirs:
        return None
    d = Path(dirs[0])  # every mount of the one hierarchy shows the same group
    return (path, d) if (d / "cgroup.procs").read_text().split() else None


def _move_processes(src: Path, dst: Path) -> None:
    """Move every process in `src` into `dst`; repeat while new ones appear."""
    for _ in range(20):
        pids = (src / "cgroup.procs").read_text().split()
        if not pids:
            return
        for pid in pids:
            try:
                (dst / "cgroup.procs").write_text(pid)
            except ProcessLookupError:
                pass  # exited meanwhile
    raise RuntimeError(f"processes keep appearing in {src}: cannot empty it")


@pytest.fixture(scope="session", autouse=True)
def cgroup_root_for_tests():
    """On a pure v2 host whose own cgroup is a populated non-root cgroup
    (systemd services, the device machine), cgroup v2 cannot enable
    controllers for child groups.  So this run's processes (they are all its
    own command tree there) move into a leaf <own>/crn-test-runner, and
    <own>, now empty, becomes the cgroup root of every runtime the tests
    start: containers go into siblings of the leaf.  The leaf stays; the
    leak check ignores it.  Elsewhere (hybrid hosts, the VM's root cgroup,
    a root already given in the environment) nothing changes."""
    found = None
    if os.geteuid() == 0 and CGROUP_ROOT_ENV not in os.environ:
        found = _populated_v2_own_cgroup()
    if found is not None:
        path, own = found
        leaf = own / RUNNER_LEAF
        leaf.mkdir(exist_ok=True)
        _move_processes(own, leaf)
        os.environ[CGROUP_ROOT_ENV] = path
        _DELEGATED.update(root=own, leaf=leaf)
    yield


def _cgroups() -> set[str]:
    tops = own_cgroup_dirs()
    if _DELEGATED:  # our own cgroup is now the runner leaf: watch its parent
        tops = [str(_DELEGATED["root"]) if t == str(_DELEGATED["leaf"]) else t for t in tops]
    out = set()
    for top in tops:
        for dirpath, _dirs, _files in os.walk(top):
            out.add(dirpath)
    if _DELEGATED:
        out.discard(str(_DELEGATED["leaf"]))
    return out


def _netns() -> set[str]:
    out = set()
    for d in ("/run/netns",):
        if os.path.isdir(d):
            out.update(os.path.join(d, n) for n in os.listdir(d))
    return out


def _links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def _descendants() -> set[str]:
    """Live processes below this one, after reaping the zombies among our
    own children."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
    return live_descendants()


SNAPSHOTS = {"mounts": _mounts, "cgroups": _cgroups, "netns": _netns, "links": _links,
             "processes": _descendants}


@pytest.fixture(scope="session", autouse=True)
def no_leaks_after_suite(cgroup_root_for_tests):
    """Fails the run if the suite leaves mounts, netns pins, cgroups, links or
    processes behind.  Later features rely on this check.  The snapshot is
    taken after cgroup_root_for_tests has moved this run into its leaf."""
    if os.geteuid() == 0:
        from crio_native._native import proc

        proc.set_child_subreaper(True)
    before = {name: snap() for name, snap in SNAPSHOTS.items()}
    yield
    leaks = {}
    for name, snap in SNAPSHOTS.items():
        new = snap() - before[name]
        if new:
            leaks[name] = sorted(map(str, new))
    assert not leaks, f"the test suite leaked: {leaks}"
