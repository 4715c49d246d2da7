"""The seccomp notifier's pieces that need no filter: taking the notify fd
out of a runtime's message, syscall names from libseccomp, the listening
socket's lifetime, the relisten rule and the "seccomp killed" exit."""
from __future__ import annotations

import json
import os
import socket
from types import SimpleNamespace

from crio_native.container import seccomp_notifier as sn


def send_state(fds: list[int], names: list[str]) -> int | None:
    a, b = socket.socketpair()
    with a, b:
        doc = json.dumps({"ociVersion": "1.2.0", "fds": names, "pid": 1, "metadata": "",
                          "state": {}}).encode()
        a.sendmsg([doc], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                           b"".join(fd.to_bytes(4, "little") for fd in fds))])
        a.shutdown(socket.SHUT_WR)
        return sn.receive_notify_fd(b)


def open_fds() -> set[int]:
    return set(int(n) for n in os.listdir("/proc/self/fd"))


def test_the_seccomp_fd_is_kept_and_the_others_closed():
    r1, w1 = os.pipe()
    before = open_fds()
    got = send_state([r1, w1], ["other", sn.SECCOMP_FD_NAME])
    assert got is not None and got not in before
    assert os.fstat(got).st_ino == os.fstat(w1).st_ino
    os.close(got)
    assert open_fds() == before          # the other received fd was closed
    os.close(r1)
    os.close(w1)


def test_no_seccomp_fd_named_keeps_nothing(caplog):
    r1, w1 = os.pipe()
    before = open_fds()
    assert send_state([r1], ["something"]) is None
    assert open_fds() == before
    assert "without a seccomp fd" in caplog.text
    os.close(r1)
    os.close(w1)


def test_syscall_names_from_libseccomp():
    names = sn.native_syscall_names()
    assert {"read", "vmsplice", "mount", "clone3"} <= set(names)
    assert sn.syscall_name(0, 0) in names
    assert sn.syscall_name(0, 100000).startswith("syscall#")


def test_listen_and_forget(tmp_path):
    notifier = sn.SeccompNotifier(tmp_path / "seccomp", lambda cid, msg: None)
    try:
        path = notifier.listen("a" * 64, "stop", {"vmsplice": 1})
        assert path == str(tmp_path / "seccomp" / ("a" * 16))
        assert os.stat(path).st_mode & 0o777 == 0o600
        assert notifier.watching("a" * 64)
        notifier.forget("a" * 64)
        assert not os.path.exists(path) and not notifier.watching("a" * 64)
    finally:
        notifier.close()


def test_relisten_only_for_our_profiles(tmp_path):
    notifier = sn.SeccompNotifier(tmp_path, lambda cid, msg: None)
    cid = "b" * 64
    ours = {"linux": {"seccomp": {"listenerPath": notifier.path_for(cid),
                                  "listenerMetadata": sn.METADATA_PREFIX + "stop"}}}
    other = {"linux": {"seccomp": {"listenerPath": "/run/agent.sock",
                                   "listenerMetadata": "x"}}}
    try:
        sn.relisten(notifier, cid, other)
        assert not notifier.watching(cid)
        sn.relisten(notifier, cid, {})
        assert not notifier.watching(cid)
        sn.relisten(notifier, cid, ours)
        assert notifier.watching(cid)
    finally:
        notifier.close()


def test_killed_marker_sets_reason_and_message(tmp_path):
    record = SimpleNamespace(directory=str(tmp_path), reason="Error", message="")
    sn.fold_killed(record)
    assert record.reason == "Error"
    sn.mark_killed(record, "Used forbidden syscalls: vmsplice (1x)")
    sn.fold_killed(record)
    assert (record.reason, record.message) == ("seccomp killed",
                                               "Used forbidden syscalls: vmsplice (1x)")


def test_sweep_removes_sockets_of_gone_containers(tmp_path):
    notifier = sn.SeccompNotifier(tmp_path, lambda cid, msg: None)
    try:
        kept = notifier.listen("c" * 64, "stop", {})
        (tmp_path / ("d" * 16)).write_text("")
        notifier.sweep()
        assert sorted(p.name for p in tmp_path.iterdir()) == [os.path.basename(kept)]
    finally:
        notifier.close()
