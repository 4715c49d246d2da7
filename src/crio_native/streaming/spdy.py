"""A sans-IO SPDY/3.1 session: bytes in, events out; calls in, bytes out.

This is the framing layer the kubelet's and crictl's streaming clients speak
(moby/spdystream over an HTTP ``Upgrade: SPDY/3.1``).  It owns no socket and
no thread: feed what the socket read to :meth:`SpdyConnection.receive_data`,
act on the returned events, and write :meth:`SpdyConnection.data_to_send`
back.  It is not thread-safe; drive one connection from one thread or loop.

Wire facts follow the SPDY/3 draft and its 3.1 revision (session-level flow
control, WINDOW_UPDATE on stream 0).  docs/streaming.md ("SPDY/3.1 framing")
describes the choices made where the spec leaves room.  The header-block
codec is in spdy_headers.py, the events in spdy_events.py and the errors in
spdy_errors.py; all are re-exported here.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Mapping

from crio_native.streaming.spdy_errors import (GoAwayStatus, ProtocolError, SpdyError,
                                               StreamClosedError)
from crio_native.streaming.spdy_events import (DataReceived, Event, GoAwayReceived,
                                               HeadersReceived, PingAcknowledged, PingReceived,
                                               SettingsReceived, StreamOpened, StreamReplied,
                                               StreamReset, WindowUpdated)
from crio_native.streaming.spdy_headers import (HeaderCodec, HeaderValue, decode_header_block,
                                                encode_header_block)

VERSION = 3

# Control frame types (draft 3, section 2.6).  Type 5 (NOOP in SPDY/2) and
# type 10 (CREDENTIAL, dropped in 3.1) are not handled and therefore ignored.
SYN_STREAM = 1
SYN_REPLY = 2
RST_STREAM = 3
SETTINGS = 4
PING = 6
GOAWAY = 7
HEADERS = 8
WINDOW_UPDATE = 9

FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02

DEFAULT_INITIAL_WINDOW = 64 * 1024
MAX_WINDOW = 0x7FFFFFFF
MAX_STREAM_ID = 0x7FFFFFFF
MAX_FRAME_PAYLOAD = 0xFFFFFF  # the length field is 24 bits
DEFAULT_MAX_DATA_FRAME = 16 * 1024


class RstStatus(enum.IntEnum):
    """RST_STREAM status codes (draft 3, section 2.6.3)."""

    PROTOCOL_ERROR = 1
    INVALID_STREAM = 2
    REFUSED_STREAM = 3
    UNSUPPORTED_VERSION = 4
    CANCEL = 5
    INTERNAL_ERROR = 6
    FLOW_CONTROL_ERROR = 7
    STREAM_IN_USE = 8
    STREAM_ALREADY_CLOSED = 9
    INVALID_CREDENTIALS = 10
    FRAME_TOO_LARGE = 11


class Setting(enum.IntEnum):
    """SETTINGS ids (draft 3, section 2.6.4)."""

    UPLOAD_BANDWIDTH = 1
    DOWNLOAD_BANDWIDTH = 2
    ROUND_TRIP_TIME = 3
    MAX_CONCURRENT_STREAMS = 4
    CURRENT_CWND = 5
    DOWNLOAD_RETRANS_RATE = 6
    INITIAL_WINDOW_SIZE = 7
    CLIENT_CERTIFICATE_VECTOR_SIZE = 8


# ----------------------------------------------------------------- framing


def control_frame(ftype: int, flags: int, payload: bytes) -> bytes:
    if len(payload) > MAX_FRAME_PAYLOAD:
        raise ValueError(f"SPDY control frame type {ftype}: payload too large")
    return struct.pack("!HHI", 0x8000 | VERSION, ftype, (flags << 24) | len(payload)) + payload


def data_frame(stream_id: int, flags: int, payload: bytes) -> bytes:
    if len(payload) > MAX_FRAME_PAYLOAD:
        raise ValueError("SPDY DATA frame: payload too large")
    return struct.pack("!II", stream_id & MAX_STREAM_ID, (flags << 24) | len(payload)) + payload


class _Stream:
    __slots__ = ("stream_id", "local", "priority", "replied", "local_closed",
                 "fin_sent", "remote_closed", "send_window", "recv_unacked",
                 "pending", "pending_fin")

    def __init__(self, stream_id: int, local: bool, priority: int, send_window: int):
        self.stream_id = stream_id
        self.local = local            # opened by this side
        self.priority = priority
        self.replied = False          # SYN_REPLY sent (remote) / received (local)
        self.local_closed = False     # no more send_data accepted
        self.fin_sent = False         # FIN is on the wire
        self.remote_closed = False    # the peer sent FIN
        self.send_window = send_window
        self.recv_unacked = 0
        self.pending = bytearray()    # data waiting for send window
        self.pending_fin = False


class SpdyConnection:
    """One SPDY/3.1 session, client or server side.

    ``peer_flow_control=False`` sends DATA without waiting for the peer's
    window.  moby/spdystream (kubectl, crictl, the kubelet) implements no
    flow control: it never sends WINDOW_UPDATE, so a spec-following sender
    would stall every stream after 64 KiB.  Windows are still tracked.
    """

    def __init__(self, client: bool, *, peer_flow_control: bool = True,
                 max_data_frame: int = DEFAULT_MAX_DATA_FRAME):
        if not 1 <= max_data_frame <= MAX_FRAME_PAYLOAD:
            raise ValueError(f"max_data_frame {max_data_frame} out of range")
        self.client = client
        self.peer_flow_control = peer_flow_control
        self.max_data_frame = max_data_frame
        self._in = bytearray()
        self._out: list[bytes] = []
        self._streams: dict[int, _Stream] = {}
        self._next_stream_id = 1 if client else 2
        self._next_ping_id = 1 if client else 2
        self._pings: set[int] = set()
        self.last_remote_stream_id = 0
        self._peer_initial_window = DEFAULT_INITIAL_WINDOW
        self._local_initial_window = DEFAULT_INITIAL_WINDOW
        self._session_send_window = DEFAULT_INITIAL_WINDOW
        self._session_recv_unacked = 0
        self._goaway_sent = False
        self._goaway_received = False
        self._broken: ProtocolError | None = None
        self._codec = HeaderCodec()

    # ------------------------------------------------------------ output

    def data_to_send(self) -> bytes:
        """Everything queued since the last call (b"" when nothing is)."""
        out = b"".join(self._out)
        self._out.clear()
        return out

    def pending_bytes(self, stream_id: int | None = None) -> int:
        """Bytes accepted by send_data but held back by a flow-control window,
        for one stream or (None) for all: the caller's back-pressure signal."""
        if stream_id is not None:
            stream = self._streams.get(stream_id)
            return len(stream.pending) if stream else 0
        return sum(len(s.pending) for s in self._streams.values())

    def is_open(self, stream_id: int) -> bool:
        return stream_id in self._streams

    # ----------------------------------------------------------- sending

    def open_stream(self, headers: Mapping[str, HeaderValue], fin: bool = False,
                    associated_id: int = 0, priority: int = 0,
                    unidirectional: bool = False) -> int:
        if self._goaway_sent or self._goaway_received:
            raise SpdyError("SPDY open_stream: the session is going away")
        if not 0 <= priority <= 7:
            raise ValueError(f"SPDY priority {priority} not in 0..7")
        stream_id = self._next_stream_id
        if stream_id > MAX_STREAM_ID:
            raise SpdyError("SPDY open_stream: stream ids exhausted")
        self._next_stream_id += 2
        stream = _Stream(stream_id, True, priority, self._peer_initial_window)
        stream.local_closed = stream.fin_sent = fin
        stream.remote_closed = unidirectional
        self._streams[stream_id] = stream
        flags = (FLAG_FIN if fin else 0) | (FLAG_UNIDIRECTIONAL if unidirectional else 0)
        fixed = struct.pack("!IIBB", stream_id, associated_id & MAX_STREAM_ID, priority << 5, 0)
        self._out.append(control_frame(SYN_STREAM, flags, fixed + self._codec.compress(headers)))
        self._maybe_forget(stream)
        return stream_id

    def reply(self, stream_id: int, headers: Mapping[str, HeaderValue],
              fin: bool = False) -> None:
        stream = self._sendable(stream_id)
        if stream.local or stream.replied:
            raise SpdyError(f"SPDY reply: stream {stream_id} is ours or already replied")
        stream.replied = True
        self._send_header_frame(SYN_REPLY, stream, headers, fin)

    def send_headers(self, stream_id: int, headers: Mapping[str, HeaderValue],
                     fin: bool = False) -> None:
        self._send_header_frame(HEADERS, self._sendable(stream_id), headers, fin)

    def send_data(self, stream_id: int, data: bytes, fin: bool = False) -> None:
        """Queue data; what the peer's windows do not admit yet waits in
        :meth:`pending_bytes` and goes out as WINDOW_UPDATEs arrive."""
        stream = self._sendable(stream_id)
        stream.pending += data
        if fin:
            stream.local_closed = stream.pending_fin = True
        self._flush(stream)

    def end_stream(self, stream_id: int) -> None:
        self.send_data(stream_id, b"", fin=True)

    def reset(self, stream_id: int, status: int = RstStatus.CANCEL) -> None:
        self._streams.pop(stream_id, None)
        self._queue_rst(stream_id, status)

    def ping(self) -> int:
        ping_id = self._next_ping_id
        # Ids may wrap once all are used (draft 3, 2.6.5); parity must hold.
        self._next_ping_id = ping_id + 2 if ping_id + 2 <= 0xFFFFFFFF else 2 - self.client
        self._pings.add(ping_id)
        self._out.append(control_frame(PING, 0, struct.pack("!I", ping_id)))
        return ping_id

    def go_away(self, status: int = GoAwayStatus.OK) -> None:
        self._goaway_sent = True
        payload = struct.pack("!II", self.last_remote_stream_id, status)
        self._out.append(control_frame(GOAWAY, 0, payload))

    def send_settings(self, settings: Mapping[int, int]) -> None:
        entries = sorted(settings.items())
        payload = struct.pack("!I", len(entries)) + b"".join(
            struct.pack("!II", sid & 0xFFFFFF, value) for sid, value in entries)
        self._out.append(control_frame(SETTINGS, 0, payload))
        if Setting.INITIAL_WINDOW_SIZE in settings:
            self._local_initial_window = settings[Setting.INITIAL_WINDOW_SIZE]

    # --------------------------------------------------------- receiving

    def receive_data(self, data: bytes) -> list[Event]:
        """Parse what the socket delivered; partial frames wait for more.

        Raises ProtocolError on a session error; the connection is then dead
        (later calls raise it again) and the caller should go_away + close.
        """
        if self._broken is not None:
            raise self._broken
        self._in += data
        events: list[Event] = []
        buf = self._in
        pos = 0
        try:
            while len(buf) - pos >= 8:
                word0, word1 = struct.unpack_from("!II", buf, pos)
                if word0 & 0x80000000:
                    version = (word0 >> 16) & 0x7FFF
                    if version != VERSION:
                        raise ProtocolError(
                            f"SPDY version {version} not supported (only {VERSION})")
                length = word1 & 0xFFFFFF
                if len(buf) - pos < 8 + length:
                    break
                payload = bytes(buf[pos + 8:pos + 8 + length])
                pos += 8 + length
                flags = word1 >> 24
                if word0 & 0x80000000:
                    self._on_control(word0 & 0xFFFF, flags, payload, events)
                else:
                    self._on_data(word0 & MAX_STREAM_ID, flags, payload, events)
        except ProtocolError as err:
            self._broken = err
            raise
        finally:
            del buf[:pos]
        return events

    # ---------------------------------------------------------- internals

    def _sendable(self, stream_id: int) -> _Stream:
        stream = self._streams.get(stream_id)
        if stream is None or stream.local_closed:
            raise StreamClosedError(f"SPDY stream {stream_id} is not open for sending")
        return stream

    def _send_header_frame(self, ftype: int, stream: _Stream,
                           headers: Mapping[str, HeaderValue], fin: bool) -> None:
        if fin and stream.pending:
            raise SpdyError(f"SPDY stream {stream.stream_id}: FIN on headers while data waits")
        payload = struct.pack("!I", stream.stream_id) + self._codec.compress(headers)
        self._out.append(control_frame(ftype, FLAG_FIN if fin else 0, payload))
        if fin:
            stream.local_closed = stream.fin_sent = True
            self._maybe_forget(stream)

    def _flush(self, stream: _Stream) -> None:
        while stream.pending:
            allowed = self.max_data_frame
            if self.peer_flow_control:
                allowed = min(allowed, stream.send_window, self._session_send_window)
                if allowed <= 0:
                    break
            chunk = bytes(stream.pending[:allowed])
            del stream.pending[:allowed]
            last = stream.pending_fin and not stream.pending
            self._out.append(data_frame(stream.stream_id, FLAG_FIN if last else 0, chunk))
            stream.send_window -= len(chunk)
            self._session_send_window -= len(chunk)
            stream.fin_sent = last
        if stream.pending_fin and not stream.pending and not stream.fin_sent:
            # An empty FIN frame is allowed whatever the windows say (3.1, 2.6.8).
            self._out.append(data_frame(stream.stream_id, FLAG_FIN, b""))
            stream.fin_sent = True
        self._maybe_forget(stream)

    def _flush_all(self) -> None:
        for stream in sorted(self._streams.values(), key=lambda s: (s.priority, s.stream_id)):
            if stream.pending:
                self._flush(stream)

    def _maybe_forget(self, stream: _Stream) -> None:
        if stream.fin_sent and stream.remote_closed and not stream.pending:
            self._streams.pop(stream.stream_id, None)

    def _queue_rst(self, stream_id: int, status: int) -> None:
        frame = control_frame(RST_STREAM, 0, struct.pack("!II", stream_id, status))
        # Coalesce back-to-back identical resets (a peer still sending on a dead
        # stream), as draft 3, 2.4.2 allows.
        if self._out and self._out[-1] == frame:
            return
        self._out.append(frame)

    def _stream_error(self, stream_id: int, status: int, events: list[Event]) -> None:
        self._streams.pop(stream_id, None)
        self._queue_rst(stream_id, status)
        events.append(StreamReset(stream_id, status, remote=False))

    def _queue_window_update(self, stream_id: int, delta: int) -> None:
        self._out.append(control_frame(WINDOW_UPDATE, 0, struct.pack("!II", stream_id, delta)))

    def _on_data(self, stream_id: int, flags: int, data: bytes, events: list[Event]) -> None:
        if stream_id == 0:
            raise ProtocolError("SPDY DATA frame on stream 0")
        fin = bool(flags & FLAG_FIN)
        # 3.1: every DATA frame counts against the session window, even a bad one.
        self._session_recv_unacked += len(data)
        if self._session_recv_unacked >= DEFAULT_INITIAL_WINDOW // 2:
            self._queue_window_update(0, self._session_recv_unacked)
            self._session_recv_unacked = 0
        stream = self._streams.get(stream_id)
        if stream is None:
            if not self._goaway_sent:
                self._queue_rst(stream_id, RstStatus.INVALID_STREAM)
            return
        if stream.remote_closed:
            self._stream_error(stream_id, RstStatus.STREAM_ALREADY_CLOSED, events)
            return
        if stream.local and not stream.replied:
            self._stream_error(stream_id, RstStatus.PROTOCOL_ERROR, events)
            return
        events.append(DataReceived(stream_id, data, fin))
        if fin:
            stream.remote_closed = True
            self._maybe_forget(stream)
            return
        stream.recv_unacked += len(data)
        if stream.recv_unacked >= max(1, self._local_initial_window // 2):
            self._queue_window_update(stream_id, stream.recv_unacked)
            stream.recv_unacked = 0

    def _on_control(self, ftype: int, flags: int, payload: bytes, events: list[Event]) -> None:
        handler = self._CONTROL_HANDLERS.get(ftype)
        if handler is not None:
            handler(self, flags, payload, events)
        # Unknown control frame types are ignored (draft 3, 2.2.1 / 2.6).

    def _on_syn_stream(self, flags: int, payload: bytes, events: list[Event]) -> None:
        if len(payload) < 10:
            raise ProtocolError("SPDY SYN_STREAM shorter than 10 bytes")
        stream_id, assoc, pri = struct.unpack_from("!IIB", payload)
        stream_id &= MAX_STREAM_ID
        # Inflate before any check: the zlib context must see every block.
        headers = self._codec.decompress(payload[10:])
        if stream_id == 0:
            raise ProtocolError("SPDY SYN_STREAM for stream 0")
        if self._goaway_sent:
            return
        if stream_id % 2 == (1 if self.client else 0):
            self._stream_error(stream_id, RstStatus.PROTOCOL_ERROR, events)
            return
        if stream_id in self._streams:
            self._stream_error(stream_id, RstStatus.PROTOCOL_ERROR, events)
            return
        if stream_id <= self.last_remote_stream_id:
            raise ProtocolError(f"SPDY SYN_STREAM {stream_id} after {self.last_remote_stream_id}")
        self.last_remote_stream_id = stream_id
        stream = _Stream(stream_id, False, pri >> 5, self._peer_initial_window)
        stream.remote_closed = bool(flags & FLAG_FIN)
        unidirectional = bool(flags & FLAG_UNIDIRECTIONAL)
        stream.local_closed = stream.fin_sent = unidirectional
        self._streams[stream_id] = stream
        events.append(StreamOpened(stream_id, headers, stream.remote_closed,
                                   assoc & MAX_STREAM_ID, pri >> 5, unidirectional))
        self._maybe_forget(stream)

    def _on_syn_reply(self, flags: int, payload: bytes, events: list[Event]) -> None:
        stream_id, headers = self._stream_header_frame("SYN_REPLY", payload)
        stream = self._streams.get(stream_id)
        if stream is None:
            self._queue_rst(stream_id, RstStatus.INVALID_STREAM)
        elif not stream.local:
            self._stream_error(stream_id, RstStatus.PROTOCOL_ERROR, events)
        elif stream.replied:
            self._stream_error(stream_id, RstStatus.STREAM_IN_USE, events)
        else:
            stream.replied = True
            fin = bool(flags & FLAG_FIN)
            events.append(StreamReplied(stream_id, headers, fin))
            self._remote_fin(stream, fin)

    def _on_headers(self, flags: int, payload: bytes, events: list[Event]) -> None:
        stream_id, headers = self._stream_header_frame("HEADERS", payload)
        stream = self._streams.get(stream_id)
        if stream is None:
            self._queue_rst(stream_id, RstStatus.INVALID_STREAM)
        elif stream.remote_closed:
            self._stream_error(stream_id, RstStatus.STREAM_ALREADY_CLOSED, events)
        else:
            fin = bool(flags & FLAG_FIN)
            events.append(HeadersReceived(stream_id, headers, fin))
            self._remote_fin(stream, fin)

    def _stream_header_frame(self, name: str, payload: bytes) -> tuple[int, dict[str, str]]:
        if len(payload) < 4:
            raise ProtocolError(f"SPDY {name} shorter than 4 bytes")
        stream_id = struct.unpack_from("!I", payload)[0] & MAX_STREAM_ID
        headers = self._codec.decompress(payload[4:])
        if stream_id == 0:
            raise ProtocolError(f"SPDY {name} for stream 0")
        return stream_id, headers

    def _remote_fin(self, stream: _Stream, fin: bool) -> None:
        if fin:
            stream.remote_closed = True
            self._maybe_forget(stream)

    def _on_rst_stream(self, flags: int, payload: bytes, events: list[Event]) -> None:
        stream_id, status = self._fixed8("RST_STREAM", payload)
        stream_id &= MAX_STREAM_ID
        if stream_id == 0:
            raise ProtocolError("SPDY RST_STREAM for stream 0")
        # Never answer a reset with a reset; a reset of a forgotten stream is moot.
        if self._streams.pop(stream_id, None) is not None:
            events.append(StreamReset(stream_id, status))

    def _on_settings(self, flags: int, payload: bytes, events: list[Event]) -> None:
        if len(payload) < 4:
            raise ProtocolError("SPDY SETTINGS shorter than 4 bytes")
        (count,) = struct.unpack_from("!I", payload)
        if len(payload) != 4 + 8 * count:
            raise ProtocolError(f"SPDY SETTINGS length {len(payload)} for {count} entries")
        settings: dict[int, int] = {}
        for i in range(count):
            word, value = struct.unpack_from("!II", payload, 4 + 8 * i)
            settings.setdefault(word & 0xFFFFFF, value)  # the first value of an id wins
        window = settings.get(Setting.INITIAL_WINDOW_SIZE)
        if window is not None:
            if window > MAX_WINDOW:
                raise ProtocolError(f"SPDY SETTINGS initial window {window} too large")
            delta = window - self._peer_initial_window
            self._peer_initial_window = window
            for stream in self._streams.values():
                stream.send_window += delta
        events.append(SettingsReceived(settings))
        if window is not None:
            self._flush_all()

    def _on_ping(self, flags: int, payload: bytes, events: list[Event]) -> None:
        if len(payload) != 4:
            raise ProtocolError(f"SPDY PING length {len(payload)}, not 4")
        (ping_id,) = struct.unpack("!I", payload)
        ours = ping_id % 2 == (1 if self.client else 0)
        if not ours:
            self._out.append(control_frame(PING, 0, payload))
            events.append(PingReceived(ping_id))
        elif ping_id in self._pings:
            self._pings.discard(ping_id)
            events.append(PingAcknowledged(ping_id))
        # An echo of a ping we never sent is ignored (draft 3, 2.6.5).

    def _on_goaway(self, flags: int, payload: bytes, events: list[Event]) -> None:
        last_good, status = self._fixed8("GOAWAY", payload)
        self._goaway_received = True
        events.append(GoAwayReceived(last_good & MAX_STREAM_ID, status))

    def _on_window_update(self, flags: int, payload: bytes, events: list[Event]) -> None:
        stream_id, delta = self._fixed8("WINDOW_UPDATE", payload)
        stream_id &= MAX_STREAM_ID
        delta &= MAX_WINDOW
        if delta == 0:
            return
        if stream_id == 0:
            self._session_send_window += delta
            if self._session_send_window > MAX_WINDOW:
                raise ProtocolError("SPDY session window above 2^31-1")
            events.append(WindowUpdated(0, delta))
            self._flush_all()
            return
        stream = self._streams.get(stream_id)
        if stream is None or stream.fin_sent:
            return  # late updates for finished streams are ignored (2.6.8)
        stream.send_window += delta
        if stream.send_window > MAX_WINDOW:
            self._stream_error(stream_id, RstStatus.FLOW_CONTROL_ERROR, events)
            return
        events.append(WindowUpdated(stream_id, delta))
        self._flush(stream)

    @staticmethod
    def _fixed8(name: str, payload: bytes) -> tuple[int, int]:
        if len(payload) != 8:
            raise ProtocolError(f"SPDY {name} length {len(payload)}, not 8")
        return struct.unpack("!II", payload)

    _CONTROL_HANDLERS = {
        SYN_STREAM: _on_syn_stream,
        SYN_REPLY: _on_syn_reply,
        RST_STREAM: _on_rst_stream,
        SETTINGS: _on_settings,
        PING: _on_ping,
        GOAWAY: _on_goaway,
        HEADERS: _on_headers,
        WINDOW_UPDATE: _on_window_update,
    }


__all__ = [
    "DEFAULT_INITIAL_WINDOW", "DEFAULT_MAX_DATA_FRAME", "FLAG_FIN", "FLAG_UNIDIRECTIONAL",
    "GOAWAY", "HEADERS", "MAX_FRAME_PAYLOAD", "MAX_STREAM_ID", "MAX_WINDOW", "PING",
    "RST_STREAM", "SETTINGS", "SYN_REPLY", "SYN_STREAM", "VERSION", "WINDOW_UPDATE",
    "DataReceived", "Event", "GoAwayReceived", "GoAwayStatus", "HeaderValue",
    "HeadersReceived", "PingAcknowledged", "PingReceived", "ProtocolError", "RstStatus",
    "Setting", "SettingsReceived", "SpdyConnection", "SpdyError", "StreamClosedError",
    "StreamOpened", "StreamReplied", "StreamReset", "WindowUpdated", "control_frame",
    "data_frame", "decode_header_block", "encode_header_block",
]
