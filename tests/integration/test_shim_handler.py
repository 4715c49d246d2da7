"""The `vm` runtime handler (runtime/shim/) against a real shim v2 binary.

Kata's containerd-shim-kata-v2 cannot be installed here, so the shim is
Debian's containerd-shim-runc-v2 (containerd 1.6.20), which serves the same
task API over ttrpc and is started the same way: what is checked is our
side of the protocol (start, address, ttrpc calls, FIFO stdio through the
monitor, exits, reconnect, cleanup), not kata's VM."""
from __future__ import annotations

import contextlib
import os
import select
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from crio_native.config import Config
from crio_native.config.sections import RuntimeHandlerConfig
from crio_native.errors import DeadlineExceeded, FailedPrecondition, NotFound
from crio_native.monitor import AttachClient, process_alive, wait_exit
from crio_native.runtime.handler import Created, MonitorOptions
from crio_native.runtime.registry import make_handler
from crio_native.runtime.exec_output import EXEC_TIMED_OUT_MESSAGE, EXEC_TIMEOUT_EXIT_CODE
from crio_native.runtime.shim.handler import VmShimHandler
from crio_native.runtime.shim.process import ShimFiles
from crio_native.stats import read_cgroup

from tests.integration.test_monitor import joined, log_entries, wait_gone
from tests.integration.test_monitor_attach import read_until, rest
from tests.integration.test_oci_cli_handler import exec_process

pytestmark = [pytest.mark.root]

SHIM = "/usr/bin/containerd-shim-runc-v2"
@dataclass
class Container:
    id: str
    created: Created
    state_dir: Path
    log_path: Path
    shim_pid: int | None
    address: str | None


class Harness:
    def __init__(self, handler: VmShimHandler, tmp: Path, make_bundle, cgroups_path):
        self.handler, self.tmp = handler, tmp
        self.make_bundle, self.cgroups_path = make_bundle, cgroups_path
        self.made: list[Container] = []

    def create(self, args: list[str], annotations: dict[str, str] | None = None, *,
               stdin: bool = False, terminal: bool = False) -> Container:
        cid = f"vm-{uuid.uuid4().hex[:12]}"
        path = self.cgroups_path(f"crn-vm-{cid}")

        def with_cgroup(spec):
            spec["linux"]["cgroupsPath"] = path
            spec["annotations"] = annotations or {}
            if terminal:
                spec["process"]["terminal"] = True
                spec["process"]["env"] = ["PATH=/bin", "TERM=xterm"]
        bundle = self.make_bundle(args, with_cgroup).path
        state_dir = self.tmp / "monitors" / cid
        state_dir.mkdir(parents=True)
        log_path = state_dir / "ctr.log"
        created = self.handler.create(cid, bundle, MonitorOptions(
            state_dir, log_path, stdin=stdin, terminal=terminal))
        files = ShimFiles(self.handler.runtime_root, cid)
        c = Container(cid, created, state_dir, log_path, files.shim_pid(), files.address())
        self.made.append(c)
        return c

    def finish(self, c: Container, timeout: float = 10.0):
        status = wait_exit(c.state_dir, timeout)
        wait_gone(c.created.monitor_pid)
        return status

    def cleanup(self) -> None:
        for c in self.made:
            self.handler.delete(c.id, force=True)
            with contextlib.suppress(ProcessLookupError):
                if process_alive(c.created.monitor_pid):
                    wait_gone(c.created.monitor_pid)


@pytest.fixture
def vm(tmp_path, make_bundle, cgroups_path):
    if not os.access(SHIM, os.X_OK):
        pytest.skip(f"{SHIM} is not installed (Debian's containerd package)")
    handler = VmShimHandler("kata", SHIM, tmp_path / "runtime-root",
                            address=str(tmp_path / "crio-native.sock"))
    h = Harness(handler, tmp_path, make_bundle, cgroups_path)
    yield h
    h.cleanup()


def assert_shim_gone(c: Container, handler: VmShimHandler) -> None:
    assert c.shim_pid is not None and c.address
    assert not process_alive(c.shim_pid), f"shim {c.shim_pid} still runs"
    assert not os.path.exists(c.address.removeprefix("unix://")), "shim socket left"
    assert not (handler.runtime_root / c.id).exists()


