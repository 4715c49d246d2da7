"""An ExecSync whose client gives up, by each runtime handler (builtin,
runc): a cancelled call (RST_STREAM CANCEL) or one past its deadline kills
its command (timeout 0: it would run forever) and frees the daemon's
worker, leaving no process, exec file, daemon fd or extra cgroup behind,
and the container runs on.  The plumbing alone: tests/unit/test_exec_cancel.py."""
from __future__ import annotations

import contextlib
import glob
import json
import os
import signal
import time
from pathlib import Path

import grpc
import pytest
from h2.errors import ErrorCodes

from crio_native._proto import api_pb2
from crio_native.cri.server import MAX_WORKERS
from crio_native.cri.wire import StatusCode
from tests.e2e.test_containers import (busybox_image, container_config, create,  # noqa: F401
                                       cstatus, run_pod, serving_image)
from tests.fixtures.registry import registry  # noqa: F401
from tests.h2client import RawClient, grpc_message

pytestmark = pytest.mark.root

EXEC_SYNC = "/runtime.v1.RuntimeService/ExecSync"
VERSION = "/runtime.v1.RuntimeService/Version"
GONE_WITHIN = 20.0      # seconds to wait for what a cancel ends (polled, not slept)


@pytest.fixture
def cdaemon(daemon_factory, busybox_image, tmp_path):  # noqa: F811
    yield from serving_image(daemon_factory().start(), busybox_image, tmp_path)


@pytest.fixture
def running(cdaemon, handler):
    """The test's container; at teardown, before its pod goes, whatever
    exec outlived a failed test is killed, so that the daemon's workers
    are free to remove the pod (without the fix they never come back)."""
    boxes: list[Running] = []

    def make() -> Running:
        boxes.append(Running(cdaemon, handler))
        return boxes[-1]

    yield make
    for box in boxes:
        for pid in box.leftovers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


class Running:
    """A running `sleep 1000` container of `handler` and what the test
    compares before and after: the daemon's fds, the container's cgroup."""

    def __init__(self, d, handler: str):
        self.d = d
        pod = run_pod(d, name=f"cancel-{handler}", handler=handler)
        self.cid = create(d, pod, container_config(d))
        d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=self.cid))
        self.init = _init_pid(d, self.cid)
        self.pid_ns = os.readlink(f"/proc/{self.init}/ns/pid")
        # one exec first: what the daemon keeps open for good (caches, the
        # sealed runc) is open before the count
        d.runtime.ExecSync(api_pb2.ExecSyncRequest(container_id=self.cid, cmd=["true"],
                                                   timeout=30))
        self.fds = self.daemon_fds()
        self.cgroup = _memory_cgroup(self.init)
        self.subgroups = _subdirs(self.cgroup)

    def daemon_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.d.proc.pid}/fd"))

    def execs(self, word: str) -> list[int]:
        """The container's processes running `sleep <word>`."""
        out = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or _cmdline(entry) != f"sleep {word}":
                continue
            if _pid_ns(int(entry)) == self.pid_ns:
                out.append(int(entry))
        return out

    def leftovers(self) -> list[int]:
        """Every process of the container but its init, and but the zombies
        it has not reaped: a killed shell's children are the init's to reap
        (here `sleep 1000`, which never does; the kernel frees them with it)."""
        return [p for p in map(int, filter(str.isdigit, os.listdir("/proc")))
                if p != self.init and _pid_ns(p) == self.pid_ns
                and _state_and_parent(p) != ("Z", self.init)]

    def request(self, word: str, timeout: int = 0) -> api_pb2.ExecSyncRequest:
        return api_pb2.ExecSyncRequest(container_id=self.cid, cmd=["sleep", word],
                                       timeout=timeout)

    def assert_nothing_left(self, word: str) -> None:
        assert _poll(lambda: not self.execs(word)), f"sleep {word} outlived its call"
        assert _poll(lambda: not _runtime_execs(self.cid)), _runtime_execs(self.cid)
        # nothing else in the container's pid namespace either (a zombie an
        # exec left there keeps the container from ever exiting)
        assert _poll(lambda: not self.leftovers()), \
            [(p, _cmdline(str(p))) for p in self.leftovers()]
        assert _poll(lambda: self.daemon_fds() <= self.fds), \
            (self.daemon_fds(), self.fds, os.listdir(f"/proc/{self.d.proc.pid}/fd"))
        assert glob.glob(f"/dev/shm/crn-exec-{self.cid[:12]}-*") == []
        assert glob.glob(f"/tmp/crn-exec-{self.cid[:12]}-*") == []
        assert _subdirs(self.cgroup) == self.subgroups
        assert _poll(lambda: _procs(self.cgroup) == [self.init]), _procs(self.cgroup)
        # the container runs on, and answers the next exec
        assert cstatus(self.d, self.cid).status.state == api_pb2.CONTAINER_RUNNING
        assert _cmdline(str(self.init)) == "sleep 1000"
        r = self.d.runtime.ExecSync(api_pb2.ExecSyncRequest(
            container_id=self.cid, cmd=["echo", "still"], timeout=30))
        assert (r.exit_code, r.stdout) == (0, b"still\n")


