"""linux.seccomp.flags SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (Linux 5.19):
once the agent has *received* a notification, a non-fatal signal no longer
interrupts the waiting syscall; it stays pending until the agent answers.
(A signal before the receive interrupts as usual, with or without the flag:
the kernel's own selftests pin both halves.)

The container is a busybox shell with a USR1 trap whose `cd` builtin makes
chdir(2) in the shell itself; chdir notifies the agent here, which receives
the notification, sends SIGUSR1 to the caller, and only then answers."""
from __future__ import annotations

import errno
import fcntl
import os
import select
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from crio_native.linux import seccomp as sc
from tests.integration.test_seccomp_listener import (NOTIF, NOTIF_RESP,
                                                     SECCOMP_IOCTL_NOTIF_RECV,
                                                     SECCOMP_IOCTL_NOTIF_SEND, receive_state)

# Also run inside the pure cgroup v2 VM by `make test`.
pytestmark = [pytest.mark.root, pytest.mark.vm]

# _IOW('!', 2, __u64): is this notification still waiting for an answer?
SECCOMP_IOCTL_NOTIF_ID_VALID = (1 << 30) | (8 << 16) | (ord("!") << 8) | 2
FLAG = "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
SCRIPT = 'trap "echo trapped" USR1; cd /tmp 2>&1; echo rc=$?'
# the agent's answer: an errno no other path of `cd` gives
ANSWER = errno.ENOLINK


def _id_valid(fd: int, notif_id: int) -> bool:
    try:
        fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_ID_VALID, bytearray(notif_id.to_bytes(8, "little")))
        return True
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise
        return False


