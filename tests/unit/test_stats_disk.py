"""Writable layer usage on a real tmp tree: hard links once, symlinks not
followed, vanished roots absent."""
from __future__ import annotations

import os

from crio_native.stats.disk import DiskUsage, disk_usage, fs_mountpoint


def _blocks(*paths) -> int:
    return sum(os.lstat(p).st_blocks * 512 for p in paths)


def test_counts_files_dirs_and_root(tmp_path):
    root = tmp_path / "upper"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "f1").write_bytes(os.urandom(10000))
    (root / "a" / "b" / "f2").write_bytes(os.urandom(70000))
    (root / "empty").touch()
    got = disk_usage(root)
    paths = [root, root / "a", root / "a" / "b", root / "a" / "f1", root / "a" / "b" / "f2",
             root / "empty"]
    assert got == DiskUsage(_blocks(*paths), 6)
    assert got.used_bytes >= 80000


def test_hard_links_counted_once(tmp_path):
    root = tmp_path / "upper"
    root.mkdir()
    (root / "big").write_bytes(os.urandom(200000))
    os.link(root / "big", root / "alias")
    (root / "d").mkdir()
    os.link(root / "big", root / "d" / "alias2")
    got = disk_usage(root)
    assert got.inodes_used == 3            # root, big (3 names), d
    assert got.used_bytes == _blocks(root, root / "big", root / "d")


def test_symlinks_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "huge").write_bytes(os.urandom(500000))
    root = tmp_path / "upper"
    root.mkdir()
    (root / "to_dir").symlink_to(outside)
    (root / "to_file").symlink_to(outside / "huge")
    (root / "dangling").symlink_to(tmp_path / "nowhere")
    got = disk_usage(root)
    assert got.inodes_used == 4            # root + three links themselves
    assert got.used_bytes < 500000
    assert got.used_bytes == _blocks(root, root / "to_dir", root / "to_file", root / "dangling")


def test_symlink_root_is_not_followed(tmp_path):
    target = tmp_path / "t"
    target.mkdir()
    (target / "f").write_bytes(os.urandom(50000))
    (tmp_path / "link").symlink_to(target)
    assert disk_usage(tmp_path / "link").inodes_used == 1


def test_missing_root_is_absent(tmp_path):
    assert disk_usage(tmp_path / "gone") is None


def test_single_file_root(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"x" * 5000)
    assert disk_usage(f) == DiskUsage(_blocks(f), 1)


def test_unreadable_subdir_is_skipped_not_fatal(tmp_path):
    root = tmp_path / "upper"
    (root / "locked").mkdir(parents=True)
    (root / "locked" / "x").touch()
    os.chmod(root / "locked", 0)
    try:
        got = disk_usage(root)
    finally:
        os.chmod(root / "locked", 0o755)
    assert got.inodes_used >= 2            # root and locked (root may still read inside)


def test_many_files_fast_enough(tmp_path):
    import time

    root = tmp_path / "upper"
    for i in range(20):
        d = root / f"d{i}"
        d.mkdir(parents=True)
        for j in range(100):
            (d / f"f{j}").write_bytes(b"y")
    start = time.monotonic()
    got = disk_usage(root)
    assert got.inodes_used == 1 + 20 + 2000
    assert time.monotonic() - start < 2.0


def test_fs_mountpoint(tmp_path):
    mp = fs_mountpoint(tmp_path)
    assert os.path.ismount(mp)
    assert str(tmp_path.resolve()).startswith(mp)
    assert fs_mountpoint("/proc/self") == "/proc"
