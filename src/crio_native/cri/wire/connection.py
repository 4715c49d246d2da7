"""One client connection: HTTP/2 (prior knowledge, no TLS) by `h2`, read by
one thread, its calls run on the server's pool.

The h2 state machine is not thread-safe: every use of it, and every write
of its bytes to the socket, holds `self.lock`.  A worker sending a large
answer waits on `window_open` (the same lock) for the peer's WINDOW_UPDATE,
which the reader thread reports; h2 answers PING and SETTINGS itself."""
from __future__ import annotations

import base64
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (ConnectionTerminated, DataReceived, RemoteSettingsChanged,
                       RequestReceived, StreamEnded, StreamReset, WindowUpdated)
from h2.exceptions import H2Error
from h2.settings import SettingCodes, Settings
from hyperframe.frame import GoAwayFrame

from crio_native.cri.wire.call import Aborted, Call, Method, responses
from crio_native.cri.wire.headers import Malformed, request_head
from crio_native.cri.wire.messages import (ACCEPT_ENCODING, ENCODINGS, WireError, check_prefix,
                                           frame, request_message, sent_too_large)
from crio_native.cri.wire.status import StatusCode, encode_message, parse_timeout

if TYPE_CHECKING:
    from crio_native.cri.wire.server import Server

log = logging.getLogger("crio_native.cri.wire")

READ_SIZE = 65536
MAX_CONCURRENT_STREAMS = 1024
# Headers that are the protocol's, not the caller's metadata.
RESERVED = frozenset({"content-type", "te", "grpc-timeout", "grpc-encoding",
                      "grpc-accept-encoding", "grpc-message-type"})
GRPC_CONTENT_TYPES = ("application/grpc", "application/grpc+proto")


class StreamGone(Exception):
    """The peer reset the stream or the connection is gone: nothing to answer."""


@dataclass
class Incoming:
    """A request whose body is still arriving."""
    method: Method
    path: str
    encoding: str
    deadline: float | None
    metadata: tuple[tuple[str, Any], ...]
    remote_open: bool
    body: bytearray = field(default_factory=bytearray)


def is_grpc_content_type(value: str) -> bool:
    base = value.split(";", 1)[0].strip().lower()
    return base in GRPC_CONTENT_TYPES


def caller_metadata(headers: list[tuple[str, str]]) -> tuple[tuple[str, Any], ...]:
    """invocation_metadata(): the caller's regular headers, -bin values decoded."""
    out: list[tuple[str, Any]] = []
    for name, value in headers:
        if name in RESERVED:
            continue
        if name.endswith("-bin"):
            try:
                out.append((name, base64.b64decode(value + "=" * (-len(value) % 4))))
            except ValueError:
                continue
        else:
            out.append((name, value))
    return tuple(out)


# What we send goes to h2 as bytes (no encoding step per call).
RESPONSE_HEADERS = ((b":status", b"200"), (b"content-type", b"application/grpc"),
                    (b"grpc-accept-encoding", ACCEPT_ENCODING.encode()))
OK_TRAILERS = ((b"grpc-status", b"0"),)


def response_headers(http_status: int = 200) -> list[tuple[bytes, bytes]]:
    return [(b":status", str(http_status).encode()), *RESPONSE_HEADERS[1:]]


def status_trailers(code: StatusCode, message: str) -> list[tuple[bytes, bytes]]:
    trailers = [(b"grpc-status", str(int(code)).encode())]
    if message:
        trailers.append((b"grpc-message", encode_message(message).encode()))
    return trailers