def _pending_shared(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("ShdPnd:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no ShdPnd in /proc/{pid}/status")


class SignallingAgent:
    """Takes one notify fd from the runtime, receives the first notification,
    signals the caller with SIGUSR1, records what became of the notification,
    then answers ANSWER."""

    def __init__(self, path: Path):
        self.path = path
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(str(path))
        self.srv.listen(1)
        self.srv.settimeout(30)
        self.seen: dict = {}
        self.error: BaseException | None = None
        self.fd = -1
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _take_fd(self) -> bool:
        state, fds = receive_state(self.srv)
        if state is None:
            return False    # abandon()
        self.seen["state"] = state
        [self.fd] = fds
        return True

    def _run(self) -> None:
        try:
            if not self._take_fd():
                return
            if not select.select([self.fd], [], [], 20)[0]:
                raise AssertionError("no notification within 20 s")
            buf = bytearray(NOTIF.size)
            fcntl.ioctl(self.fd, SECCOMP_IOCTL_NOTIF_RECV, buf)
            notif_id, pid, _flags, nr = NOTIF.unpack(buf)[:4]
            self.seen.update(nr=nr, pid=pid)
            os.kill(pid, signal.SIGUSR1)
            self._watch(notif_id, pid)
            try:
                fcntl.ioctl(self.fd, SECCOMP_IOCTL_NOTIF_SEND,
                            bytearray(NOTIF_RESP.pack(notif_id, 0, -ANSWER, 0)))
                self.seen["answered"] = True
            except OSError as e:
                if e.errno != errno.ENOENT:
                    raise
                self.seen["answered"] = False
            # a second notification would mean the call was restarted
            # (POLLHUP alone: the caller has exited)
            poller = select.poll()
            poller.register(self.fd, select.POLLIN)
            events = poller.poll(500)
            self.seen["again"] = any(ev & select.POLLIN for _fd, ev in events)
        except BaseException as e:  # reported by join()
            self.error = e

    def _watch(self, notif_id: int, pid: int) -> None:
        """Until the notification is withdrawn (the signal interrupted the
        call) or 1 s passed with it waiting and SIGUSR1 pending."""
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            if not _id_valid(self.fd, notif_id):
                self.seen["withdrawn"] = True
                return
            time.sleep(0.02)
        self.seen["withdrawn"] = False
        self.seen["usr1_pending"] = bool(_pending_shared(pid) & (1 << (signal.SIGUSR1 - 1)))

    def abandon(self) -> None:
        """The runtime never connected: end the agent with an empty connection."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(str(self.path))
        self._thread.join(30)
        self.srv.close()

    def join(self) -> dict:
        self._thread.join(30)
        assert not self._thread.is_alive(), "agent stuck"
        self.srv.close()
        if self.fd >= 0:
            os.close(self.fd)
        if self.error is not None:
            raise self.error
        return self.seen


def _bundle(make_bundle, agent_path: Path, flags: list[str]):
    def edit(spec):
        # no_new_privs: the filter goes in after the runtime's own chdir
        spec["process"]["noNewPrivileges"] = True
        spec["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(agent_path), "flags": flags,
            "syscalls": [{"names": ["chdir"], "action": "SCMP_ACT_NOTIFY"}]}
    return make_bundle(["sh", "-c", SCRIPT], edit)


@pytest.mark.skipif(not sc.kernel_supports_flags(sc.FLAG_NEW_LISTENER
                                                 | sc.FLAG_WAIT_KILLABLE_RECV),
                    reason="the kernel lacks SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (Linux 5.19)")
@pytest.mark.parametrize("killable", [True, False], ids=["wait_killable", "plain"])
def test_signal_after_receive(rt, make_bundle, tmp_path, killable):
    agent = SignallingAgent(tmp_path / "agent.sock")
    b = _bundle(make_bundle, tmp_path / "agent.sock", [FLAG] if killable else [])
    out = tmp_path / "out"
    with open(out, "w") as f:
        rt.create("wk", b.path, stdio=(-1, f.fileno(), f.fileno()))
    rt.start("wk")
    try:
        seen = agent.join()
        assert rt.wait("wk", timeout=10) == 0
    finally:
        rt.delete("wk", force=True)
    assert seen["nr"] == sc_nr("chdir") and seen["pid"] == seen["state"]["pid"]
    text = out.read_text()
    if killable:
        # the call waited out the signal and got the agent's answer
        assert seen["withdrawn"] is False and seen["usr1_pending"] is True, seen
        assert seen["answered"] is True and seen["again"] is False, seen
        assert f"can't cd to /tmp: {os.strerror(ANSWER)}" in text, text
    else:
        # the signal ended the wait: the notification was withdrawn, the
        # answer came too late, and the shell saw EINTR
        assert seen["withdrawn"] is True and seen["answered"] is False, seen
        assert f"can't cd to /tmp: {os.strerror(errno.EINTR)}" in text, text
    assert seen["again"] is False, seen
    # the trap ran once the call was over; `cd` failed either way
    assert "trapped\n" in text and "rc=0" not in text, text


@pytest.mark.skipif(not sc.kernel_supports_flags(sc.FLAG_NEW_LISTENER
                                                 | sc.FLAG_WAIT_KILLABLE_RECV),
                    reason="the kernel lacks SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (Linux 5.19)")
@pytest.mark.parametrize("killable", [True, False], ids=["wait_killable", "plain"])
def test_container_sees_what_it_sees_under_the_oracle(builtin, oracle, make_bundle, tmp_path,
                                                       killable):
    flags = [FLAG] if killable else []
    results = []
    for runner in (builtin, oracle):
        sock = tmp_path / f"{runner.name}.sock"
        agent = SignallingAgent(sock)
        r = runner.run(_bundle(make_bundle, sock, flags))
        if runner is oracle and r.code != 0 and "flag" in r.err + r.out:
            agent.abandon()
            pytest.skip(f"{oracle.name} refuses the flag: {(r.err + r.out).strip()[:200]}")
        seen = agent.join()
        results.append((r.code, r.out, seen["withdrawn"], seen["answered"]))
    assert results[0] == results[1]


def sc_nr(name: str) -> int:
    from crio_native._native import seccomp as native

    return native.syscall_number(name)


def test_flag_without_listener_is_ignored(rt, make_bundle, tmp_path):
    """No SCMP_ACT_NOTIFY rule: nothing to wait for, and the kernel refuses
    the flag without NEW_LISTENER; it is dropped (runc with libseccomp 2.6
    and crun run such a profile too) and the filter still applies."""
    def edit(spec):
        spec["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW", "flags": [FLAG, "SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [{"names": ["chdir"], "action": "SCMP_ACT_ERRNO",
                          "errnoRet": errno.ENOLINK}]}
    b = make_bundle(["sh", "-c", "cd /tmp 2>&1; echo rc=$?"], edit)
    out = tmp_path / "out"
    with open(out, "w") as f:
        rt.create("nl", b.path, stdio=(-1, f.fileno(), f.fileno()))
    rt.start("nl")
    assert rt.wait("nl", timeout=10) == 0
    rt.delete("nl")
    text = out.read_text()
    assert f"can't cd to /tmp: {os.strerror(errno.ENOLINK)}\n" in text and "rc=0" not in text, text
