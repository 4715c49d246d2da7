"""selinux_relabel: the container's file label on a host path, recursively."""
from __future__ import annotations

import os

import pytest

from crio_native.container import prepare
from crio_native.errors import InvalidArgument
from crio_native.linux.selinux import XATTR, relabel
from crio_native.spec.inputs import new_build


def test_relabel_walks_the_tree_without_following_symlinks(tmp_path):
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "d" / "f").write_text("x")
    (tmp_path / "link").symlink_to("/etc")
    seen = []

    def setxattr(path, name, value, follow_symlinks=True):
        assert name == XATTR and value == b"lbl" and follow_symlinks is False
        seen.append(os.path.relpath(path, tmp_path))

    assert relabel(tmp_path, "lbl", setxattr) == 5
    assert sorted(seen) == [".", "d", "d/e", "d/f", "link"]


def test_system_directories_are_refused():
    build = new_build()
    build.relabel.append("/etc/")
    build.linux["mountLabel"] = "system_u:object_r:container_file_t:s0:c1,c2"
    with pytest.raises(InvalidArgument, match="refusing to relabel /etc"):
        prepare.relabel_host_paths(build, selinux_enabled=True)
    prepare.relabel_host_paths(build, selinux_enabled=False)   # no SELinux: nothing to do
