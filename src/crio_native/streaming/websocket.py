"""The WebSocket transport (wsproto after our own h11 handshake): one
message per chunk, carrying its channel as the negotiated subprotocol
frames it (ws_channels: a leading byte, or a leading digit and base64).

Remote command: 0 stdin, 1 stdout, 2 stderr, 3 error (the status), 4
resize; v5 adds 255, whose message [255, n] says the client closed channel
n (stdin).  Port forward (the kubelet's portforward/websocket.go): per
requested port i, channel 2i data and 2i+1 error, each first carrying the
port as a little-endian u16."""
from __future__ import annotations

import asyncio
import contextlib
import logging

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage
from wsproto.utilities import ProtocolError as WsProtocolError

from crio_native.streaming import protocol as sp
from crio_native.streaming.idle import Activity
from crio_native.streaming.streams import CommandStreams, PortStream
from crio_native.streaming.ws_channels import ChannelProtocol

log = logging.getLogger(__name__)

READ_SIZE = 65536
MAX_MESSAGE = 16 << 20   # a client message larger than this ends the connection


class WebSocket:
    """A server-side WebSocket over asyncio streams, after the handshake."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 trailing: bytes = b"", activity: Activity | None = None):
        self.reader, self.writer = reader, writer
        self.ws = Connection(ConnectionType.SERVER, trailing_data=trailing)
        self.activity = activity if activity is not None else Activity()
        self._lock = asyncio.Lock()
        self.closed = False

    async def send(self, data: bytes | str) -> None:
        """One message, binary (bytes) or text (str); waits while the
        client is slow to read."""
        if self.closed or self.ws.state != ConnectionState.OPEN:
            raise ConnectionResetError("websocket closed")
        async with self._lock:
            message = BytesMessage(data=data) if isinstance(data, bytes) else TextMessage(data=data)
            self.writer.write(self.ws.send(message))
            await self.writer.drain()
            self.activity.touch()

    async def messages(self):
        """Yield each message from the client until it closes, text ones as
        their UTF-8 bytes: wsstream reads both kinds alike."""
        parts: list[bytes] = []
        size = 0
        while not self.closed:
            for event in self.ws.events():
                if isinstance(event, (BytesMessage, TextMessage)):
                    data = event.data.encode() if isinstance(event, TextMessage) \
                        else bytes(event.data)
                    parts.append(data)
                    size += len(data)
                    if size > MAX_MESSAGE:
                        await self.close(1009, "message too big")
                        return
                    if event.message_finished:
                        yield b"".join(parts)
                        parts, size = [], 0
                elif isinstance(event, Ping):
                    await self._raw(self.ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    with contextlib.suppress(WsProtocolError, ConnectionError):
                        if self.ws.state == ConnectionState.REMOTE_CLOSING:
                            await self._raw(self.ws.send(event.response()))
                    self.closed = True
                    return
            try:
                data = await self.reader.read(READ_SIZE)
            except ConnectionError:
                data = b""
            if not data:
                self.closed = True
                return
            self.activity.touch()
            try:
                self.ws.receive_data(data)
            except WsProtocolError:
                self.closed = True
                return

    async def _raw(self, data: bytes) -> None:
        async with self._lock:
            self.writer.write(data)
            await self.writer.drain()
            self.activity.touch()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.ws.state == ConnectionState.OPEN:
            with contextlib.suppress(WsProtocolError, ConnectionError):
                await self._raw(self.ws.send(CloseConnection(code=code, reason=reason)))
        self.closed = True


class WsCommandStreams(CommandStreams):
    def __init__(self, ws: WebSocket, channels: ChannelProtocol, **kw):
        super().__init__(protocol=channels.status, **kw)
        self.ws, self.channels = ws, channels

    async def send(self, channel: int, data: bytes) -> None:
        try:
            await self.ws.send(self.channels.encode(channel, data))
        except ConnectionError:
            self.lost()

    async def send_status(self, status: dict) -> None:
        # the unversioned protocols say nothing on success
        if body := self.status_bytes(status):
            await self.send(sp.ERROR, body)

    async def read_client(self) -> None:
        """Feed the client's messages in until it goes away."""
        resize = sp.ResizeDecoder()
        try:
            async for message in self.ws.messages():
                if (decoded := self.channels.decode(message)) is None:
                    continue
                channel, payload = decoded
                if channel == sp.STDIN:
                    await self.feed_stdin(payload)
                elif channel == sp.RESIZE:
                    for size in resize.feed(payload):
                        self.feed_resize(size)
                elif channel == sp.CLOSE and self.channels.close_signal and payload[:1] == b"\0":
                    self.end_stdin()
        finally:
            self.lost()


async def serve_command(ws: WebSocket, streams: WsCommandStreams, session) -> None:
    """Run `session` (a coroutine using `streams`) while reading the client;
    close the connection when the session ends."""
    # the kubelet tells the client the connection is up with an empty
    # message on the lowest channel it writes
    first = sp.STDOUT if streams.stdout else sp.STDERR if streams.stderr else sp.ERROR
    await streams.send(first, b"")
    reader = asyncio.ensure_future(streams.read_client())
    try:
        await session
    finally:
        await ws.close()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


class WsPortStream(PortStream):
    def __init__(self, ws: WebSocket, channels: ChannelProtocol, index: int, port: int):
        super().__init__(port)
        self.ws, self.channels = ws, channels
        self.data_channel, self.error_channel = 2 * index, 2 * index + 1
        self.done = asyncio.Event()

    async def _send(self, channel: int, data: bytes) -> None:
        try:
            await self.ws.send(self.channels.encode(channel, data))
        except ConnectionError:
            self.lost()

    async def start(self) -> None:
        prefix = sp.port_prefix(self.port)
        await self._send(self.data_channel, prefix)
        await self._send(self.error_channel, prefix)

    async def send(self, data: bytes) -> None:
        await self._send(self.data_channel, data)

    async def close_write(self) -> None:
        pass           # a channel cannot be half-closed; the connection closes at the end

    async def send_error(self, message: str) -> None:
        await self._send(self.error_channel, message.encode())

    async def close(self) -> None:
        self.done.set()


async def serve_ports(ws: WebSocket, channels: ChannelProtocol, ports: list[int],
                      run_port) -> None:
    """One relay per requested port, all on this connection; it closes when
    every one has ended or the client goes away."""
    streams = [WsPortStream(ws, channels, i, port) for i, port in enumerate(ports)]
    by_channel = {s.data_channel: s for s in streams}
    for s in streams:
        await s.start()

    async def read_client() -> None:
        try:
            async for message in ws.messages():
                decoded = channels.decode(message)
                if decoded is not None and decoded[0] in by_channel:
                    await by_channel[decoded[0]].feed(decoded[1])
        finally:
            for s in streams:
                s.lost()

    reader = asyncio.ensure_future(read_client())
    relays = [asyncio.ensure_future(run_port(s)) for s in streams]
    try:
        await asyncio.gather(*relays)
    finally:
        for task in relays:
            task.cancel()
        await asyncio.gather(*relays, return_exceptions=True)
        await ws.close()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
