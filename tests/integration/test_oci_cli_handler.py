"""The `oci` runtime handler (runtime/oci/) with real runc, and crun
where it runs (Debian's crun 1.8.1 refuses this host's hybrid cgroup layout;
it runs in the pure cgroup v2 VM): busybox containers under their own
crio-native-monitor, driven through the RuntimeHandler interface."""
from __future__ import annotations

import contextlib
import os
import re
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from crio_native.errors import DeadlineExceeded, FailedPrecondition, NotFound
from crio_native.monitor import AttachClient, process_alive, wait_exit
from crio_native.runtime.exec_output import EXEC_TIMED_OUT_MESSAGE, EXEC_TIMEOUT_EXIT_CODE
from crio_native.runtime.handler import Created, MonitorOptions
from crio_native.linux.cgroups import warm as cgroup_warm
from crio_native.linux.cgroups.warm import own_cgroup_procs
from crio_native.runtime.oci.cgroups import memory_cgroup_dir
from crio_native.runtime.oci.exec import exec_files_dir
from crio_native.runtime.oci.handler import OciCliHandler

from tests.integration.conftest import CRUN, RUNC
from tests.integration.test_monitor import joined, log_entries, wait_gone

# Also run inside the pure cgroup v2 VM by `make test`, where crun works too.
pytestmark = [pytest.mark.root, pytest.mark.vm]

RUNTIMES = [
    pytest.param("runc", id="runc"),
    pytest.param("crun", id="crun", marks=pytest.mark.requires_cgroup2),
]
EXEC_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


def exec_process(*args: str) -> dict:
    return {"args": list(args), "cwd": "/", "env": EXEC_ENV, "user": {"uid": 0, "gid": 0}}


@dataclass
class Container:
    id: str
    created: Created
    state_dir: Path
    log_path: Path
    cgroups_path: str

    def cgroup_file(self, *names: str) -> Path:
        """The first of `names` found in the container's cgroup dirs."""
        for name in names:
            for d in self.created.cgroup_dirs:
                if (d / name).exists():
                    return d / name
        raise AssertionError(f"none of {names} in {self.created.cgroup_dirs}")


class Harness:
    def __init__(self, handler: OciCliHandler, tmp: Path, make_bundle, cgroups_path):
        self.handler, self.tmp = handler, tmp
        self.make_bundle, self.cgroups_path = make_bundle, cgroups_path
        self.made: list[Container] = []
        self.count = 0

    def bundle(self, args: list[str], edit=None, cid: str = "") -> tuple[Path, str]:
        path = self.cgroups_path(f"crn-oci-{os.getpid()}-{cid}")

        def with_cgroup(spec):
            spec["linux"]["cgroupsPath"] = path
            if edit:
                edit(spec)
        return self.make_bundle(args, with_cgroup).path, path

    def state_dir(self, cid: str) -> Path:
        d = self.tmp / "monitors" / cid
        d.mkdir(parents=True)
        return d

    def create(self, args: list[str], edit=None, stdin: bool = False,
               terminal: bool = False) -> Container:
        self.count += 1
        cid = f"{self.handler.name}-{self.count}"
        bundle, cgroups_path = self.bundle(args, edit, cid)
        state_dir = self.state_dir(cid)
        log_path = state_dir / "ctr.log"
        created = self.handler.create(cid, bundle, MonitorOptions(state_dir, log_path,
                                                                  stdin=stdin,
                                                                  terminal=terminal))
        c = Container(cid, created, state_dir, log_path, cgroups_path)
        self.made.append(c)
        return c

    def finish(self, c: Container, timeout: float = 10.0):
        """The exit the monitor records; a monitor that records none in
        time is killed (so nothing leaks) and the test fails."""
        try:
            status = wait_exit(c.state_dir, timeout)
        except DeadlineExceeded:
            kill_monitor(c)
            raise
        wait_gone(c.created.monitor_pid)
        return status

    def cleanup(self) -> None:
        for c in self.made:
            self.handler.delete(c.id, force=True)
            try:
                wait_gone(c.created.monitor_pid)
            except AssertionError:
                kill_monitor(c)
                raise


