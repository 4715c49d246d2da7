"""The errors of the SPDY/3.1 layer (spdy.py, spdy_headers.py) and the
GOAWAY status a session error carries.  Apart from spdy.py so the header
codec can raise them without importing the session."""

from __future__ import annotations

import enum


class GoAwayStatus(enum.IntEnum):
    """GOAWAY status codes (draft 3, section 2.6.6)."""

    OK = 0
    PROTOCOL_ERROR = 1
    INTERNAL_ERROR = 2


class SpdyError(Exception):
    """Base class of the SPDY layer's errors."""


class ProtocolError(SpdyError):
    """The peer broke the framing layer: a session error (draft 3, 2.4.1).

    The header-compression state may be lost, so the session cannot go on:
    the caller sends ``go_away(err.status)``, flushes and closes the socket.
    """

    def __init__(self, message: str, status: int = GoAwayStatus.PROTOCOL_ERROR):
        super().__init__(message)
        self.status = status


class StreamClosedError(SpdyError):
    """A local call named a stream that is unknown, reset, or closed for sending.

    The peer may reset a stream at any moment, so code that pumps data into a
    stream should expect this and stop pumping.
    """