def test_create_start_exit_code_and_log(vm):
    c = vm.create(["sh", "-c", "echo hello; echo oops >&2; exit 3"])
    assert c.shim_pid and process_alive(c.shim_pid)
    state = vm.handler.state(c.id)
    assert (state["status"], state["pid"], state["id"]) == ("created", c.created.pid, c.id)
    assert c.created.cgroup_dirs
    vm.handler.start(c.id)
    status = vm.finish(c)
    assert (status.exit_code, status.oom_killed) == (3, False)
    entries = log_entries(c.log_path)
    assert joined(entries, "stdout") == ["hello"]
    assert joined(entries, "stderr") == ["oops"]
    state = vm.handler.state(c.id)
    assert (state["status"], state["exitStatus"]) == ("stopped", 3)
    vm.handler.delete(c.id)
    assert_shim_gone(c, vm.handler)
    assert not any(d.exists() for d in c.created.cgroup_dirs)
    with pytest.raises(NotFound):
        vm.handler.state(c.id)
    vm.handler.delete(c.id)          # unknown now: fine


def test_container_stdin_through_attach_and_its_end(vm):
    c = vm.create(["sh", "-c", "cat; echo cat ended"], stdin=True)
    vm.handler.start(c.id)
    with AttachClient.connect(c.state_dir, stdin=True) as client:
        client.write_stdin(b"typed\n")
        read_until(client, b"typed\n")
        client.close_stdin()
        out, code = rest(client, timeout=15)
    assert code == 0 and b"cat ended" in out["stdout"], out
    assert vm.finish(c).exit_code == 0


def test_container_with_a_terminal(vm):
    """The shim makes the pty (kata's is in the VM) and copies it to the
    stdout FIFO; the window size goes to it as ResizePty, the end of stdin
    as ^D typed through the relay."""
    c = vm.create(["sh", "-c", "read x; tty; stty size; read y; echo bye"], stdin=True,
                  terminal=True)
    vm.handler.start(c.id)
    vm.handler.resize_terminal(c.id, 77, 33)
    with AttachClient.connect(c.state_dir, stdin=True) as client:
        client.write_stdin(b"go\n")
        got = read_until(client, b"33 77")
        assert b"/dev/pts/" in got, got
        client.close_stdin()
        out, code = rest(client, timeout=15)
    assert code == 0 and b"bye" in out["stdout"], out
    assert vm.finish(c).exit_code == 0
    entries = log_entries(c.log_path)
    assert {stream for _, stream, _, _ in entries} == {"stdout"}
    assert "bye" in "".join(t for *_, t in entries)


def test_stats_come_from_the_shim_and_match_the_hosts_cgroup(vm):
    """Task/Stats (kata's only way: its cgroups are in the VM) read here
    against the runc shim, whose group is on this host: the same counts."""
    c = vm.create(["sh", "-c", "sleep 30 & sleep 30 & echo up; wait"])
    vm.handler.start(c.id)
    host = read_cgroup(c.created.cgroup_dirs)
    deadline = time.monotonic() + 5
    while read_cgroup(c.created.cgroup_dirs).pids_current != 3:
        assert time.monotonic() < deadline, "the sleeps did not start"
        time.sleep(0.01)
    before = read_cgroup(c.created.cgroup_dirs)
    st = vm.handler.cgroup_stats(c.id)
    after = read_cgroup(c.created.cgroup_dirs)
    assert st.pids_current == 3
    assert 0 < before.cpu_usage_ns <= st.cpu_usage_ns <= after.cpu_usage_ns
    assert st.memory_usage_bytes and st.working_set_bytes is not None
    # memory moves between reads (the shells' pages, the kernel's own): the
    # shim's reading lies within what this side read just before and after,
    # give or take 256 KiB
    low = min(before.memory_usage_bytes, after.memory_usage_bytes) - (256 << 10)
    high = max(before.memory_usage_bytes, after.memory_usage_bytes) + (256 << 10)
    assert low <= st.memory_usage_bytes <= high
    assert st.memory_limit_bytes == host.memory_limit_bytes
    assert st.oom_kills == (host.oom_kills or 0)
    vm.handler.kill(c.id, signal.SIGKILL, all_processes=True)
    vm.finish(c)


