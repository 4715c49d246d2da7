"""gRPC's status codes and the header values of the gRPC wire protocol
(grpc/grpc doc/PROTOCOL-HTTP2.md): grpc-message percent-encoding and
grpc-timeout.  Our own, so the daemon serves CRI without importing grpc."""
from __future__ import annotations

import enum


class StatusCode(enum.IntEnum):
    """gRPC's status codes, with gRPC's numbers (what grpc-status carries)."""
    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


# Printable ASCII but '%' goes as is; everything else (UTF-8 bytes) as %XX.
_PLAIN = frozenset(range(0x20, 0x7F)) - {ord("%")}


def encode_message(message: str) -> str:
    """grpc-message's value: the UTF-8 bytes of `message`, percent-encoded."""
    raw = message.encode("utf-8", errors="replace")
    if all(b in _PLAIN for b in raw):
        return message
    return "".join(chr(b) if b in _PLAIN else f"%{b:02X}" for b in raw)


def decode_message(value: str) -> str:
    """The inverse of encode_message; a malformed %XX is kept as it is (the
    spec asks receivers not to fail on it)."""
    if "%" not in value:
        return value
    out = bytearray()
    raw = value.encode("ascii", errors="replace")
    i = 0
    while i < len(raw):
        if raw[i] == ord("%") and i + 2 < len(raw) and _is_hex(raw[i + 1:i + 3]):
            out.append(int(raw[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return out.decode("utf-8", errors="replace")


def _is_hex(pair: bytes) -> bool:
    return len(pair) == 2 and all(chr(c) in "0123456789abcdefABCDEF" for c in pair)


_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def parse_timeout(value: str) -> float:
    """Seconds of a grpc-timeout value ("1S", "250m": at most 8 digits and
    a unit); ValueError if it is not one."""
    digits, unit = value[:-1], value[-1:]
    if not (1 <= len(digits) <= 8 and digits.isdigit() and digits.isascii()
            and unit in _TIMEOUT_UNITS):
        raise ValueError(f"bad grpc-timeout {value!r}")
    return int(digits) * _TIMEOUT_UNITS[unit]
