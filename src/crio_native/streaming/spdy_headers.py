"""SPDY/3 header blocks: the name/value block format and its zlib stream.

A session compresses every header block it sends with one deflate context
and inflates every block it receives with one inflate context, both primed
with the SPDY/3 dictionary (draft 3, section 2.6.10); a block lost or
skipped breaks every later one, so a :class:`HeaderCodec` lives exactly as
long as its session.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Mapping

from crio_native.streaming.spdy_dictionary import SPDY3_DICTIONARY
from crio_native.streaming.spdy_errors import ProtocolError

# Decompressed size limit of one header block: a guard against zlib bombs.
MAX_HEADER_BLOCK = 1024 * 1024

HeaderValue = str | Iterable[str]


def encode_header_block(headers: Mapping[str, HeaderValue]) -> bytes:
    """Serialize headers as an uncompressed SPDY/3 name/value block.

    Names are lower-cased (the spec and Go's framer require it); a value that
    is a list or tuple is sent as its items joined by NUL.
    """
    out = [struct.pack("!I", len(headers))]
    seen: set[str] = set()
    for name, value in headers.items():
        lname = name.lower()
        if not lname or "\0" in lname or lname in seen:
            raise ValueError(f"SPDY header name {name!r}: empty, NUL or duplicate")
        seen.add(lname)
        if not isinstance(value, str):
            value = "\0".join(value)
        raw_name = lname.encode("ascii")
        raw_value = value.encode("utf-8", "surrogateescape")
        out.append(struct.pack("!I", len(raw_name)) + raw_name)
        out.append(struct.pack("!I", len(raw_value)) + raw_value)
    return b"".join(out)


def decode_header_block(block: bytes) -> dict[str, str]:
    """Parse an uncompressed name/value block; raises ProtocolError."""

    def take(pos: int, n: int) -> bytes:
        if pos + n > len(block):
            raise ProtocolError("SPDY header block truncated")
        return block[pos:pos + n]

    (count,) = struct.unpack("!I", take(0, 4))
    pos = 4
    headers: dict[str, str] = {}
    for _ in range(count):
        (nlen,) = struct.unpack("!I", take(pos, 4))
        raw_name = take(pos + 4, nlen)
        pos += 4 + nlen
        (vlen,) = struct.unpack("!I", take(pos, 4))
        raw_value = take(pos + 4, vlen)
        pos += 4 + vlen
        name = raw_name.decode("latin-1")
        if not name or "\0" in name or name != name.lower():
            raise ProtocolError(f"SPDY header name {name!r}: empty, NUL or upper case")
        if name in headers:
            raise ProtocolError(f"SPDY header {name!r} sent twice")
        headers[name] = raw_value.decode("utf-8", "surrogateescape")
    if pos != len(block):
        raise ProtocolError("SPDY header block has trailing bytes")
    return headers


class HeaderCodec:
    """One session's two zlib contexts: compress what it sends, inflate
    what it receives.  Not thread-safe, like the session that owns it."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED,
                                         11, 4, zlib.Z_DEFAULT_STRATEGY, SPDY3_DICTIONARY)
        self._inflate = zlib.decompressobj(15, zdict=SPDY3_DICTIONARY)

    def compress(self, headers: Mapping[str, HeaderValue]) -> bytes:
        block = encode_header_block(headers)
        return self._deflate.compress(block) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def decompress(self, data: bytes) -> dict[str, str]:
        """Inflate and parse one block; raises ProtocolError.  Call it for
        every block received, even one whose frame is then refused: the
        inflate context must see them all."""
        try:
            block = self._inflate.decompress(data, MAX_HEADER_BLOCK + 1)
        except zlib.error as err:
            raise ProtocolError(f"SPDY header block does not inflate: {err}") from err
        if self._inflate.unconsumed_tail or len(block) > MAX_HEADER_BLOCK:
            raise ProtocolError("SPDY header block larger than 1 MiB")
        return decode_header_block(block)