def kill_monitor(c: Container) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(c.created.monitor_pid, signal.SIGKILL)
    wait_gone(c.created.monitor_pid)


@pytest.fixture(params=RUNTIMES)
def oci(request, tmp_path, make_bundle, cgroups_path):
    binary = RUNC if request.param == "runc" else CRUN
    if not os.path.exists(binary):
        pytest.skip(f"{binary} is not installed")
    handler = OciCliHandler(request.param, binary, tmp_path / "runtime-root")
    h = Harness(handler, tmp_path, make_bundle, cgroups_path)
    yield h
    h.cleanup()


def ppid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise AssertionError(f"no PPid for {pid}")


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains `text`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if text.encode() in cmdline and process_alive(int(entry)):
            found.append(int(entry))
    return found


# ---- create, start, exit -------------------------------------------------------

def test_container_is_the_monitors_child_and_its_exit_is_recorded(oci):
    c = oci.create(["sh", "-c", "echo hello; echo oops >&2; exit 5"])
    pid = c.created.pid
    assert ppid(pid) == c.created.monitor_pid
    assert (c.state_dir / "pid").read_text().strip() == str(pid)
    state = oci.handler.state(c.id)
    assert (state["status"], state["pid"], state["id"]) == ("created", pid, c.id)
    oci.handler.start(c.id)
    status = oci.finish(c)
    assert (status.exit_code, status.signal, status.oom_killed) == (5, 0, False)
    entries = log_entries(c.log_path)
    assert joined(entries, "stdout") == ["hello"]
    assert joined(entries, "stderr") == ["oops"]
    assert oci.handler.state(c.id)["status"] == "stopped"
    oci.handler.delete(c.id)
    with pytest.raises(NotFound):
        oci.handler.state(c.id)


def test_cgroup_dirs_hold_the_container_and_include_the_memory_group(oci):
    c = oci.create(["sleep", "30"])
    assert c.created.cgroup_dirs
    for d in c.created.cgroup_dirs:
        assert str(c.created.pid) in (d / "cgroup.procs").read_text().split()
    predicted = memory_cgroup_dir(c.cgroups_path, c.id)
    assert predicted in c.created.cgroup_dirs
    oci.handler.delete(c.id, force=True)
    oci.finish(c)
    assert not any(d.exists() for d in c.created.cgroup_dirs)


def test_the_monitor_keeps_our_own_cgroup_warm_during_the_create(oci):
    """The handler's monitors get --warm-cgroup with this process's own
    cgroup.procs (monitor/adopt.c), and stay in our cgroups."""
    c = oci.create(["sleep", "30"])
    argv = Path(f"/proc/{c.created.monitor_pid}/cmdline").read_bytes().split(b"\0")
    procs = own_cgroup_procs()
    if procs is None:
        assert b"--warm-cgroup" not in argv
    else:
        assert argv[argv.index(b"--warm-cgroup") + 1] == str(procs).encode()
    assert (Path(f"/proc/{c.created.monitor_pid}/cgroup").read_text()
            == Path("/proc/self/cgroup").read_text())
    oci.handler.delete(c.id, force=True)
    oci.finish(c)


def test_missing_executable_fails_create_and_leaves_nothing(oci):
    cid = f"{oci.handler.name}-missing"
    bundle, cgroups_path = oci.bundle(["no-such-binary"], cid=cid)
    state_dir = oci.state_dir(cid)
    with pytest.raises(FailedPrecondition, match=r'no-such-binary.*(executable file not found'
                                                 r'|No such file)') as info:
        oci.handler.create(cid, bundle, MonitorOptions(state_dir, state_dir / "ctr.log"))
    assert cid in str(info.value)
    with pytest.raises(NotFound):
        oci.handler.state(cid)
    assert not (oci.handler.runtime_root / cid).exists()
    assert not processes_mentioning(str(state_dir))
    assert not processes_mentioning(str(bundle))
    left = {p.name for p in state_dir.iterdir()} - {"ctr.log"}
    assert not left, f"the failed create left {left} in the state dir"
    memory_dir = memory_cgroup_dir(cgroups_path, cid)
    assert memory_dir is None or not memory_dir.exists()


