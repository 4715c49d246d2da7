"""File-like adapters for the pull pipeline: HTTP chunks → hashed compressed
stream → decompressor → hashed tar stream, each digest checked at the end."""
from __future__ import annotations

import hashlib
import io
import os
import sys
import zlib
from typing import BinaryIO, Iterator, cast

import zstandard
from isal import igzip, isal_zlib

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
DRAIN_CHUNK = 1024 * 1024
# Decompressed bytes are pulled in pieces this large: every C call below
# (inflate, sha256, write) then runs long without the GIL, so the layers
# pulled at once overlap on the cores instead of trading the GIL.
BLOCK = 1024 * 1024
# What a corrupt compressed stream raises while it is read (gzip's
# BadGzipFile is an OSError; a truncated one ends in EOFError).
DECOMPRESS_ERRORS: tuple[type[BaseException], ...] = (
    OSError, EOFError, ValueError, zlib.error, cast(type[BaseException], isal_zlib.error),
    zstandard.ZstdError)


class ChunkReader:
    """A read()-able view of an iterator of byte chunks.  A read hands back
    at most one chunk and never copies a chunk it returns whole."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._buf = b""

    def peek(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = next(self._chunks, b"")
            if not chunk:
                break
            self._buf += chunk
        return self._buf[:n]

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            data = self._buf + b"".join(self._chunks)
            self._buf = b""
            return data
        if not self._buf:
            self._buf = next(self._chunks, b"")
        if len(self._buf) <= n:
            data, self._buf = self._buf, b""
            return data
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def readable(self) -> bool:
        return True


class HashingReader:
    """Counts and hashes every byte read through it."""

    def __init__(self, source, algorithm: str = "sha256"):
        self._source = source
        self.algorithm = algorithm
        self._hash = hashlib.new(algorithm)
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._source.read(n)
        self._hash.update(data)
        self.size += len(data)
        return data

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[:len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while self.read(DRAIN_CHUNK):
            pass

    @property
    def digest(self) -> str:
        return f"{self.algorithm}:{self._hash.hexdigest()}"


class TarStream:
    """The decompressed layer as tarfile reads it (read, tell, and a seek
    that only goes forward, by reading), hashed as it passes for the
    diffID.  It pulls BLOCK-sized pieces from the decompressor and copy_to()
    writes a file's data straight from them, where tarfile's stream mode
    would cut everything into 10 KiB reads."""

    def __init__(self, source, algorithm: str = "sha256"):
        self._source = source
        self.algorithm = algorithm
        self._hash = hashlib.new(algorithm)
        self._block = memoryview(b"")
        self._at = 0            # read position inside _block
        self.size = 0           # bytes taken from the source (all hashed)

    def _fill(self) -> bool:
        """The next block; False at the end of the source."""
        data = self._source.read(BLOCK)
        if not data:
            return False
        self._hash.update(data)
        self.size += len(data)
        self._block, self._at = memoryview(data), 0
        return True

    def _piece(self, n: int) -> memoryview:
        """Up to n bytes at the read position, without copying; empty at the end."""
        if self._at == len(self._block) and not self._fill():
            return memoryview(b"")
        return self._block[self._at:self._at + n]

    def tell(self) -> int:
        return self.size - (len(self._block) - self._at)

    def read(self, n: int = -1) -> bytes:
        want = sys.maxsize if n is None or n < 0 else n
        parts = []
        while want > 0 and (piece := self._piece(want)):
            self._at += len(piece)
            want -= len(piece)
            parts.append(piece)
        return b"".join(parts)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self.tell()
        elif whence != io.SEEK_SET:
            raise io.UnsupportedOperation("a layer stream seeks only forward")
        skip = offset - self.tell()
        if skip < 0:
            raise io.UnsupportedOperation("a layer stream seeks only forward")
        while skip > 0 and (piece := self._piece(skip)):
            self._at += len(piece)
            skip -= len(piece)
        return self.tell()

    def copy_to(self, fd: int, n: int) -> int:
        """Write the next n bytes to fd; returns how many there were."""
        done = 0
        while done < n and (piece := self._piece(n - done)):
            written = os.write(fd, piece)
            self._at += written
            done += written
        return done

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def drain(self) -> None:
        """Read to the end, so the digest covers what follows the archive."""
        self._at = len(self._block)
        while self._fill():
            self._at = len(self._block)

    @property
    def digest(self) -> str:
        return f"{self.algorithm}:{self._hash.hexdigest()}"


def compression_of(head: bytes) -> str:
    """gzip, zstd or none, from a stream's first bytes (media types lie more often)."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


def decompressed(source, compression: str) -> BinaryIO:
    """A reader of the decompressed stream.  gzip goes through ISA-L's
    inflate (the `isal` package's igzip, a drop-in GzipFile), which
    decompresses about 2.4x faster than the standard zlib here."""
    if compression == "gzip":
        return cast(BinaryIO, igzip.IGzipFile(fileobj=source, mode="rb"))
    if compression == "zstd":
        return zstandard.ZstdDecompressor().stream_reader(source, read_size=BLOCK,
                                                           read_across_frames=True)
    return source
