"""A synchronous ttrpc client (github.com/containerd/ttrpc, PROTOCOL.md).

Every message is a frame: a 10-byte header (data length u32 BE, stream id
u32 BE, type u8: 1 request, 2 response; flags u8) and at most 4 MiB of
data.  A unary call sends one Request frame (ttrpc.Request: service, method,
payload, timeout_nano, metadata) on a new odd stream id and gets one
Response frame (ttrpc.Response: a google.rpc.Status and the payload) on the
same id.  Many calls may be in flight on one connection: one reader thread
per connection hands each response to the caller waiting for its stream id,
so a long `Wait` does not hold up a `Kill` sent meanwhile.

Errors are the typed ones of crio_native.errors, picked by the status code
(google.rpc.Code, the same numbers as gRPC's); a broken or refused
connection is Unavailable, a call that outlives its timeout
DeadlineExceeded.  Written here rather than taken from a library: there is
no maintained Python ttrpc package, and the protocol is this small."""
from __future__ import annotations

import contextlib
import errno as errno_mod
import logging
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from crio_native._proto.shim import ttrpc_pb2
from crio_native.errors import (AlreadyExists, CrioNativeError, DeadlineExceeded,
                                FailedPrecondition, Internal, InvalidArgument, NotFound,
                                ResourceExhausted, Unavailable, Unimplemented)

log = logging.getLogger(__name__)

HEADER = struct.Struct(">IIBB")
HEADER_LENGTH = HEADER.size          # 10
MESSAGE_LENGTH_MAX = 4 << 20
TYPE_REQUEST = 1
TYPE_RESPONSE = 2
TYPE_DATA = 3

# google.rpc.Code -> our typed errors (codes without a class of their own,
# such as CANCELED, UNKNOWN or DATA_LOSS, become Internal).
_ERRORS: dict[int, type[CrioNativeError]] = {
    3: InvalidArgument, 4: DeadlineExceeded, 5: NotFound, 6: AlreadyExists,
    8: ResourceExhausted, 9: FailedPrecondition, 10: FailedPrecondition,   # ABORTED
    11: InvalidArgument,   # OUT_OF_RANGE
    12: Unimplemented, 14: Unavailable,
}

M = TypeVar("M", bound=Message)


def error_from_status(code: int, message: str, where: str) -> CrioNativeError:
    """The typed error for a non-OK google.rpc.Status."""
    cls = _ERRORS.get(code, Internal)
    return cls(f"{where}: {message or f'status code {code}'}")


def encode_frame(stream_id: int, mtype: int, data: bytes, flags: int = 0) -> bytes:
    if len(data) > MESSAGE_LENGTH_MAX:
        raise ResourceExhausted(f"ttrpc: message of {len(data)} bytes exceeds the "
                                f"{MESSAGE_LENGTH_MAX}-byte limit")
    return HEADER.pack(len(data), stream_id, mtype, flags) + data


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionResetError(errno_mod.ECONNRESET, "ttrpc: connection closed by peer")
        buf += chunk
    return bytes(buf)


def read_frame(sock: socket.socket) -> tuple[int, int, int, bytes]:
    """(stream id, type, flags, data) of the next frame.  A frame over the
    4 MiB limit ends the connection: nothing after it can be trusted."""
    length, stream_id, mtype, flags = HEADER.unpack(_recv_exactly(sock, HEADER_LENGTH))
    if length > MESSAGE_LENGTH_MAX:
        raise ConnectionAbortedError(errno_mod.EMSGSIZE,
                                     f"ttrpc: frame of {length} bytes exceeds the limit")
    return stream_id, mtype, flags, _recv_exactly(sock, length)


def socket_path(address: str) -> str:
    """A shim address ("unix:///run/x.sock", or a bare path; "@name" is an
    abstract socket) as the name connect() takes."""
    path = address.removeprefix("unix://")
    return "\0" + path[1:] if path.startswith("@") else path


@dataclass
class _Call:
    done: threading.Event = field(default_factory=threading.Event)
    response: bytes | None = None
    error: BaseException | None = None


