"""Unpack one layer tar stream into an empty directory, safely.

Every entry name is checked (no '..', no absolute paths, no NUL, no whiteout
of '.' or '..') and every parent directory is lstat'ed inside the layer, so
nothing is written through a symlink; hardlinks must name an entry already
in this layer.  OCI whiteouts become what overlayfs understands: `.wh.x` →
a 0:0 character device `x`, `.wh..wh..opq` → xattr trusted.overlay.opaque=y
on the directory.  Owners, modes, mtimes, xattrs, hardlinks, symlinks and
device nodes are kept."""
from __future__ import annotations

import os
import shutil
import stat
import tarfile
from typing import BinaryIO, cast

from crio_native.image.errors import ContentMismatch, UnsafeLayer
from crio_native.storage.streams import TarStream

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
XATTR_PAX_PREFIX = "SCHILY.xattr."
COPY_CHUNK = 1024 * 1024


class Unpacker:
    """Writes one layer's entries under `dest`; `what` names image and layer in errors."""

    def __init__(self, dest: str, what: str):
        self.dest = dest
        self.what = what
        self.dir_times: list[tuple[str, int]] = []
        self.bytes_written = 0
        self.stream: TarStream   # set by unpack()

    def refuse(self, name: str, why: str) -> UnsafeLayer:
        return UnsafeLayer(f"{self.what}: entry {name!r}: {why}")

    # ---- names and parents -------------------------------------------------

    def clean_name(self, name: str) -> str:
        """The entry's path relative to the layer root; '' for the root itself."""
        if "\0" in name:
            raise self.refuse(name, "contains a NUL byte")
        if name.startswith("/"):
            raise self.refuse(name, "absolute path")
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise self.refuse(name, "path contains '..'")
        return "/".join(parts)

    def prepare_parents(self, name: str, rel: str) -> None:
        """Make missing parent directories; refuse to pass through a symlink."""
        path = self.dest
        for part in rel.split("/")[:-1]:
            path = os.path.join(path, part)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                os.mkdir(path, 0o755)
                continue
            if stat.S_ISLNK(st.st_mode):
                raise self.refuse(name, f"would be written through symlink "
                                        f"{os.path.relpath(path, self.dest)!r}")
            if not stat.S_ISDIR(st.st_mode):
                raise self.refuse(name, f"parent {os.path.relpath(path, self.dest)!r} "
                                        f"is not a directory")

    def clear(self, path: str, keep_dir: bool) -> None:
        """Remove whatever an earlier entry of this layer left at `path`."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if not keep_dir:
                shutil.rmtree(path)
        else:
            os.unlink(path)

    # ---- entries -----------------------------------------------------------

    def unpack(self, stream: TarStream) -> None:
        self.stream = stream
        try:
            # mode "r" over a forward-only stream: tarfile reads headers
            # through it, write_file() takes the data from it in big blocks
            with tarfile.TarFile(fileobj=cast(BinaryIO, stream), mode="r") as tar:
                for member in tar:
                    self.entry(tar, member)
        except tarfile.TarError as e:
            raise ContentMismatch(f"{self.what}: not a valid tar stream: {e}") from e
        for path, mtime_ns in reversed(self.dir_times):
            os.utime(path, ns=(mtime_ns, mtime_ns), follow_symlinks=False)

    def entry(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        rel = self.clean_name(member.name)
        if not rel:
            return
        self.prepare_parents(member.name, rel)
        parent, base = os.path.split(rel)
        if base == OPAQUE_MARKER:
            self.mark_opaque(member.name, parent)
        elif base.startswith(WHITEOUT_PREFIX):
            self.whiteout(member.name, parent, base[len(WHITEOUT_PREFIX):])
        else:
            path = os.path.join(self.dest, rel)
            self.clear(path, keep_dir=member.isdir())
            self.create(tar, member, path)
            self.apply_metadata(member, path)

    def create(self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
        if member.isdir():
            if not os.path.isdir(path):
                os.mkdir(path, 0o700)
        elif member.isreg():
            self.write_file(tar, member, path)
        elif member.issym():
            if "\0" in member.linkname:
                raise self.refuse(member.name, "symlink target contains a NUL byte")
            os.symlink(member.linkname, path)
        elif member.islnk():
            self.hardlink(member, path)
        elif member.ischr() or member.isblk():
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            os.mknod(path, kind | 0o600, os.makedev(member.devmajor, member.devminor))
        elif member.isfifo():
            os.mkfifo(path, 0o600)
        else:
            raise self.refuse(member.name, f"unsupported tar entry type {member.type!r}")

    def write_file(self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            if member.issparse():
                src = tar.extractfile(member)
                assert src is not None   # a regular file's member
                shutil.copyfileobj(src, out, COPY_CHUNK)
            else:
                self.stream.seek(member.offset_data)
                if self.stream.copy_to(fd, member.size) != member.size:
                    raise tarfile.ReadError("unexpected end of data")
        self.bytes_written += member.size

    def hardlink(self, member: tarfile.TarInfo, path: str) -> None:
        target_rel = self.clean_name(member.linkname)
        if not target_rel:
            raise self.refuse(member.name, "hardlink to the layer root")
        self.prepare_parents(member.name, target_rel)
        target = os.path.join(self.dest, target_rel)
        if not os.path.lexists(target):
            raise self.refuse(member.name, f"hardlink target {member.linkname!r} is not in "
                                           f"this layer")
        os.link(target, path, follow_symlinks=False)

    def apply_metadata(self, member: tarfile.TarInfo, path: str) -> None:
        if member.islnk():
            return  # shares the target's inode and metadata
        os.chown(path, member.uid, member.gid, follow_symlinks=False)
        if not member.issym():
            os.chmod(path, member.mode & 0o7777)
        for key, value in member.pax_headers.items():
            if key.startswith(XATTR_PAX_PREFIX):
                self.set_xattr(member, path, key[len(XATTR_PAX_PREFIX):], value)
        mtime_ns = int(member.mtime * 1_000_000_000)
        if member.isdir():
            self.dir_times.append((path, mtime_ns))
        else:
            os.utime(path, ns=(mtime_ns, mtime_ns), follow_symlinks=False)

    def set_xattr(self, member: tarfile.TarInfo, path: str, name: str, value: str) -> None:
        if name.startswith("trusted.overlay."):
            raise self.refuse(member.name, f"sets overlay-private xattr {name!r}")
        raw = value.encode("utf-8", "surrogateescape")
        os.setxattr(path, name, raw, follow_symlinks=False)

    # ---- whiteouts ---------------------------------------------------------

    def whiteout(self, name: str, parent_rel: str, target: str) -> None:
        # `.wh.` + "", "." or ".." would name the directory itself or its
        # parent: clearing it would delete the layer's own staging
        # directory (or one above it)
        if target in ("", ".", ".."):
            raise self.refuse(name, f"whiteout of {target!r} names no entry")
        path = os.path.join(self.dest, parent_rel, target)
        self.clear(path, keep_dir=False)
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))
        os.chown(path, 0, 0, follow_symlinks=False)

    def mark_opaque(self, name: str, parent_rel: str) -> None:
        path = os.path.join(self.dest, parent_rel) if parent_rel else self.dest
        if parent_rel and not os.path.isdir(path):
            self.clear(path, keep_dir=False)
            os.mkdir(path, 0o755)
        os.setxattr(path, OPAQUE_XATTR, b"y", follow_symlinks=False)


def unpack_layer(stream: BinaryIO | TarStream, dest: str, what: str) -> int:
    """Unpack a decompressed tar stream into `dest`; returns the bytes of file data."""
    unpacker = Unpacker(dest, what)
    unpacker.unpack(stream if isinstance(stream, TarStream) else TarStream(stream))
    return unpacker.bytes_written
