"""A raw HTTP/2 client (python-hyper's `h2`) for the CRI socket: the tests of
cri/wire send the frames a misbehaving, slow or unusual gRPC client would,
which grpcio's client never does (tiny flow-control windows, RST_STREAM,
gzip bodies, wrong content types, oversized messages)."""
from __future__ import annotations

import gzip
import socket
import struct
import time
from typing import Any, Callable

from h2.config import H2Configuration
from h2.connection import ConnectionState, H2Connection
from h2.events import (DataReceived, Event, ResponseReceived, StreamEnded, StreamReset,
                       TrailersReceived)
from h2.settings import SettingCodes, Settings


class GoAwayTolerantConnection(H2Connection):
    """h2 closes its whole state machine on a received GOAWAY, but HTTP/2
    (RFC 9113 6.8) lets the streams below its last stream id finish, and
    gRPC servers stop that way: keep reading them after a NO_ERROR GOAWAY."""

    def _receive_goaway_frame(self, frame: Any) -> Any:
        state = self.state_machine.state
        result = super()._receive_goaway_frame(frame)   # type: ignore[misc]
        if frame.error_code == 0 and state != ConnectionState.CLOSED:
            self.state_machine.state = state
        return result


def grpc_message(payload: bytes, compress: bool = False) -> bytes:
    if compress:
        payload = gzip.compress(payload)
    return struct.pack(">BI", int(compress), len(payload)) + payload


class Answer:
    """What came back on one stream."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.trailers: dict[str, str] = {}
        self.data = bytearray()
        self.data_frames: list[int] = []
        self.ended = False
        self.reset: int | None = None
        self.trailers_only = False

    @property
    def status(self) -> dict[str, str]:
        return {**self.headers, **self.trailers}

    @property
    def code(self) -> int:
        return int(self.status["grpc-status"])

    def messages(self) -> list[bytes]:
        out, view = [], bytes(self.data)
        while view:
            flag, length = struct.unpack_from(">BI", view)
            assert flag == 0
            out.append(view[5:5 + length])
            view = view[5 + length:]
        return out


class RawClient:
    def __init__(self, path: str, settings: dict[int, int] | None = None,
                 auto_ack: bool = True):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.h2 = GoAwayTolerantConnection(H2Configuration(client_side=True,
                                                           header_encoding="utf-8"))
        if settings:
            self.h2.local_settings = Settings(client=True, initial_values={
                SettingCodes(k): v for k, v in settings.items()})
        self.auto_ack = auto_ack
        self.answers: dict[int, Answer] = {}
        self.events: list[Event] = []
        self.h2.initiate_connection()
        self.flush()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def start(self, path: str, body: bytes | None = b"\0\0\0\0\0",
              content_type: str = "application/grpc", extra: tuple = (),
              end: bool = True) -> int:
        sid = self.h2.get_next_available_stream_id()
        headers = [(":method", "POST"), (":scheme", "http"), (":authority", "localhost"),
                   (":path", path), ("content-type", content_type), ("te", "trailers"),
                   *extra]
        self.h2.send_headers(sid, headers, end_stream=body is None and end)
        if body is not None:
            self.send_body(sid, body, end)
        self.answers[sid] = Answer()
        self.flush()
        return sid

    def send_body(self, sid: int, body: bytes, end: bool = True) -> None:
        """As much of `body` as the server's windows allow (all of it for the
        small bodies of these tests; larger ones stop at the window)."""
        view = memoryview(body)
        while view:
            size = min(self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size,
                       len(view))
            if size <= 0:
                self.read(lambda: self.h2.local_flow_control_window(sid) > 0
                          or self.answers.get(sid, Answer()).ended)
                if self.answers.get(sid, Answer()).ended:
                    return
                continue
            self.h2.send_data(sid, view[:size].tobytes(), end_stream=end and size == len(view))
            view = view[size:]
            self.flush()
        if end and not body:
            self.h2.end_stream(sid)
        self.flush()

    def read(self, until: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no such answer in time")
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionResetError("the server closed the connection")
            for event in self.h2.receive_data(data):
                self._on(event)
            self.flush()

    def quiet_for(self, seconds: float) -> list[Event]:
        """The events that arrive in `seconds` (for "nothing more comes")."""
        before = len(self.events)
        try:
            self.read(lambda: False, timeout=seconds)
        except TimeoutError:
            pass
        except socket.timeout:
            pass
        return self.events[before:]

    def _on(self, event: Event) -> None:
        self.events.append(event)
        sid = getattr(event, "stream_id", None)
        answer = self.answers.get(sid) if sid is not None else None
        if answer is None:
            return
        if isinstance(event, ResponseReceived):
            answer.headers = dict(event.headers)   # type: ignore[arg-type]
            answer.trailers_only = event.stream_ended is not None
        elif isinstance(event, TrailersReceived):
            answer.trailers = dict(event.headers)  # type: ignore[arg-type]
        elif isinstance(event, DataReceived):
            answer.data += event.data
            answer.data_frames.append(len(event.data))
            if self.auto_ack:
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, StreamEnded):
            answer.ended = True
        elif isinstance(event, StreamReset):
            answer.reset = event.error_code
            answer.ended = True

    def call(self, path: str, body: bytes = b"\0\0\0\0\0", **kw: Any) -> Answer:
        sid = self.start(path, body, **kw)
        self.read(lambda: self.answers[sid].ended)
        return self.answers[sid]
