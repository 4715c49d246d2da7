"""File-like adapters for the pull pipeline: HTTP chunks → hashed compressed
stream → decompressor → hashed tar stream, each digest checked at the end."""
from __future__ import annotations

import hashlib
import zlib
from typing import BinaryIO, Iterator, cast

import zstandard
from isal import igzip, isal_zlib

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
DRAIN_CHUNK = 1024 * 1024
# What a corrupt compressed stream raises while it is read (gzip's
# BadGzipFile is an OSError; a truncated one ends in EOFError).
DECOMPRESS_ERRORS: tuple[type[BaseException], ...] = (
    OSError, EOFError, ValueError, zlib.error, cast(type[BaseException], isal_zlib.error),
    zstandard.ZstdError)


class ChunkReader:
    """A read()-able view of an iterator of byte chunks."""

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
        return zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True)
    return source