def with_terminal(spec: dict) -> None:
    spec["process"]["terminal"] = True
    # busybox lets COLUMNS/LINES override the tty's size: none here
    spec["process"]["env"] = ["PATH=/bin", "TERM=xterm"]


def console_dirs() -> set[str]:
    return {n for n in os.listdir(tempfile.gettempdir()) if n.startswith("crn-tty-")}


def test_a_terminal_container_gets_the_runtimes_pty(oci):
    """The runtime makes the pty in the container and sends its master to
    the monitor's console socket: stdin, resize and ^D work through the
    monitor, the log has one stream, the socket's temp dir is gone."""
    before = console_dirs()
    c = oci.create(["sh", "-c", "read x; tty; stty size; read y; echo bye"], with_terminal,
                   stdin=True, terminal=True)
    assert console_dirs() == before
    assert ppid(c.created.pid) == c.created.monitor_pid
    oci.handler.start(c.id)
    with AttachClient.connect(c.state_dir, stdin=True) as client:
        client.resize(33, 77)
        client.write_stdin(b"go\n")
        got = b""
        while b"33 77" not in got:
            frame = client.recv(10)
            assert frame is not None, got
            got += frame.data
        assert re.search(rb"/dev/pts/\d+", got), got
        client.close_stdin()
    assert oci.finish(c).exit_code == 0
    entries = log_entries(c.log_path)
    assert {stream for _, stream, _, _ in entries} == {"stdout"}
    text = "".join(t for *_, t in entries)
    assert "33 77" in text and "bye" in text


def test_a_failed_terminal_create_leaves_nothing(oci):
    before = console_dirs()
    cid = f"{oci.handler.name}-tty-missing"
    bundle, _ = oci.bundle(["no-such-binary"], with_terminal, cid=cid)
    state_dir = oci.state_dir(cid)
    with pytest.raises(FailedPrecondition, match="no-such-binary"):
        oci.handler.create(cid, bundle, MonitorOptions(state_dir, state_dir / "ctr.log",
                                                       stdin=True, terminal=True))
    with pytest.raises(NotFound):
        oci.handler.state(cid)
    assert console_dirs() == before
    assert not processes_mentioning(str(state_dir))
    assert {p.name for p in state_dir.iterdir()} <= {"ctr.log"}


# ---- kill, delete, state --------------------------------------------------------

def test_kill_records_the_signal_and_a_second_kill_is_no_error(oci):
    c = oci.create(["sleep", "30"])
    oci.handler.start(c.id)
    oci.handler.kill(c.id, signal.SIGKILL)
    status = oci.finish(c)
    assert (status.exit_code, status.signal) == (137, 9)
    oci.handler.kill(c.id, signal.SIGKILL)                      # stopped: not an error
    oci.handler.kill(c.id, signal.SIGKILL, all_processes=True)


def test_kill_all_reaches_every_process(oci):
    c = oci.create(["sh", "-c", "sleep 30 & sleep 30 & echo started; wait"])
    oci.handler.start(c.id)
    procs = c.cgroup_file("cgroup.procs")
    deadline = time.monotonic() + 5
    while len(procs.read_text().split()) < 3:
        assert time.monotonic() < deadline, "the container's sleeps did not start"
        time.sleep(0.01)
    pids = [int(p) for p in procs.read_text().split()]
    oci.handler.kill(c.id, signal.SIGKILL, all_processes=True)
    status = oci.finish(c)
    assert status.signal == 9
    for pid in pids:
        wait_gone(pid)