def test_kill_all_ends_the_container_with_the_signal(vm):
    c = vm.create(["sleep", "300"])
    vm.handler.start(c.id)
    assert vm.handler.state(c.id)["status"] == "running"
    vm.handler.kill(c.id, signal.SIGKILL, all_processes=True)
    status = vm.finish(c)
    assert status.exit_code == 128 + signal.SIGKILL
    vm.handler.kill(c.id, signal.SIGTERM)     # already stopped: not an error
    vm.handler.delete(c.id)
    assert_shim_gone(c, vm.handler)


def test_force_delete_of_a_running_container(vm):
    c = vm.create(["sleep", "300"])
    vm.handler.start(c.id)
    with pytest.raises(FailedPrecondition):
        vm.handler.delete(c.id)        # running: the shim refuses
    vm.handler.delete(c.id, force=True)
    vm.finish(c)
    assert_shim_gone(c, vm.handler)
    assert not any(d.exists() for d in c.created.cgroup_dirs)


def test_exec_sync_output_exit_code_and_timeout(vm):
    c = vm.create(["sleep", "300"])
    vm.handler.start(c.id)
    r = vm.handler.exec_sync(c.id, exec_process("sh", "-c", "echo out; echo err >&2; exit 7"),
                             timeout=10)
    assert (r.exit_code, r.stdout, r.stderr, r.timed_out) == (7, b"out\n", b"err\n", False)
    started = time.monotonic()
    r = vm.handler.exec_sync(c.id, exec_process("sleep", "60"), timeout=1)
    assert r.timed_out and time.monotonic() - started < 8
    assert (r.exit_code, r.stderr) == (EXEC_TIMEOUT_EXIT_CODE, EXEC_TIMED_OUT_MESSAGE)
    assert vm.handler.state(c.id)["status"] == "running"
    r = vm.handler.exec_sync(c.id, exec_process("true"), timeout=None)
    assert r.exit_code == 0
    vm.handler.delete(c.id, force=True)
    vm.finish(c)


def test_reconnect_from_a_new_handler_after_a_restart(vm, tmp_path):
    c = vm.create(["sh", "-c", "sleep 2; echo late; exit 4"])
    vm.handler.start(c.id)
    # the daemon "restarts": a new handler over the same state dir
    again = VmShimHandler("kata", SHIM, vm.handler.runtime_root,
                          address=str(tmp_path / "crio-native.sock"))
    assert again.state(c.id)["status"] == "running"
    status = vm.finish(c)
    assert status.exit_code == 4
    assert joined(log_entries(c.log_path), "stdout") == ["late"]
    assert again.state(c.id)["status"] == "stopped"
    again.delete(c.id)
    assert_shim_gone(c, vm.handler)


def test_missing_shim_binary_is_failed_precondition(tmp_path, make_bundle):
    config = Config(runroot=str(tmp_path / "run"))
    config.runtime.runtimes["kata"] = RuntimeHandlerConfig(
        runtime_type="vm", runtime_path="/usr/bin/containerd-shim-nope-v2")
    handler = make_handler("kata", config)
    assert isinstance(handler, VmShimHandler)
    state_dir = tmp_path / "mon"
    state_dir.mkdir()
    with pytest.raises(FailedPrecondition, match="runtime_path /usr/bin/containerd-shim-nope-v2"):
        handler.create("vm-missing", make_bundle(["true"]).path,
                       MonitorOptions(state_dir, state_dir / "ctr.log"))
    assert not (handler.runtime_root / "vm-missing").exists()


def test_unknown_container(vm):
    with pytest.raises(NotFound):
        vm.handler.state("vm-nope")
    vm.handler.kill("vm-nope", signal.SIGKILL)
    vm.handler.delete("vm-nope")
    with pytest.raises(NotFound):
        vm.handler.start("vm-nope")
    with pytest.raises((NotFound, DeadlineExceeded)):
        vm.handler.exec_sync("vm-nope", exec_process("true"), timeout=1)


