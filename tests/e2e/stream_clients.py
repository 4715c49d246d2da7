"""Streaming clients for the tests, written here rather than borrowed from
kubectl: a WebSocket client on wsproto and a SPDY/3.1 client on the
daemon's sans-IO SpdyConnection, both blocking, both speaking what
client-go speaks (channel bytes / streamtype headers).  The WebSocket
client frames its messages as the negotiated subprotocol says: a channel
byte, or (base64 subprotocols) a text message of '0'+channel and base64.
An https URL is reached over TLS with the `tls` context given (verifying
the server)."""
from __future__ import annotations

import base64
import json
import select
import socket
import ssl
import time
from urllib.parse import urlsplit

from wsproto import ConnectionType, WSConnection
from wsproto.events import (AcceptConnection, BytesMessage, CloseConnection, RejectConnection,
                            RejectData, Request, TextMessage)
from wsproto.events import Message

from crio_native.streaming.spdy import (DataReceived, SpdyConnection, StreamOpened, StreamReset,
                                        StreamReplied)

V4, V5 = "v4.channel.k8s.io", "v5.channel.k8s.io"
V1 = "channel.k8s.io"
B64, V4_B64 = "base64.channel.k8s.io", "v4.base64.channel.k8s.io"
COUNTED_PREFIX = 4096     # bytes kept of a count_only stream
STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4


class Refused(Exception):
    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None):
        super().__init__(f"HTTP {status}: {body!r}")
        self.status, self.body = status, body
        self.headers = headers or {}      # SPDY: the response's, names lower case


def tls_context(ca_file: str) -> ssl.SSLContext:
    """A client context trusting only `ca_file`, checking the host name."""
    return ssl.create_default_context(cafile=ca_file)


def _connect(url: str, timeout: float,
             tls: ssl.SSLContext | None = None) -> tuple[socket.socket, str]:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    if parts.scheme == "https":
        if tls is None:
            sock.close()
            raise ValueError(f"{url}: an https URL needs a TLS context")
        try:
            sock = tls.wrap_socket(sock, server_hostname=parts.hostname)
        except BaseException:
            sock.close()
            raise
    return sock, parts.path + (f"?{parts.query}" if parts.query else "")


def _readable(sock: socket.socket, timeout: float) -> bool:
    """Data to read within `timeout`: TLS may hold decrypted bytes that
    select() cannot see."""
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    return timeout > 0 and bool(select.select([sock], [], [], timeout)[0])