class Connection:
    def __init__(self, sock: socket.socket, server: Server):
        self.sock = sock
        self.server = server
        # what we send is built here, lower-case and valid: h2 need not check
        # it; what we receive headers.py checks in one pass, cheaper than h2
        # (a malformed request is a stream error)
        self.h2 = H2Connection(H2Configuration(
            client_side=False, header_encoding=None, validate_outbound_headers=False,
            normalize_outbound_headers=False, validate_inbound_headers=False,
            normalize_inbound_headers=False))
        self.h2.local_settings = Settings(client=False, initial_values={
            SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
            SettingCodes.MAX_HEADER_LIST_SIZE: 65536})
        self.lock = threading.Lock()
        self.window_open = threading.Condition(self.lock)
        self.window_waiters = 0      # senders in window_open.wait(): the peer's WINDOW_UPDATEs
                                     # (grpcio sends two per answer) wake nobody otherwise
        self.incoming: dict[int, Incoming] = {}
        self.calls: dict[int, Call] = {}
        self.headers_sent: set[int] = set()
        self.closed = False
        self.last_accepted: int | None = None     # set by go_away()
        self._ended: list[Call] = []              # calls to end once the lock is released

    # ---- the reader thread ---------------------------------------------------

    def serve(self) -> None:
        try:
            with self.lock:
                self.h2.initiate_connection()
                self._flush()
            while not self.closed:
                data = self.sock.recv(READ_SIZE)
                if not data:
                    break
                with self.lock:
                    for event in self.h2.receive_data(data):
                        self._on_event(event)
                    self._flush()
                self._end_calls()
        except H2Error as e:
            log.debug("HTTP/2 protocol error from a CRI client: %s", e)
            with self.lock:          # h2 queued a GOAWAY with the error
                self._flush_quietly()
        except (OSError, StreamGone) as e:
            log.debug("CRI client connection failed: %s", e)
        finally:
            self._close()

    def _on_event(self, event: Any) -> None:
        if isinstance(event, RequestReceived):
            self._begin(event)
        elif isinstance(event, DataReceived):
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            incoming = self.incoming.get(event.stream_id)
            if incoming is not None:
                incoming.body += event.data
                try:
                    check_prefix(incoming.body, self.server.max_recv)
                except WireError as e:
                    self._refuse(event.stream_id, e)
        elif isinstance(event, StreamEnded):
            incoming = self.incoming.pop(event.stream_id, None)
            if incoming is not None:
                incoming.remote_open = False
                self._dispatch(event.stream_id, incoming)
        elif isinstance(event, StreamReset):
            self.incoming.pop(event.stream_id, None)
            self.headers_sent.discard(event.stream_id)
            call = self.calls.pop(event.stream_id, None)
            if call is not None:
                self._ended.append(call)
            self.window_open.notify_all()
        elif isinstance(event, (WindowUpdated, RemoteSettingsChanged)):
            if self.window_waiters:
                self.window_open.notify_all()
        elif isinstance(event, ConnectionTerminated):
            self.closed = True

    def _begin(self, event: RequestReceived) -> None:
        sid = event.stream_id
        remote_open = event.stream_ended is None
        if self.last_accepted is not None and sid > self.last_accepted:
            self.h2.reset_stream(sid, ErrorCodes.REFUSED_STREAM)   # after our GOAWAY
            return
        try:
            # header_encoding=None: h2 hands over the raw bytes
            head = request_head(event.headers or ())  # type: ignore[arg-type]
        except Malformed as e:
            log.debug("malformed request on stream %d from a CRI client: %s", sid, e)
            self.h2.reset_stream(sid, ErrorCodes.PROTOCOL_ERROR)
            return
        headers = head.headers
        h = dict(headers)
        if head.method != "POST":
            return self._refuse(sid, WireError(StatusCode.UNIMPLEMENTED,
                                               f"HTTP method {head.method} is not POST"),
                                remote_open, http_status=405)
        if not is_grpc_content_type(h.get("content-type", "")):
            return self._refuse(sid, WireError(
                StatusCode.INVALID_ARGUMENT,
                f"invalid gRPC request content-type {h.get('content-type', '')!r}"),
                remote_open, http_status=415)
        path = head.path
        method = self.server.methods.get(path)
        if method is None:
            return self._refuse(sid, WireError(StatusCode.UNIMPLEMENTED, "Method not found!"),
                                remote_open)
        encoding = h.get("grpc-encoding", "identity")
        if encoding not in ENCODINGS:
            return self._refuse(sid, WireError(
                StatusCode.UNIMPLEMENTED, f"grpc-encoding {encoding!r} is not supported"),
                remote_open)
        deadline = None
        if "grpc-timeout" in h:
            try:
                deadline = time.monotonic() + parse_timeout(h["grpc-timeout"])
            except ValueError as e:
                return self._refuse(sid, WireError(StatusCode.INTERNAL, str(e)), remote_open)
        self.incoming[sid] = Incoming(method, path, encoding, deadline,
                                      caller_metadata(headers), remote_open)

    def _refuse(self, sid: int, error: WireError, remote_open: bool | None = None,
                http_status: int = 200) -> None:
        """A Trailers-Only answer before any message; the rest of the
        request, if the peer is still sending, is not wanted."""
        incoming = self.incoming.pop(sid, None)
        if remote_open is None:
            remote_open = incoming is not None and incoming.remote_open
        try:
            self.h2.send_headers(sid, response_headers(http_status)
                                 + status_trailers(error.code, error.message), end_stream=True)
            if remote_open:
                self.h2.reset_stream(sid, ErrorCodes.NO_ERROR)
        except H2Error as e:
            log.debug("cannot answer stream %d: %s", sid, e)

    def _dispatch(self, sid: int, incoming: Incoming) -> None:
        try:
            payload = request_message(incoming.body, incoming.encoding, self.server.max_recv)
        except WireError as e:
            return self._refuse(sid, e, remote_open=False)
        call = Call(incoming.path, incoming.deadline, incoming.metadata)
        self.calls[sid] = call
        self.server.submit(self.run, sid, incoming.method, payload, call)

    def _end_calls(self) -> None:
        """Run the callbacks of the calls the peer ended, outside the lock."""
        if not self._ended:
            return
        with self.lock:
            ended, self._ended = self._ended, []
        for call in ended:
            call.end(cancelled=True)

    # ---- the workers ---------------------------------------------------------

    def run(self, sid: int, method: Method, payload: bytes, call: Call) -> None:
        """One call, on a pool thread: the handler's answers, then the status."""
        code, message = StatusCode.OK, ""
        answered = False
        try:
            if not call.is_active():
                # the peer left (or its deadline passed) while the call
                # waited for a thread: as grpcio, do not start the work
                raise StreamGone("ended before it started")
            try:
                request = method.deserialize(payload)
            except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and kin
                raise WireError(StatusCode.INTERNAL, "Exception deserializing request!") from e
            answers = responses(method, request, call)
            try:
                for answer in answers:
                    if not call.is_active():
                        break
                    data = method.serialize(answer)
                    if len(data) > self.server.max_send:
                        raise sent_too_large(len(data), self.server.max_send)
                    if not method.streaming and not self._late(call):
                        self.send(sid, call, data, last=True)   # the status in the same write
                        answered = True
                        break
                    self.send(sid, call, data)
            finally:
                answers.close()
        except StreamGone:
            pass
        except Aborted:
            code = call.code() or StatusCode.UNKNOWN
            message = call.details() or ""
        except WireError as e:
            code, message = e.code, e.message
        except Exception as e:  # noqa: BLE001 - as grpcio answers a handler that raised
            log.exception("CRI handler raised", extra={"fields": {"method": call.path}})
            code, message = StatusCode.UNKNOWN, f"Exception calling application: {e}"
        if self._late(call):
            code, message = StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"
        try:
            if not call.ended and not answered:
                self.finish(sid, call, code, message)
        except StreamGone:
            pass
        finally:
            call.end(cancelled=call.cancelled)

    @staticmethod
    def _late(call: Call) -> bool:
        return (call.deadline is not None and time.monotonic() >= call.deadline
                and not call.ended)

    def send(self, sid: int, call: Call, data: bytes, last: bool = False) -> None:
        """One answer message, after the response headers if they are not
        sent yet, as the peer's flow-control windows allow; with `last`, the
        OK status after it (a unary call's answer in one write)."""
        view = memoryview(frame(data))
        with self.lock:
            self._check_open(sid, call)
            try:
                if sid not in self.headers_sent:
                    self.h2.send_headers(sid, RESPONSE_HEADERS)
                    self.headers_sent.add(sid)
                while view:
                    self._check_open(sid, call)
                    size = min(self.h2.local_flow_control_window(sid),
                               self.h2.max_outbound_frame_size, len(view))
                    if size <= 0:
                        self._flush()
                        self.window_waiters += 1
                        try:
                            self.window_open.wait(1.0)
                        finally:
                            self.window_waiters -= 1
                        continue
                    self.h2.send_data(sid, view[:size].tobytes())
                    view = view[size:]
                if last:
                    self.calls.pop(sid, None)
                    self.headers_sent.discard(sid)
                    self.h2.send_headers(sid, OK_TRAILERS, end_stream=True)
                self._flush()
            except H2Error as e:
                raise StreamGone(str(e)) from e

    def finish(self, sid: int, call: Call, code: StatusCode, message: str) -> None:
        """The status: trailers after the answers, or Trailers-Only if none
        was sent."""
        with self.lock:
            self._check_open(sid, call)
            self.calls.pop(sid, None)
            try:
                if sid in self.headers_sent:
                    self.headers_sent.discard(sid)
                    self.h2.send_headers(sid, status_trailers(code, message), end_stream=True)
                else:
                    self.h2.send_headers(sid, [*RESPONSE_HEADERS, *status_trailers(code, message)],
                                         end_stream=True)
                self._flush()
            except H2Error as e:
                raise StreamGone(str(e)) from e

    def _check_open(self, sid: int, call: Call) -> None:
        if self.closed or call.ended or sid not in self.calls:
            raise StreamGone(f"stream {sid} is gone")

    # ---- writes and the end ----------------------------------------------

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            try:
                self.sock.sendall(data)
            except OSError as e:
                self.closed = True
                self.window_open.notify_all()
                _shutdown(self.sock)
                raise StreamGone(f"connection lost: {e}") from e

    def _flush_quietly(self) -> None:
        try:
            self._flush()
        except StreamGone:
            pass

    def go_away(self) -> None:
        """Graceful stop, first half: GOAWAY naming the last stream we take;
        streams the peer opens after it are refused.  h2 itself would
        refuse to send on open streams after its own GOAWAY, so this frame
        is written beside it."""
        with self.lock:
            if self.closed:
                return
            self.last_accepted = self.h2.highest_inbound_stream_id
            goaway = GoAwayFrame(stream_id=0, last_stream_id=self.last_accepted,
                                 error_code=ErrorCodes.NO_ERROR)
            try:
                self._flush()
                self.sock.sendall(goaway.serialize())
            except (OSError, StreamGone):
                self.closed = True

    def close(self) -> None:
        """Graceful stop, second half: the final GOAWAY, then the socket."""
        with self.lock:
            if not self.closed:
                try:
                    self.h2.close_connection()
                except H2Error:
                    pass
                self._flush_quietly()
            self.closed = True
            self.window_open.notify_all()
        _shutdown(self.sock)

    def _close(self) -> None:
        """The reader's end: every call still open is cancelled."""
        with self.lock:
            self.closed = True
            self.window_open.notify_all()
            calls = list(self.calls.values()) + self._ended
            self.calls.clear()
            self._ended = []
            self.incoming.clear()
            _shutdown(self.sock)
            self.sock.close()
        for call in calls:
            call.end(cancelled=True)
        self.server.forget(self)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