def test_a_pods_containers_share_one_shim_until_the_last_is_deleted(vm):
    """containerd-shim-runc-v2 groups containers by the CRI sandbox-id
    annotation, as kata groups them into one VM: the second container's
    `start` gets the first one's shim.  Deleting one container must leave
    the shim serving the others."""
    pod = {"io.kubernetes.cri.sandbox-id": f"pod-{uuid.uuid4().hex[:12]}"}
    sandbox = vm.create(["sleep", "60"], {**pod, "io.kubernetes.cri.container-type": "sandbox"})
    first = vm.create(["sh", "-c", "echo first; sleep 60"],
                      {**pod, "io.kubernetes.cri.container-type": "container"})
    second = vm.create(["sh", "-c", "echo second; sleep 60"],
                       {**pod, "io.kubernetes.cri.container-type": "container"})
    assert sandbox.address == first.address == second.address
    assert sandbox.shim_pid == first.shim_pid == second.shim_pid
    for c in (sandbox, first, second):
        vm.handler.start(c.id)
    vm.handler.delete(first.id, force=True)
    assert vm.finish(first).exit_code == 137
    assert process_alive(second.shim_pid), "the shared shim went with its first container"
    assert vm.handler.state(second.id)["status"] == "running"
    assert vm.handler.exec_sync(second.id, exec_process("echo", "still"), 10).stdout == b"still\n"
    vm.handler.delete(sandbox.id, force=True)
    assert vm.handler.state(second.id)["status"] == "running"
    vm.handler.kill(second.id, signal.SIGKILL)
    assert vm.finish(second).exit_code == 137
    assert joined(log_entries(second.log_path), "stdout") == ["second"]
    vm.handler.delete(second.id)
    assert_shim_gone(second, vm.handler)
    assert not (vm.handler.runtime_root / sandbox.id).exists()
    assert not (vm.handler.runtime_root / first.id).exists()


def _read_to_eof(fd: int, timeout: float = 10.0) -> bytes:
    out, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        select.select([fd], [], [], 0.2)
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            continue
        if not chunk:
            return out
        out += chunk
    raise AssertionError(f"no end of file in {timeout}s; got {out!r}")


def _exited(proc, timeout: float = 10.0) -> int:
    assert select.select([proc.wait_fd], [], [], timeout)[0], "the exec did not end"
    return proc.reap()


def test_interactive_exec_through_fifos(vm):
    c = vm.create(["sleep", "60"])
    vm.handler.start(c.id)
    proc = vm.handler.exec_interactive(
        c.id, exec_process("sh", "-c", "cat; echo to-err >&2; exit 4"), tty=False,
        stdin=True, stdout=True, stderr=True)
    try:
        assert proc.pty is None and proc.resize_fn is None
        assert proc.close_stdin_fn is not None
        os.write(proc.stdin, b"line one\nline two\n")
        fd, proc.stdin = proc.stdin, None
        proc.close_stdin_fn(fd)          # as the streaming server ends stdin
        assert _read_to_eof(proc.stdout) == b"line one\nline two\n"
        assert _read_to_eof(proc.stderr) == b"to-err\n"
        assert _exited(proc) == 4
    finally:
        proc.close()
    assert [p.name for p in (vm.handler.runtime_root / c.id).iterdir()
            if p.name.startswith("exec-")] == []


def test_interactive_exec_with_a_terminal_and_a_resize(vm):
    c = vm.create(["sleep", "60"])
    vm.handler.start(c.id)
    proc = vm.handler.exec_interactive(
        c.id, exec_process("sh", "-c", "read go; stty size; tty"), tty=True, stdin=True,
        stdout=True, stderr=True)
    try:
        assert proc.terminal and proc.stderr is None and proc.resize_fn is not None
        proc.resize_fn(123, 45)
        os.write(proc.stdin, b"go\n")
        out = _read_to_eof(proc.stdout)
        # the terminal echoes the input and ends lines with CR LF
        assert b"45 123\r\n" in out and b"/dev/pts/" in out, out
        assert _exited(proc) == 0
    finally:
        proc.close()


def test_interactive_exec_killed_when_the_client_goes(vm):
    c = vm.create(["sleep", "60"])
    vm.handler.start(c.id)
    proc = vm.handler.exec_interactive(c.id, exec_process("sleep", "100"), tty=False,
                                       stdin=False, stdout=True, stderr=True)
    try:
        proc.kill()
        assert _exited(proc) == 137
    finally:
        proc.close()
    assert vm.handler.state(c.id)["status"] == "running"
