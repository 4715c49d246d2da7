"""seccomp SCMP_ACT_NOTIFY: the notify fd and the container process state
go to the agent at linux.seccomp.listenerPath (a unix socket served by a
thread here), which answers the notifications with the ioctls of
linux/seccomp.h; the container sees the answers.  Compared with runc
(and crun where it runs)."""
from __future__ import annotations

import array
import errno
import fcntl
import json
import os
import re
import select
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Callable

import pytest

from crio_native.errors import FailedPrecondition, InvalidArgument
from crio_native.linux import cgroups
from crio_native.runtime.builtin.container import OCI_VERSION
from crio_native.runtime.builtin.handler import BuiltinHandler
from crio_native.runtime.handler import MonitorOptions

from tests.integration.test_monitor import joined, log_entries

# Also run inside the pure cgroup v2 VM by `make test` (crun works there as a second oracle).
pytestmark = [pytest.mark.root, pytest.mark.vm]

# ---- a seccomp agent ------------------------------------------------------------

# <linux/seccomp.h>: struct seccomp_notif {u64 id; u32 pid; u32 flags;
# struct seccomp_data {int nr; u32 arch; u64 ip; u64 args[6]}}, and
# struct seccomp_notif_resp {u64 id; s64 val; s32 error; u32 flags}.
NOTIF = struct.Struct("=QIIiIQ6Q")
NOTIF_RESP = struct.Struct("=QqiI")
USER_NOTIF_FLAG_CONTINUE = 1


def _iowr(nr: int, size: int) -> int:
    return (3 << 30) | (size << 16) | (ord("!") << 8) | nr


SECCOMP_IOCTL_NOTIF_RECV = _iowr(0, NOTIF.size)
SECCOMP_IOCTL_NOTIF_SEND = _iowr(1, NOTIF_RESP.size)

# An answer: (val, error, flags) of the response for a syscall number.
Answer = Callable[[int], tuple[int, int, int]]
ANSWERS: dict[str, Answer] = {
    "errno": lambda nr: (0, -errno.EROFS, 0),                  # refuse it
    "fake": lambda nr: (0, 0, 0),                              # success, not done
    "continue": lambda nr: (0, 0, USER_NOTIF_FLAG_CONTINUE),   # let the kernel run it
}


def receive_state(srv: socket.socket) -> tuple[dict | None, list[int]]:
    """Accept one runtime connection on the listener socket `srv` and read
    the container process state JSON and the fds sent with it; (None, [])
    when the runtime gave up before sending anything."""
    conn, _ = srv.accept()
    data, fds = b"", array.array("i")
    state = None
    with conn:
        conn.settimeout(10)
        while True:
            msg, anc, _flags, _addr = conn.recvmsg(65536, socket.CMSG_SPACE(4 * 4))
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
            if not msg:
                break
            data += msg
            try:    # runc keeps the connection open a while: stop at a whole document
                state = json.loads(data)
                break
            except ValueError:
                continue
    if data and state is None:
        raise AssertionError(f"the runtime sent a partial state: {data!r}")
    return state, list(fds)