def test_reset_exec_syncs_are_killed_and_free_every_worker(cdaemon, running):
    """As many ExecSync calls of a command that never ends as the daemon
    has workers: a Version call waits behind them; the client resets them
    all (RST_STREAM CANCEL), and their commands go, the Version is
    answered, nothing is left."""
    box = running()
    word = "1001"
    body = grpc_message(box.request(word).SerializeToString())
    with RawClient(str(cdaemon.socket)) as client:
        sids = [client.start(EXEC_SYNC, body) for _ in range(MAX_WORKERS)]
        assert _poll(lambda: len(box.execs(word)) == MAX_WORKERS, 120), len(box.execs(word))
        version = client.start(VERSION, grpc_message(b""))
        client.quiet_for(0.5)
        assert not client.answers[version].ended, "a worker was free: the test proves nothing"
        for sid in sids:
            client.h2.reset_stream(sid, ErrorCodes.CANCEL)
        client.flush()
        client.read(lambda: client.answers[version].ended, timeout=GONE_WITHIN)
        assert client.answers[version].code == StatusCode.OK
    box.assert_nothing_left(word)


def test_client_deadline_kills_the_command(cdaemon, running):
    """grpcio's deadline (grpc-timeout, then RST_STREAM when it fires on the
    client side too) with the request's own timeout 0."""
    box = running()
    word = "1002"
    future = cdaemon.runtime.ExecSync.future(box.request(word), timeout=3)
    assert _poll(lambda: len(box.execs(word)) == 1)
    with pytest.raises(grpc.RpcError) as info:
        future.result()
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    box.assert_nothing_left(word)


def test_server_side_deadline_alone_kills_and_answers(cdaemon, running):
    """A client that sends grpc-timeout and then never resets: the daemon's
    own view of the deadline kills the command and answers
    DEADLINE_EXCEEDED (the worker is back: the next call is answered)."""
    box = running()
    word = "1003"
    body = grpc_message(box.request(word).SerializeToString())
    with RawClient(str(cdaemon.socket)) as client:
        sid = client.start(EXEC_SYNC, body, extra=(("grpc-timeout", "3S"),))
        assert _poll(lambda: len(box.execs(word)) == 1)
        client.read(lambda: client.answers[sid].ended, timeout=GONE_WITHIN)
        assert client.answers[sid].code == StatusCode.DEADLINE_EXCEEDED
        assert client.call(VERSION, grpc_message(b"")).code == StatusCode.OK
    box.assert_nothing_left(word)


def test_closed_connection_kills_the_command(cdaemon, running):
    box = running()
    word = "1004"
    client = RawClient(str(cdaemon.socket))
    client.start(EXEC_SYNC, grpc_message(box.request(word).SerializeToString()))
    assert _poll(lambda: len(box.execs(word)) == 1)
    client.close()
    box.assert_nothing_left(word)


def test_cancel_kills_what_the_command_started(cdaemon, running):
    """A shell that started a background child: the exec's process group
    goes with it (the shell without job control keeps one group)."""
    box = running()
    request = api_pb2.ExecSyncRequest(container_id=box.cid, timeout=0, cmd=[
        "sh", "-c", "sleep 1005 & sleep 1006; wait"])
    with RawClient(str(cdaemon.socket)) as client:
        sid = client.start(EXEC_SYNC, grpc_message(request.SerializeToString()))
        assert _poll(lambda: len(box.execs("1005")) == 1 and len(box.execs("1006")) == 1)
        client.h2.reset_stream(sid, ErrorCodes.CANCEL)
        client.flush()
        assert _poll(lambda: not box.execs("1005")), "the background child outlived the call"
    box.assert_nothing_left("1006")


@pytest.mark.parametrize("delay", [0.0, 0.01, 0.03])
def test_cancel_while_the_exec_starts(cdaemon, running, delay):
    """Reset `delay` seconds after the request, while the daemon is
    starting the exec (or before it has begun: then nothing starts): a
    command the runtime is still starting is killed once started, not left
    behind with the runtime killed."""
    box = running()
    word = "1007"
    with RawClient(str(cdaemon.socket)) as client:
        sid = client.start(EXEC_SYNC, grpc_message(box.request(word).SerializeToString()))
        time.sleep(delay)    # where the reset lands, not an assertion's wait
        client.h2.reset_stream(sid, ErrorCodes.CANCEL)
        client.flush()
        client.quiet_for(0.2)
    box.assert_nothing_left(word)


# ---- helpers ----------------------------------------------------------------

def _poll(condition, timeout: float = GONE_WITHIN) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _pid_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def _state_and_parent(pid: int) -> tuple[str, int] | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return fields[0], int(fields[1])


def _init_pid(d, cid: str) -> int:
    return json.loads(cstatus(d, cid, verbose=True).info["info"])["pid"]


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def _runtime_execs(cid: str) -> list[str]:
    """`runc exec` processes (ours or left) for the container."""
    return [c for c in (_cmdline(p) for p in os.listdir("/proc") if p.isdigit())
            if " exec " in f" {c} " and cid in c]


def _memory_cgroup(pid: int) -> Path:
    """The container's group in the memory hierarchy (v1) or the unified one."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return Path("/sys/fs/cgroup/memory") / path.lstrip("/")
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return Path("/sys/fs/cgroup") / line[3:].lstrip("/")
    raise AssertionError(f"no memory cgroup for {pid}")


def _subdirs(group: Path) -> list[str]:
    return sorted(p.name for p in group.iterdir() if p.is_dir())


def _procs(group: Path) -> list[int]:
    return sorted(int(x) for x in (group / "cgroup.procs").read_text().split())