def http_get(url: str, timeout: float = 10.0,
             tls: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    """A plain request: the status and body."""
    sock, target = _connect(url, timeout, tls)
    with sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


# ---- WebSocket -------------------------------------------------------------------------

class WsClient:
    def __init__(self, url: str, protocols=(V4,), timeout: float = 10.0,
                 tls: ssl.SSLContext | None = None):
        self.sock, target = _connect(url, timeout, tls)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.sock.sendall(self.ws.send(Request(host="localhost", target=target,
                                               subprotocols=list(protocols))))
        self.protocol = None
        self.messages: list[tuple[int, bytes]] = []
        self.frame_types: set[str] = set()      # "binary" / "text", as received
        self.closed = False
        self._parts: list[bytes] = []
        status, body = None, b""
        deadline = time.monotonic() + timeout
        while self.protocol is None:
            if not self._receive(deadline) and time.monotonic() >= deadline:
                self.sock.close()
                raise TimeoutError(f"{url}: no WebSocket handshake reply in {timeout} s")
            for event in self.ws.events():
                if isinstance(event, AcceptConnection):
                    self.protocol = event.subprotocol or ""
                    self._take(self.ws.events())
                    break
                if isinstance(event, RejectConnection):
                    status = event.status_code
                    if not event.has_body:
                        raise Refused(status, b"")
                elif isinstance(event, RejectData):
                    body += event.data
                    if event.body_finished:
                        raise Refused(status, body)

    def _receive(self, deadline: float) -> bool:
        if not _readable(self.sock, deadline - time.monotonic()):
            return False
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        self.ws.receive_data(data or None)
        if not data:
            self.closed = True
        return True

    @property
    def base64(self) -> bool:
        return "base64" in (self.protocol or "")

    def _take(self, events) -> None:
        for event in events:
            if isinstance(event, (BytesMessage, TextMessage)):
                text = isinstance(event, TextMessage)
                self._parts.append(event.data.encode() if text else bytes(event.data))
                if event.message_finished:
                    self.frame_types.add("text" if text else "binary")
                    message = b"".join(self._parts)
                    self._parts = []
                    self.messages.append(self._decode(message))
            elif isinstance(event, CloseConnection):
                if not self.closed:
                    try:
                        self.sock.sendall(self.ws.send(event.response()))
                    except Exception:  # noqa: BLE001
                        pass
                self.closed = True

    def pump(self, timeout: float = 0.2) -> None:
        deadline = time.monotonic() + timeout
        while not self.closed and self._receive(deadline):
            self._take(self.ws.events())

    def _decode(self, message: bytes) -> tuple[int, bytes]:
        if self.base64:
            return message[0] - ord("0"), base64.b64decode(message[1:], validate=True)
        return message[0], message[1:]

    def send(self, channel: int, data: bytes) -> None:
        if self.base64:
            message = chr(ord("0") + channel) + base64.b64encode(data).decode()
        else:
            message = bytes((channel,)) + data
        self.send_raw(message)

    def send_raw(self, message: bytes | str) -> None:
        """One message as given: bytes binary, str text."""
        self.sock.sendall(self.ws.send(Message(data=message)))

    def close_stdin(self) -> None:
        self.send(255, bytes((STDIN,)))

    def resize(self, width: int, height: int) -> None:
        self.send(RESIZE, json.dumps({"Width": width, "Height": height}).encode())

    def output(self, channel: int) -> bytes:
        return b"".join(d for c, d in self.messages if c == channel)

    def wait_for(self, channel: int, text: bytes, timeout: float = 10.0) -> bytes:
        deadline = time.monotonic() + timeout
        while text not in self.output(channel):
            if self.closed or time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not seen on channel {channel}: {self.messages}")
            self.pump(0.1)
        return self.output(channel)

    def run(self, timeout: float = 20.0) -> dict[int, bytes]:
        """Everything until the server closes: the output per channel."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            if time.monotonic() > deadline:
                raise AssertionError(f"server did not close: {self.messages}")
            self.pump(0.2)
        self.sock.close()
        return {c: self.output(c) for c in {c for c, _ in self.messages}}

    def status(self) -> dict:
        return json.loads(self.output(ERROR))

    # port forward: port i's data on channel 2i, its errors on 2i+1, each
    # starting with the port (u16, little-endian)

    def port_channel(self, channel: int) -> tuple[int, bytes]:
        """(the port the channel announced, what came after)."""
        data = self.output(channel)
        assert len(data) >= 2, f"channel {channel} has no port prefix: {self.messages}"
        return int.from_bytes(data[:2], "little"), data[2:]

    def forward(self, index: int, data: bytes) -> None:
        self.send(2 * index, data)

    def close(self) -> None:
        self.sock.close()


# ---- SPDY --------------------------------------------------------------------------------

class SpdyClient:
    """`protocols` go out as X-Stream-Protocol-Version headers, one each
    (none at all for an empty tuple)."""

    def __init__(self, url: str, protocols=(V4,), timeout: float = 10.0,
                 tls: ssl.SSLContext | None = None):
        self.sock, target = _connect(url, timeout, tls)
        lines = [f"POST {target} HTTP/1.1", "Host: localhost", "Connection: Upgrade",
                 "Upgrade: SPDY/3.1", "Content-Length: 0",
                 *(f"X-Stream-Protocol-Version: {p}" for p in protocols)]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        status = int(head.split()[1])
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower().decode()] = value.strip().decode()
        if status != 101:
            while chunk := self.sock.recv(65536):
                rest += chunk
            self.sock.close()
            raise Refused(status, rest, headers)
        self.protocol = headers.get("x-stream-protocol-version")
        self.conn = SpdyConnection(client=True, peer_flow_control=False)
        self.data: dict[int, bytearray] = {}
        self.counted: dict[int, int] = {}    # streams whose bytes are counted, not kept
        self.frames: dict[int, int] = {}     # DATA events on the counted streams
        self.ended: set[int] = set()
        self.resets: set[int] = set()        # streams the server reset (also in `ended`)
        self.replied: set[int] = set()
        self.closed = False
        self._feed(rest)

    def _feed(self, data: bytes) -> None:
        for event in self.conn.receive_data(data):
            if isinstance(event, DataReceived):
                if event.stream_id in self.counted:
                    self.counted[event.stream_id] += len(event.data)
                    self.frames[event.stream_id] = self.frames.get(event.stream_id, 0) + 1
                    head = self.data.setdefault(event.stream_id, bytearray())
                    if len(head) < COUNTED_PREFIX:    # keep the start (headers) only
                        head.extend(event.data[:COUNTED_PREFIX - len(head)])
                else:
                    self.data.setdefault(event.stream_id, bytearray()).extend(event.data)
                if event.fin:
                    self.ended.add(event.stream_id)
            elif isinstance(event, StreamReplied):
                self.replied.add(event.stream_id)
            elif isinstance(event, StreamReset):
                self.ended.add(event.stream_id)
                if event.remote:
                    self.resets.add(event.stream_id)
            elif isinstance(event, StreamOpened):
                pass
        self._flush()

    def _flush(self) -> None:
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def open(self, streamtype: str, count_only: bool = False, **headers: str) -> int:
        """A new stream; with `count_only` its data is counted in
        `counted[id]`, its first COUNTED_PREFIX bytes kept in `data[id]`,
        the rest dropped (bulk transfers)."""
        sid = self.conn.open_stream({"streamtype": streamtype, **headers})
        if count_only:
            self.counted[sid] = 0
        self._flush()
        return sid

    def send(self, stream_id: int, data: bytes, fin: bool = False) -> None:
        self.conn.send_data(stream_id, data, fin)
        self._flush()

    def pump(self, timeout: float = 0.2, until=None) -> None:
        """Receive for `timeout` seconds, or until the connection closes or
        `until()` turns true."""
        deadline = time.monotonic() + timeout
        while not self.closed and not (until is not None and until()):
            if not _readable(self.sock, deadline - time.monotonic()):
                return
            try:
                data = self.sock.recv(262144)
            except ConnectionResetError:
                data = b""
            if not data:
                self.closed = True
                return
            self._feed(data)

    def wait_ended(self, stream_id: int, timeout: float = 20.0) -> bytes:
        deadline = time.monotonic() + timeout
        while stream_id not in self.ended and not self.closed:
            if time.monotonic() > deadline:
                raise AssertionError(f"stream {stream_id} did not end: {self.data}")
            self.pump(0.2, until=lambda: stream_id in self.ended)
        return bytes(self.data.get(stream_id, b""))

    def wait_for(self, stream_id: int, text: bytes, timeout: float = 10.0) -> bytes:
        deadline = time.monotonic() + timeout
        while text not in self.data.get(stream_id, b""):
            if self.closed or time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not seen on stream {stream_id}: {self.data}")
            self.pump(0.1)
        return self.data[stream_id]

    def close(self) -> None:
        self.sock.close()
