"""The events a SPDY/3.1 session reports: what
``SpdyConnection.receive_data`` (spdy.py) returns for the caller to act on."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StreamOpened:
    """The peer sent SYN_STREAM.  Header names are lower case; a header with
    several values carries them joined by NUL, as on the wire."""

    stream_id: int
    headers: dict[str, str]
    fin: bool
    associated_id: int = 0
    priority: int = 0
    unidirectional: bool = False


@dataclass(frozen=True)
class StreamReplied:
    """The peer accepted a stream we opened (SYN_REPLY)."""

    stream_id: int
    headers: dict[str, str]
    fin: bool


@dataclass(frozen=True)
class HeadersReceived:
    stream_id: int
    headers: dict[str, str]
    fin: bool


@dataclass(frozen=True)
class DataReceived:
    stream_id: int
    data: bytes
    fin: bool


@dataclass(frozen=True)
class StreamReset:
    """A stream ended abnormally.  ``remote`` is False when this side reset it
    in answer to a stream error (the RST_STREAM is already queued)."""

    stream_id: int
    status_code: int
    remote: bool = True


@dataclass(frozen=True)
class PingReceived:
    """The peer pinged us; the echo is already queued."""

    ping_id: int


@dataclass(frozen=True)
class PingAcknowledged:
    """The peer echoed a ping we sent with :meth:`SpdyConnection.ping`."""

    ping_id: int


@dataclass(frozen=True)
class GoAwayReceived:
    last_good_stream_id: int
    status: int


@dataclass(frozen=True)
class SettingsReceived:
    settings: dict[int, int]


@dataclass(frozen=True)
class WindowUpdated:
    """The peer widened a send window (``stream_id`` 0: the session window)."""

    stream_id: int
    delta: int


Event = (StreamOpened | StreamReplied | HeadersReceived | DataReceived
         | StreamReset | PingReceived | PingAcknowledged | GoAwayReceived
         | SettingsReceived | WindowUpdated)