class TtrpcClient:
    """One connection to a ttrpc server.  Thread-safe; `call` blocks until
    the answer, the timeout or the connection's end.  Once the connection
    is broken every call raises Unavailable: make a new client."""

    def __init__(self, address: str, *, connect_timeout: float = 5.0):
        self.address = address
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            self._sock.settimeout(connect_timeout)
            self._sock.connect(socket_path(address))
            self._sock.settimeout(None)
        except OSError as e:
            self._sock.close()
            raise Unavailable(f"ttrpc {address}: cannot connect: {e}") from e
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()
        self._calls: dict[int, _Call] = {}
        self._next_id = 1
        self._broken: BaseException | None = None
        self._reader = threading.Thread(target=self._read_loop, daemon=True,
                                        name=f"ttrpc-reader {address}")
        self._reader.start()

    def __enter__(self) -> "TtrpcClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._broken is not None

    def close(self) -> None:
        with self._lock:
            if self._broken is None:
                self._broken = ConnectionAbortedError("ttrpc: client closed")
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        if self._reader is not threading.current_thread():
            self._reader.join(timeout=5)
        self._sock.close()

    # ---- calls -----------------------------------------------------------------

    def call(self, service: str, method: str, request: Message, response_type: type[M],
             *, timeout: float | None = None, metadata: dict[str, str] | None = None) -> M:
        """Call service/method with `request`; the answer parsed as `response_type`."""
        where = f"ttrpc {service}/{method}"
        envelope = ttrpc_pb2.Request(service=service, method=method,
                                     payload=request.SerializeToString(),
                                     timeout_nano=int(timeout * 1e9) if timeout else 0)
        for key, value in (metadata or {}).items():
            envelope.metadata.add(key=key, value=value)
        data = self.call_raw(envelope.SerializeToString(), timeout, where)
        try:
            answer = ttrpc_pb2.Response.FromString(data)
        except DecodeError as e:
            raise Internal(f"{where}: malformed response: {e}") from e
        if answer.HasField("status") and answer.status.code != 0:
            raise error_from_status(answer.status.code, answer.status.message, where)
        try:
            return response_type.FromString(answer.payload)
        except DecodeError as e:
            raise Internal(f"{where}: malformed {response_type.__name__}: {e}") from e

    def call_raw(self, request: bytes, timeout: float | None, where: str = "ttrpc") -> bytes:
        """Send one Request frame's data; the Response frame's data."""
        call = _Call()
        with self._lock:
            if self._broken is not None:
                raise Unavailable(f"{where}: connection to {self.address} is closed: "
                                  f"{self._broken}")
            stream_id = self._next_id
            self._next_id += 2
            self._calls[stream_id] = call
        try:
            frame = encode_frame(stream_id, TYPE_REQUEST, request)
            try:
                with self._send_lock:
                    self._sock.sendall(frame)
            except OSError as e:
                self._fail_all(e)
                raise Unavailable(f"{where}: cannot send to {self.address}: {e}") from e
            if not call.done.wait(timeout):
                raise DeadlineExceeded(f"{where}: no answer from {self.address} in {timeout}s")
        finally:
            with self._lock:
                self._calls.pop(stream_id, None)
        if call.error is not None:
            raise Unavailable(f"{where}: connection to {self.address} lost: "
                              f"{call.error}") from call.error
        assert call.response is not None
        return call.response

    # ---- the reader ----------------------------------------------------------------

    def _read_loop(self) -> None:
        try:
            while True:
                stream_id, mtype, _flags, data = read_frame(self._sock)
                if mtype != TYPE_RESPONSE:
                    log.debug("ttrpc %s: ignoring a frame of type %d on stream %d",
                              self.address, mtype, stream_id)
                    continue
                with self._lock:
                    call = self._calls.get(stream_id)
                if call is None:   # its caller gave up (timeout)
                    log.debug("ttrpc %s: late response on stream %d", self.address, stream_id)
                    continue
                call.response = data
                call.done.set()
        except OSError as e:
            self._fail_all(e)

    def _fail_all(self, error: BaseException) -> None:
        with self._lock:
            if self._broken is None:
                self._broken = error
            calls = list(self._calls.values())
        for call in calls:
            if not call.done.is_set():
                call.error = self._broken
                call.done.set()


def connect(address: str, timeout: float = 5.0, retry_interval: float = 0.02) -> TtrpcClient:
    """A client for `address`, retrying while the socket is not there yet
    or refuses (a shim that is still starting) until `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return TtrpcClient(address, connect_timeout=max(deadline - time.monotonic(), 0.1))
        except Unavailable:
            if time.monotonic() >= deadline:
                raise
            time.sleep(retry_interval)


__all__ = ["HEADER", "HEADER_LENGTH", "MESSAGE_LENGTH_MAX", "TYPE_REQUEST", "TYPE_RESPONSE",
           "TtrpcClient", "connect", "encode_frame", "error_from_status", "read_frame",
           "socket_path"]
