"""Layer unpacking: metadata kept, whiteouts converted for overlayfs, and
hostile entries refused with the image, layer and entry named."""
from __future__ import annotations

import io
import os
import stat
import tarfile

import pytest

from crio_native.image.errors import ContentMismatch, UnsafeLayer
from crio_native.storage import streams
from crio_native.storage.unpack import unpack_layer
from tests.fixtures.oci_builder import (Entry, chardev, directory, file, hardlink, layer_tar,
                                        opaque, symlink, whiteout)

pytestmark = pytest.mark.root
WHAT = "image test/x:1 layer 0 (sha256:abc)"


def unpack(tmp_path, entries):
    dest = tmp_path / "diff"
    dest.mkdir(exist_ok=True)
    unpack_layer(io.BytesIO(layer_tar(entries)), str(dest), WHAT)
    return dest


def test_metadata_is_preserved(tmp_path):
    dest = unpack(tmp_path, [
        directory("srv", 0o750, uid=7, gid=8, mtime=1_600_000_000),
        file("srv/data", "hello", 0o4755, uid=1000, gid=1001, mtime=1_500_000_000,
             xattrs={"user.note": "kept"}),
        hardlink("srv/again", "srv/data"),
        symlink("srv/link", "/etc/passwd", uid=5, gid=6),
        chardev("dev/null", 1, 3),
        Entry("run/fifo", "fifo", mode=0o640),
    ])
    data = os.lstat(dest / "srv/data")
    assert (data.st_uid, data.st_gid, stat.S_IMODE(data.st_mode)) == (1000, 1001, 0o4755)
    assert data.st_mtime == 1_500_000_000 and data.st_nlink == 2
    assert os.getxattr(dest / "srv/data", "user.note") == b"kept"
    assert os.lstat(dest / "srv/again").st_ino == data.st_ino
    srv = os.lstat(dest / "srv")
    assert (srv.st_uid, srv.st_gid, stat.S_IMODE(srv.st_mode), srv.st_mtime) == (
        7, 8, 0o750, 1_600_000_000)
    link = os.lstat(dest / "srv/link")
    assert stat.S_ISLNK(link.st_mode) and (link.st_uid, link.st_gid) == (5, 6)
    assert os.readlink(dest / "srv/link") == "/etc/passwd"
    null = os.lstat(dest / "dev/null")
    assert stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1 and os.minor(null.st_rdev) == 3
    assert stat.S_ISFIFO(os.lstat(dest / "run/fifo").st_mode)


def test_whiteouts_become_overlay_whiteouts(tmp_path):
    dest = unpack(tmp_path, [directory("etc"), whiteout("etc/gone"), opaque("var/cache"),
                             directory("var/cache"), file("var/cache/new", "x")])
    gone = os.lstat(dest / "etc/gone")
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == 0
    assert (gone.st_uid, gone.st_gid) == (0, 0)
    assert not (dest / "etc/.wh.gone").exists()
    assert os.getxattr(dest / "var/cache", "trusted.overlay.opaque") == b"y"
    assert not (dest / "var/cache/.wh..wh..opq").exists()
    assert (dest / "var/cache/new").read_text() == "x"


def test_later_entry_replaces_earlier(tmp_path):
    dest = unpack(tmp_path, [file("a", "one"), file("a", "two"), symlink("b", "a"), file("b", "f")])
    assert (dest / "a").read_text() == "two"
    assert not os.path.islink(dest / "b")