class Agent:
    """Accepts connections at `path`, takes one container process state and
    its fds from each, and answers every notification on those fds."""

    def __init__(self, path: Path, answer: Answer):
        self.path, self.answer = path, answer
        self.states: list[dict] = []
        self.fd_counts: list[int] = []
        self.notified: list[tuple[int, int]] = []   # (syscall nr, pid)
        self.errors: list[BaseException] = []
        self._fds: list[int] = []
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(str(path))
        self.srv.listen(8)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            while not self._stop.is_set():
                poller = select.poll()
                for fd in (self.srv.fileno(), *self._fds):
                    poller.register(fd, select.POLLIN)
                for fd, events in poller.poll(50):
                    if fd == self.srv.fileno():
                        self._accept()
                    elif events & select.POLLIN:
                        self._answer(fd)
                    else:
                        # POLLHUP: no process uses the filter any more (a
                        # NOTIF_RECV would wait for good on older kernels)
                        self._fds.remove(fd)
                        os.close(fd)
        except BaseException as e:  # reported by the test through .errors
            self.errors.append(e)

    def _accept(self) -> None:
        state, fds = receive_state(self.srv)
        if state is None:
            return      # a runtime that gave up before sending (crun connects early too)
        with self._lock:
            self._fds += fds
            self.states.append(state)
            self.fd_counts.append(len(fds))
            self._lock.notify_all()

    def _answer(self, fd: int) -> None:
        buf = bytearray(NOTIF.size)
        try:
            fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, buf)
        except OSError as e:
            if e.errno != errno.ENOENT:     # the caller was killed meanwhile
                raise
            return
        notif_id, pid, _flags, nr = NOTIF.unpack(buf)[:4]
        self.notified.append((nr, pid))
        val, error, flags = self.answer(nr)
        try:
            fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND,
                        bytearray(NOTIF_RESP.pack(notif_id, val, error, flags)))
        except OSError as e:
            if e.errno != errno.ENOENT:     # the caller was killed meanwhile
                raise

    def wait_states(self, n: int, timeout: float = 10.0) -> list[dict]:
        with self._lock:
            assert self._lock.wait_for(lambda: len(self.states) >= n, timeout), self.states
            return list(self.states)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.srv.close()
        for fd in self._fds:
            os.close(fd)
        assert not self.errors, self.errors


@pytest.fixture
def agent(tmp_path):
    """agent(answer="errno") -> an Agent on a fresh socket, closed at teardown."""
    made: list[Agent] = []

    def make(answer: str = "errno") -> Agent:
        made.append(Agent(tmp_path / f"agent{len(made)}.sock", ANSWERS[answer]))
        return made[-1]
    yield make
    for a in made:
        a.close()