def test_unknown_container(oci):
    with pytest.raises(NotFound, match="no-such-ctr"):
        oci.handler.state("no-such-ctr")
    oci.handler.delete("no-such-ctr")
    oci.handler.delete("no-such-ctr", force=True)
    oci.handler.kill("no-such-ctr", signal.SIGKILL)           # gone: not an error
    with pytest.raises(NotFound):
        oci.handler.start("no-such-ctr")


def test_delete_without_force_refuses_a_running_container(oci):
    c = oci.create(["sleep", "30"])
    oci.handler.start(c.id)
    with pytest.raises(FailedPrecondition, match=c.id):
        oci.handler.delete(c.id)
    assert oci.handler.state(c.id)["status"] == "running"
    oci.handler.delete(c.id, force=True)
    assert oci.finish(c).signal == 9


# ---- exec_sync ------------------------------------------------------------------

def test_exec_sync_output_and_exit_code(oci):
    c = oci.create(["sleep", "30"])
    oci.handler.start(c.id)
    r = oci.handler.exec_sync(c.id, exec_process("sh", "-c", "echo out; echo err >&2; exit 7"),
                              timeout=10)
    assert (r.exit_code, r.stdout, r.stderr, r.timed_out) == (7, b"out\n", b"err\n", False)
    r = oci.handler.exec_sync(c.id, exec_process("sh", "-c", "kill -9 $$"), timeout=10)
    assert r.exit_code == 128 + 9
    r = oci.handler.exec_sync(c.id, exec_process("true"), timeout=None)
    assert (r.exit_code, r.stdout, r.stderr) == (0, b"", b"")
    assert not exec_files_left(c.id)


def test_exec_sync_holds_the_shared_attach_warmer_while_runc_runs(oci):
    """runc exec writes cgroup.procs to join the container's groups: on a
    v1 host the process's warmer writes our pid to our own group while it
    starts (linux/cgroups/warm.py), and stops once runc is done."""
    c = oci.create(["sleep", "30"])
    oci.handler.start(c.id)
    warmer = cgroup_warm.shared()
    before, groups = warmer.writes, Path("/proc/self/cgroup").read_text()
    r = oci.handler.exec_sync(c.id, exec_process("true"), timeout=10)
    assert r.exit_code == 0
    if warmer._target() is None:          # pure v2 or the write refused: off
        assert warmer.writes == before
    else:
        assert warmer.writes > before
    assert Path("/proc/self/cgroup").read_text() == groups      # the writes moved nothing
    deadline = time.monotonic() + 5
    while [t for t in threading.enumerate() if t.name == "cgroup-warmer"]:
        assert time.monotonic() < deadline, "the warmer still runs after the exec"
        time.sleep(0.005)
    oci.handler.delete(c.id, force=True)
    oci.finish(c)


def test_exec_sync_timeout_kills_the_process(oci):
    c = oci.create(["sleep", "30"])
    oci.handler.start(c.id)
    began = time.monotonic()
    r = oci.handler.exec_sync(c.id, exec_process("sleep", "10"), timeout=1)
    took = time.monotonic() - began
    assert r.timed_out and took < 5
    assert (r.exit_code, r.stderr) == (EXEC_TIMEOUT_EXIT_CODE, EXEC_TIMED_OUT_MESSAGE)
    procs = c.cgroup_file("cgroup.procs")
    deadline = time.monotonic() + 5
    while procs.read_text().split() != [str(c.created.pid)]:
        assert time.monotonic() < deadline, f"left in the container: {procs.read_text()}"
        time.sleep(0.01)
    runtime_execs = set(processes_mentioning(" exec --process "))
    assert not runtime_execs & set(processes_mentioning(str(oci.handler.runtime_root)))
    assert not exec_files_left(c.id)


def exec_files_left(container_id: str) -> list[Path]:
    """The per-exec temp dirs of the container still there (exec.py names
    them after its first 12 characters)."""
    dirs = {tempfile.gettempdir(), exec_files_dir() or tempfile.gettempdir()}
    return [p for d in dirs for p in Path(d).glob(f"crn-exec-{container_id[:12]}-*")]


