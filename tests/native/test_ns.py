"""crio_native._native.ns as root, each call in a forked, unshared child."""
from __future__ import annotations

import errno
import os
import socket

import pytest

from crio_native._native import ns
from crio_native.errors import NativeError
from tests.native.forked import run_in_child

pytestmark = pytest.mark.root


def ns_inode(path: str) -> int:
    return os.stat(path).st_ino


def mounted_at(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def test_unshare_uts_gives_a_private_hostname():
    host_name = socket.gethostname()
    host_uts = ns_inode("/proc/self/ns/uts")

    def body():
        ns.unshare(ns.CLONE_NEWUTS)
        socket.sethostname("crn-test")
        return ns_inode("/proc/self/ns/uts"), socket.gethostname()

    inode, name = run_in_child(body)
    assert inode != host_uts
    assert name == "crn-test"
    assert socket.gethostname() == host_name


def test_unshare_rejects_bad_flags():
    with pytest.raises(NativeError) as info:
        run_in_child(lambda: ns.unshare(0x1))  # not a namespace flag
    assert info.value.errno == errno.EINVAL
    assert "unshare" in info.value.strerror


def test_pin_join_and_unpin(tmp_path):
    pin = str(tmp_path / "net-pin")

    def body():
        original = os.open("/proc/self/ns/net", os.O_RDONLY)
        original_inode = ns_inode("/proc/self/ns/net")
        ns.unshare(ns.CLONE_NEWNET)
        new_inode = ns_inode("/proc/self/ns/net")
        ns.pin("/proc/self/ns/net", pin)
        pinned = mounted_at(pin) and ns_inode(pin) == new_inode
        ns.join(f"/proc/self/fd/{original}", ns.CLONE_NEWNET)
        back_home = ns_inode("/proc/self/ns/net") == original_inode
        ns.join(pin, ns.CLONE_NEWNET)
        into_pin = ns_inode("/proc/self/ns/net") == new_inode
        ns.unpin(pin)
        gone = not os.path.exists(pin) and not mounted_at(pin)
        ns.unpin(pin)  # idempotent: retried after a crash
        return original_inode != new_inode, pinned, back_home, into_pin, gone

    assert run_in_child(body) == (True, True, True, True, True)


def test_pin_outlives_the_namespace_owner(tmp_path):
    """A pinned netns stays joinable after its last process is gone."""
    pin = str(tmp_path / "net-pin")

    def body():
        r, w = os.pipe()
        go_r, go_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            ns.unshare(ns.CLONE_NEWNET)
            os.write(w, b"x")
            os.read(go_r, 1)
            os._exit(0)
        os.read(r, 1)
        owner_inode = ns_inode(f"/proc/{pid}/ns/net")
        ns.pin(f"/proc/{pid}/ns/net", pin)
        os.write(go_w, b"x")
        os.waitpid(pid, 0)
        ns.join(pin, ns.CLONE_NEWNET)
        joined_inode = ns_inode("/proc/self/ns/net")
        ns.unpin(pin)
        return owner_inode, joined_inode

    owner, joined = run_in_child(body)
    assert owner == joined
    assert owner != ns_inode("/proc/self/ns/net")


def test_join_with_wrong_type_names_the_path():
    def body():
        ns.join("/proc/self/ns/uts", ns.CLONE_NEWNET)

    with pytest.raises(NativeError) as info:
        run_in_child(body)
    assert info.value.errno == errno.EINVAL
    assert "setns `/proc/self/ns/uts`" in info.value.strerror


def test_join_missing_path_is_file_not_found(tmp_path):
    missing = str(tmp_path / "nope")
    with pytest.raises(FileNotFoundError) as info:
        run_in_child(lambda: ns.join(missing))
    assert isinstance(info.value, NativeError)
    assert f"open `{missing}`" in info.value.strerror


def test_failed_pin_leaves_nothing_behind(tmp_path):
    pin = str(tmp_path / "pin")

    def body():
        try:
            ns.pin("/proc/self/ns/no-such-ns", pin)
        except FileNotFoundError as e:
            return "mount" in e.strerror, os.path.exists(pin)
        return None

    assert run_in_child(body) == (True, False)


def test_pin_into_missing_directory(tmp_path):
    target = str(tmp_path / "missing" / "pin")
    with pytest.raises(FileNotFoundError) as info:
        run_in_child(lambda: ns.pin("/proc/self/ns/net", target))
    assert f"open `{target}`" in info.value.strerror