@pytest.mark.parametrize("entries, fragment", [
    ([file("../escape", "x")], "'..'"),
    ([file("a/../../escape", "x")], "'..'"),
    ([file("/etc/abs", "x")], "absolute path"),
    ([symlink("out", "/tmp"), file("out/pwned", "x")], "through symlink 'out'"),
    ([symlink("up", "../../.."), file("up/pwned", "x")], "through symlink 'up'"),
    ([symlink("d", "/"), directory("d/x")], "through symlink 'd'"),
    ([hardlink("h", "../../etc/passwd")], "'..'"),
    ([hardlink("h", "/etc/passwd")], "absolute path"),
    ([hardlink("h", "nothere")], "not in this layer"),
    ([symlink("s", "/etc"), hardlink("h", "s/passwd")], "through symlink 's'"),
    ([file("f", "x", xattrs={"trusted.overlay.opaque": "y"})], "overlay-private"),
    # whiteouts of the directory itself or of its parent (issue 17: these
    # deleted the staging directory, then failed with an ENOENT naming nothing)
    ([file("keep", "k"), file(".wh..")], "whiteout of '.'"),
    ([file("keep", "k"), file(".wh...")], "whiteout of '..'"),
    ([file("keep", "k"), file(".wh.")], "whiteout of ''"),
    ([directory("a"), file("a/keep", "k"), file("a/.wh..")], "whiteout of '.'"),
    ([directory("a"), file("a/keep", "k"), file("a/.wh...")], "whiteout of '..'"),
    ([directory("a"), file("a/.wh..", mode=0o644)], "whiteout of '.'"),
])
def test_hostile_entries_are_refused(tmp_path, entries, fragment):
    victim = tmp_path / "outside"
    victim.write_text("v")
    with pytest.raises(UnsafeLayer) as info:
        unpack(tmp_path, entries)
    message = str(info.value)
    assert message.startswith(WHAT) and "entry '" in message and fragment in message
    assert victim.read_text() == "v" and not (tmp_path / "escape").exists()
    assert not os.path.exists("/tmp/pwned")
    # nothing above the layer was cleared, and the layer directory itself is left
    # for its owner (the store's staging) to remove
    assert (tmp_path / "diff").is_dir()
    for kept in (e.name for e in entries if e.name.endswith("keep")):
        assert (tmp_path / "diff" / kept).read_text() == "k"


def pax_tar(name: str, kind: bytes, pax: dict[str, str]) -> bytes:
    """One entry whose PAX headers carry what a ustar field cannot (a NUL)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.pax_headers = pax
        tar.addfile(info, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)
    return out.getvalue()


@pytest.mark.parametrize("kind, pax, fragment", [
    (tarfile.REGTYPE, {"path": "a\0b"}, "contains a NUL byte"),
    (tarfile.SYMTYPE, {"linkpath": "/etc\0x"}, "symlink target contains a NUL byte"),
    (tarfile.LNKTYPE, {"linkpath": "a\0b"}, "contains a NUL byte"),
], ids=["name", "symlink-target", "hardlink-target"])
def test_nul_bytes_in_names_are_refused(tmp_path, kind, pax, fragment):
    dest = tmp_path / "diff"
    dest.mkdir()
    with pytest.raises(UnsafeLayer) as info:
        unpack_layer(io.BytesIO(pax_tar("x", kind, pax)), str(dest), WHAT)
    message = str(info.value)
    assert message.startswith(WHAT) and "entry '" in message and fragment in message
    assert os.listdir(dest) == []


@pytest.mark.parametrize("block", [1000, 4096, 1 << 20])
def test_file_data_crossing_block_boundaries(tmp_path, monkeypatch, block):
    """File data is copied from the decompressor's blocks straight to the
    files: sizes around the 512-byte records and across blocks land intact,
    with headers (PAX ones included) read in between."""
    monkeypatch.setattr(streams, "BLOCK", block)
    sizes = [0, 1, 511, 512, 513, 999, 1000, 1001, 4096, 70_000]
    datas = {f"d/f{n}": os.urandom(n) for n in sizes}
    entries = [file(name, data) for name, data in datas.items()]
    entries.append(file("d/" + "long" * 40, b"pax name", xattrs={"user.k": "v"}))
    dest = unpack(tmp_path, entries)
    for name, data in datas.items():
        assert (dest / name).read_bytes() == data, name
    assert (dest / ("d/" + "long" * 40)).read_bytes() == b"pax name"


def test_truncated_file_data_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(streams, "BLOCK", 4096)
    tar = layer_tar([file("big", os.urandom(50_000)), file("after", "x")])
    dest = tmp_path / "diff"
    dest.mkdir()
    with pytest.raises(ContentMismatch, match="not a valid tar stream"):
        unpack_layer(io.BytesIO(tar[:30_000]), str(dest), WHAT)