def our_children_in_pid_namespace_of(pid: int) -> list[int]:
    """Children of this (subreaper) process, zombies included, that live in
    the pid namespace of `pid`."""
    ns = os.readlink(f"/proc/{pid}/ns/pid")
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            if ppid(int(entry)) == os.getpid() and os.readlink(f"/proc/{entry}/ns/pid") == ns:
                found.append(int(entry))
    return found


def test_exec_sync_of_a_missing_executable_is_an_error(oci):
    c = oci.create(["sleep", "30"])
    oci.handler.start(c.id)
    with pytest.raises(FailedPrecondition, match="no-such-binary"):
        oci.handler.exec_sync(c.id, exec_process("no-such-binary"), timeout=10)
    # crun 1.8.1 leaves its helper in the container's pid namespace (the one
    # that failed to exec) to the runtime's subreaper: this suite, as a daemon
    # can be.  Unreaped, its zombie pins the namespace and the killed init
    # never finishes exiting, so the monitor would record no exit.
    deadline = time.monotonic() + 5
    while left := our_children_in_pid_namespace_of(c.created.pid):
        assert time.monotonic() < deadline, f"the failed exec left {left} unreaped"
        time.sleep(0.01)
    oci.handler.delete(c.id, force=True)
    assert oci.finish(c).signal == 9


def test_exec_sync_in_an_unknown_container(oci):
    with pytest.raises(NotFound):
        oci.handler.exec_sync("no-such-ctr", exec_process("true"), timeout=10)


# ---- pause, update, features ---------------------------------------------------------

def test_pause_and_resume(oci):
    c = oci.create(["sleep", "30"])
    oci.handler.start(c.id)
    oci.handler.pause(c.id)
    assert oci.handler.state(c.id)["status"] == "paused"
    oci.handler.resume(c.id)
    assert oci.handler.state(c.id)["status"] == "running"


def test_update_pids_and_memory_limits(oci):
    def limits(spec):
        spec["linux"]["resources"] = {"pids": {"limit": 100},
                                      "memory": {"limit": 128 << 20}}
    c = oci.create(["sleep", "30"], limits)
    oci.handler.start(c.id)
    pids_max = c.cgroup_file("pids.max")
    memory_max = c.cgroup_file("memory.limit_in_bytes", "memory.max")
    assert pids_max.read_text().strip() == "100"
    assert memory_max.read_text().strip() == str(128 << 20)
    oci.handler.update(c.id, {"pids": {"limit": 77}, "memory": {"limit": 64 << 20}})
    assert pids_max.read_text().strip() == "77"
    assert memory_max.read_text().strip() == str(64 << 20)


def test_update_of_an_unknown_container(oci):
    with pytest.raises(NotFound):
        oci.handler.update("no-such-ctr", {"pids": {"limit": 10}})


def test_oom_kill_is_recorded(oci):
    def limit(spec):
        spec["linux"]["resources"] = {"memory": {"limit": 32 << 20}}
    c = oci.create(["sh", "-c", "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived"],
                   limit)
    oci.handler.start(c.id)
    status = oci.finish(c, timeout=30)
    assert status.oom_killed


def test_features_are_probed_once(oci):
    first = oci.handler.features()
    assert oci.handler.features() is first
    doc = first.extra.get("oci_features")
    if oci.handler.name == "runc":
        assert doc is not None      # runc has had `features` since 1.1
    if doc is None:                 # crun before 1.9: nothing is promised
        assert not (first.recursive_read_only_mounts or first.user_namespaces)
        return
    major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    assert first.recursive_read_only_mounts == ("rro" in doc.get("mountOptions", [])
                                                and (major, minor) >= (5, 12))
    idmap = doc.get("linux", {}).get("mountExtensions", {}).get("idmap", {}).get("enabled")
    assert first.user_namespaces == bool(idmap and "user" in doc["linux"]["namespaces"])
