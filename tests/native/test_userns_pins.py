"""The pod's user namespace (KEP-127) as root: crn_ns_create_pinned_userns
pins a mapped user namespace with the pod's other namespaces made inside it,
and crn_mnt_idmapped_tree makes (or refuses) idmapped copies of mounts.  Run
in a forked child with a private mount namespace, so no pin outlives it."""
from __future__ import annotations

import errno
import fcntl
import os
import subprocess

import pytest

from crio_native._native import mount, ns
from tests.native.forked import run_in_child

pytestmark = pytest.mark.root

NS_GET_USERNS = 0xB701          # linux/nsfs.h: _IO(0xb7, 0x1)


def test_pinned_user_namespace_owns_the_pods_other_namespaces(tmp_path):
    def body():
        pins = {k: str(tmp_path / k) for k in ("user", "net", "ipc", "uts")}
        ns.create_pinned_userns(pins, "0 393216 65536\n", "0 458752 65536\n")
        inodes = {k: os.stat(p).st_ino for k, p in pins.items()}
        owners = {}
        for kind in ("net", "ipc", "uts"):
            fd = os.open(pins[kind], os.O_RDONLY)
            owner = fcntl.ioctl(fd, NS_GET_USERNS)
            owners[kind] = os.fstat(owner).st_ino
            os.close(owner)
            os.close(fd)
        maps = subprocess.run(["nsenter", f"--user={pins['user']}", "sh", "-c",
                               "cat /proc/self/uid_map /proc/self/gid_map"],
                              capture_output=True, text=True, check=True).stdout.split()
        for p in pins.values():
            ns.unpin(p)
        return inodes, owners, maps, [os.path.exists(p) for p in pins.values()]

    inodes, owners, maps, left = run_in_child(body)
    assert inodes["user"] != os.stat("/proc/self/ns/user").st_ino
    assert owners == {"net": inodes["user"], "ipc": inodes["user"], "uts": inodes["user"]}
    assert maps == ["0", "393216", "65536", "0", "458752", "65536"]
    assert left == [False] * 4


def test_a_bad_map_leaves_no_pin(tmp_path):
    def body():
        pins = {"user": str(tmp_path / "user"), "net": str(tmp_path / "net")}
        try:
            ns.create_pinned_userns(pins, "1 2 3 4 junk\n", "0 1 1\n")
        except OSError as e:
            return e.errno, sorted(os.listdir(tmp_path))
        return None, []

    code, left = run_in_child(body)
    assert code == errno.EINVAL and left == []


def test_idmapped_tree_where_the_filesystem_allows_it(tmp_path):
    def body():
        pin = str(tmp_path / "user")
        ns.create_pinned_userns({"user": pin}, "0 393216 65536\n", "0 393216 65536\n")
        fd = mount.idmapped_tree(str(tmp_path), pin)
        owner = os.stat(f"/proc/self/fd/{fd}/user").st_uid   # our pin file, uid 0 on disk
        os.close(fd)
        try:
            mount.idmapped_tree("/proc", pin)
            refused = None
        except OSError as e:
            refused = (e.errno, str(e))
        ns.unpin(pin)
        return owner, refused

    owner, refused = run_in_child(body)
    assert owner == 393216
    assert refused[0] == errno.EINVAL and "mount_setattr MOUNT_ATTR_IDMAP" in refused[1] \
        and "/proc" in refused[1]
