"""The monitor's attach protocol, mirrored from src/_native/monitor/protocol.h
(a unit test keeps the two in step).

The attach socket is AF_UNIX SOCK_SEQPACKET: one packet is one message, whose
first byte is the type and the rest the payload; integers are big-endian."""
from __future__ import annotations

import struct

ATTACH_SOCKET_NAME = "attach"
MSG_MAX = 32768

# client -> monitor
MSG_ATTACH = 0x01       # u8 flags; replied to
MSG_STDIN = 0x02        # bytes for stdin; no reply
MSG_CLOSE_STDIN = 0x03  # replied to
MSG_RESIZE = 0x04       # u16 rows, u16 cols; replied to
MSG_REOPEN_LOG = 0x05   # replied to

# monitor -> client
MSG_STDOUT = 0x81
MSG_STDERR = 0x82
MSG_EXIT = 0x83         # i32 exit code; the last packet
MSG_REPLY = 0x84        # u8 request type, i32 errno

ATTACH_STDOUT = 0x01
ATTACH_STDERR = 0x02
ATTACH_STDIN = 0x04

_I32 = struct.Struct(">i")
_REPLY = struct.Struct(">Bi")
_RESIZE = struct.Struct(">HH")


def encode_attach(flags: int) -> bytes:
    return bytes((MSG_ATTACH, flags))


def encode_resize(rows: int, cols: int) -> bytes:
    return bytes((MSG_RESIZE,)) + _RESIZE.pack(rows, cols)


def decode_reply(payload: bytes) -> tuple[int, int]:
    """(request type, errno) of a MSG_REPLY payload."""
    return _REPLY.unpack(payload)


def decode_exit(payload: bytes) -> int:
    return _I32.unpack(payload)[0]
