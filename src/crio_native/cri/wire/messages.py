"""gRPC's length-prefixed messages: a 1-byte compressed flag, a 4-byte
big-endian length, the bytes (PROTOCOL-HTTP2.md, "Length-Prefixed-Message")."""
from __future__ import annotations

import struct
import zlib

from crio_native.cri.wire.status import StatusCode

PREFIX = struct.Struct(">BI")
ENCODINGS = ("identity", "gzip")     # what we accept in grpc-encoding
ACCEPT_ENCODING = ",".join(ENCODINGS)


class WireError(Exception):
    """A call the wire layer answers itself, with `code` and this message."""

    def __init__(self, code: StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def frame(payload: bytes) -> bytes:
    """One uncompressed message, prefixed."""
    return PREFIX.pack(0, len(payload)) + payload


def received_too_large(size: int, limit: int) -> WireError:
    # grpcio's wording, so clients see the same text as before
    return WireError(StatusCode.RESOURCE_EXHAUSTED,
                     f"Received message larger than max ({size} vs. {limit})")


def sent_too_large(size: int, limit: int) -> WireError:
    return WireError(StatusCode.RESOURCE_EXHAUSTED,
                     f"Sent message larger than max ({size} vs. {limit})")


def check_prefix(buffer: bytes | bytearray, limit: int) -> None:
    """Fail as soon as the prefix announces a message over `limit` (before
    its bytes arrive) or a second message follows a first."""
    if len(buffer) >= PREFIX.size:
        _, length = PREFIX.unpack_from(buffer)
        if length > limit:
            raise received_too_large(length, limit)
        if len(buffer) > PREFIX.size + length:
            raise WireError(StatusCode.UNIMPLEMENTED,
                            "more than one request message: CRI has no client streaming")


def request_message(buffer: bytes | bytearray, encoding: str, limit: int) -> bytes:
    """The single request message of a finished request body, decompressed."""
    if len(buffer) < PREFIX.size:
        raise WireError(StatusCode.INTERNAL, "request has no message")
    flag, length = PREFIX.unpack_from(buffer)
    if length > limit:
        raise received_too_large(length, limit)
    if len(buffer) != PREFIX.size + length:
        raise WireError(StatusCode.INTERNAL,
                        f"request message of {length} bytes has {len(buffer) - PREFIX.size}")
    payload = bytes(buffer[PREFIX.size:])
    if flag == 0:
        return payload
    if flag != 1:
        raise WireError(StatusCode.INTERNAL, f"bad compressed flag {flag}")
    if encoding != "gzip":
        raise WireError(StatusCode.INTERNAL,
                        "compressed message without a grpc-encoding to decode it")
    return gunzip(payload, limit)


def gunzip(payload: bytes, limit: int) -> bytes:
    """`payload` inflated, never past `limit`+1 bytes (a small gzip bomb
    must not take the daemon's memory)."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(payload, limit + 1)
    except zlib.error as e:
        raise WireError(StatusCode.INTERNAL, f"cannot decompress the request: {e}") from e
    if len(out) > limit:
        raise received_too_large(len(out), limit)   # at least that
    if not inflater.eof:
        raise WireError(StatusCode.INTERNAL, "cannot decompress the request: truncated gzip")
    return out