def notify_mkdir(path: Path | str | None, nnp: bool = True, metadata: str | None = None,
                 **section):
    """A bundle edit: mkdir notifies the agent at `path`."""
    def edit(spec):
        spec["root"]["readonly"] = False
        spec["process"]["noNewPrivileges"] = nnp
        spec["annotations"] = {"org.example/who": "test"}
        seccomp = {"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
        if path is not None:
            seccomp["listenerPath"] = str(path)
        if metadata is not None:
            seccomp["listenerMetadata"] = metadata
        seccomp.update(section)
        spec["linux"]["seccomp"] = seccomp
    return edit


MKDIR = ("mkdir /tmp/made 2>&1 && echo made; "
         "if [ -d /tmp/made ]; then echo present; else echo absent; fi")
MKDIR_SEES = {"errno": "mkdir: can't create directory '/tmp/made': Read-only file system\n"
                       "absent\n",
              "fake": "made\nabsent\n",
              "continue": "made\npresent\n"}
SYS_MKDIR = 83  # x86_64


def _check_state(doc: dict, *, cid: str, pid: int, bundle: Path, metadata: str,
                 status: str = "creating", init_pid: int | None = None) -> None:
    assert doc == {
        "ociVersion": OCI_VERSION, "fds": ["seccompFd"], "pid": pid, "metadata": metadata,
        "state": {"ociVersion": OCI_VERSION, "id": cid, "status": status,
                  "pid": pid if init_pid is None else init_pid,
                  "bundle": str(bundle.resolve()),
                  "annotations": {"org.example/who": "test"}}}


# ---- the agent gets the fd at create and answers ------------------------------------

@pytest.mark.parametrize("nnp", [True, False], ids=["no_new_privs", "privileged-load"])
def test_state_and_fd_reach_the_agent_at_create(rt, make_bundle, agent, tmp_path, nnp):
    ag = agent("errno")
    b = make_bundle(["sh", "-c", MKDIR], notify_mkdir(ag.path, nnp, metadata="MKNOD=/dev/null"))
    out = tmp_path / "out"
    with open(out, "w") as f:
        rt.create("n1", b.path, stdio=(-1, f.fileno(), f.fileno()))
    # before start: create returns once the agent has what it needs
    [doc] = ag.wait_states(1)
    pid = rt.state("n1")["pid"]
    _check_state(doc, cid="n1", pid=pid, bundle=b.path, metadata="MKNOD=/dev/null")
    assert ag.fd_counts == [1]
    assert ag.notified == []
    rt.start("n1")
    assert rt.wait("n1", timeout=10) == 0
    assert out.read_text() == MKDIR_SEES["errno"]
    assert {nr for nr, _pid in ag.notified} == {SYS_MKDIR}
    rt.delete("n1")


@pytest.mark.parametrize("answer", sorted(ANSWERS))
def test_answers_seen_in_the_container_like_runc(builtin, oracle, make_bundle, agent, answer):
    mine_agent, ref_agent = agent(answer), agent(answer)
    mine = builtin.run(make_bundle(["sh", "-c", MKDIR], notify_mkdir(mine_agent.path,
                                                                   metadata="m")), cid="l1")
    ref = oracle.run(make_bundle(["sh", "-c", MKDIR], notify_mkdir(ref_agent.path,
                                                                 metadata="m")), cid="l1")
    assert (mine.code, mine.out) == (ref.code, ref.out), (mine.err, ref.err)
    assert mine.out == MKDIR_SEES[answer]
    [doc], [ref_doc] = mine_agent.wait_states(1), ref_agent.wait_states(1)
    # the same document, but for the pid and the spec version each one speaks
    for d in (doc, ref_doc):
        assert d["pid"] == d["state"]["pid"] > 0
    strip = {"ociVersion": None, "pid": None, "bundle": None}
    assert ({**doc, **strip, "state": {**doc["state"], **strip}}
            == {**ref_doc, **strip, "state": {**ref_doc["state"], **strip}})
    assert mine_agent.fd_counts == ref_agent.fd_counts == [1]


def test_without_metadata_it_is_empty(rt, make_bundle, agent):
    ag = agent("continue")
    b = make_bundle(["true"], notify_mkdir(ag.path))
    rt.create("n2", b.path)
    [doc] = ag.wait_states(1)
    assert doc["metadata"] == ""
    rt.delete("n2", force=True)


def test_listener_path_without_notify_is_ignored(builtin, make_bundle, tmp_path):
    def edit(spec):
        spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                    "listenerPath": str(tmp_path / "nobody.sock"),
                                    "listenerMetadata": "x",
                                    "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    r = builtin.run(make_bundle(["sh", "-c", "mkdir /tmp/x 2>&1; echo done"], edit))
    assert r.code == 0 and r.out.endswith("Operation not permitted\ndone\n"), r


# ---- under the monitor, and exec ----------------------------------------------------

def test_monitored_create_delivers_the_fd(tmp_path, make_bundle, agent):
    handler = BuiltinHandler("builtin", tmp_path / "hstate")
    ag = agent("fake")
    d = tmp_path / "mon"
    d.mkdir()
    opts = MonitorOptions(state_dir=d, log_path=d / "ctr.log")
    b = make_bundle(["sh", "-c", MKDIR], notify_mkdir(ag.path, nnp=False, metadata="mon"))
    try:
        created = handler.create("m1", b.path, opts)
        [doc] = ag.wait_states(1)
        _check_state(doc, cid="m1", pid=created.pid, bundle=b.path, metadata="mon")
        handler.start("m1")
        assert handler.runtime.wait("m1", timeout=10) == 0
        assert joined(log_entries(opts.log_path), "stdout") == ["made", "absent"]
    finally:
        for cid in handler.runtime.list():
            handler.delete(cid, force=True)


def test_exec_hands_its_own_fd_over(rt, make_bundle, agent, tmp_path):
    ag = agent("errno")
    b = make_bundle(["sleep", "60"], notify_mkdir(ag.path, metadata="x"))
    rt.create("e1", b.path)
    rt.start("e1")
    init = rt.state("e1")["pid"]
    # `start` returns once the barrier is released, maybe before the execve
    deadline = time.monotonic() + 10
    while Path(f"/proc/{init}/comm").read_text() != "sleep\n" and time.monotonic() < deadline:
        time.sleep(0.005)
    # the process sent its notify fd and closed it (and the socket): only the
    # agent holds it
    assert sorted(os.listdir(f"/proc/{init}/fd")) == ["0", "1", "2"]
    process = {**b.spec["process"], "args": ["sh", "-c", "mkdir /tmp/e 2>&1; echo rc=$?"]}
    out = tmp_path / "exec-out"
    with open(out, "w") as f:
        pid = rt.exec("e1", process, stdio=(-1, f.fileno(), f.fileno()))
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert out.read_text() == ("mkdir: can't create directory '/tmp/e': Read-only file system\n"
                               "rc=1\n")
    docs = ag.wait_states(2)
    # runc's layout: the exec'd process's pid, the running container's state
    _check_state(docs[1], cid="e1", pid=pid, bundle=b.path, metadata="x", status="running",
                 init_pid=init)
    assert ag.fd_counts == [1, 1]
    rt.delete("e1", force=True)


# ---- bad input, and an agent that is not there ------------------------------------------

@pytest.mark.parametrize("path,section,field", [
    (None, {}, "linux.seccomp.listenerPath"),
    ("agent.sock", {}, "linux.seccomp.listenerPath"),
    ("/x.sock", {"defaultAction": "SCMP_ACT_NOTIFY"}, "linux.seccomp.defaultAction"),
    ("/x.sock", {"syscalls": [{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]},
     "linux.seccomp.syscalls[0].action"),
], ids=["no-listener", "relative", "default-notify", "notify-write"])
def test_refused_like_runc(rt, oracle, make_bundle, path, section, field):
    b = make_bundle(["true"], notify_mkdir(path, **section))
    with pytest.raises(InvalidArgument, match="^" + re.escape(f"config.json: {field}: ")):
        rt.create("bad", b.path)
    assert rt.list() == []
    ref = oracle.run(b)
    # crun 1.8 runs a notify profile without a listener (the calls fail ENOSYS)
    if not (oracle.name == "crun" and path is None):
        assert ref.code != 0, ref


@pytest.mark.parametrize("listening", [False, True], ids=["no-socket", "not-listening"])
def test_agent_not_there_fails_create_and_leaves_nothing(rt, make_bundle, tmp_path, listening,
                                                         cgroups_path):
    sock_path = tmp_path / "down.sock"
    if listening:   # bound, never listening: ECONNREFUSED
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(sock_path))
    name = cgroups_path(f"crn-listener-{os.getpid()}")

    def edit(spec):
        notify_mkdir(sock_path)(spec)
        spec["linux"]["cgroupsPath"] = name
    b = make_bundle(["true"], edit)
    plan = cgroups.plan_cgroups(name, {}, root=rt.cgroup_root)
    children = _children()
    with pytest.raises(FailedPrecondition, match=rf"linux\.seccomp\.listenerPath `{sock_path}`"):
        rt.create("down", b.path)
    assert rt.list() == [] and not (rt.root / "down").exists()
    assert all(not Path(d).exists() for d in plan.dirs)
    assert _children() == children
    if listening:
        sock.close()


def _children() -> set[int]:
    me = str(os.getpid())
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if stat.rsplit(")", 1)[1].split()[1] == me:
                out.add(int(entry))
    return out


def test_agent_gone_after_connect_fails_create(rt, make_bundle, tmp_path):
    """An agent that accepts and hangs up before the fd is sent: the send
    fails (EPIPE) and create with it, as the spec asks."""
    sock_path = tmp_path / "rude.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(sock_path))
    srv.listen(1)

    def rude():
        conn, _ = srv.accept()
        conn.shutdown(socket.SHUT_RDWR)
        conn.close()
    t = threading.Thread(target=rude, daemon=True)
    t.start()
    # a createRuntime hook holds the child until the agent has hung up
    hook = tmp_path / "wait.sh"
    hook.write_text("#!/bin/sh\nsleep 0.5\n")
    hook.chmod(0o755)

    def edit(spec):
        notify_mkdir(sock_path)(spec)
        spec["hooks"] = {"createRuntime": [{"path": str(hook)}]}
    b = make_bundle(["true"], edit)
    start = time.monotonic()
    with pytest.raises(FailedPrecondition, match=r"sendmsg to linux\.seccomp\.listenerPath"):
        rt.create("rude", b.path)
    assert time.monotonic() - start < 30
    assert rt.list() == []
    t.join(5)
    srv.close()
