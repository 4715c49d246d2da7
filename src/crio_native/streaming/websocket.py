"""The WebSocket transport (wsproto after our own h11 handshake): one
binary message per chunk, its first byte the channel.

Remote command (`v4.channel.k8s.io`, `v5.channel.k8s.io`): 0 stdin, 1
stdout, 2 stderr, 3 error (the status), 4 resize; v5 adds 255, whose
message [255, n] says the client closed channel n (stdin).  Port forward
(`v4.channel.k8s.io` or no subprotocol, the kubelet's websocket.go): per
requested port i, channel 2i data and 2i+1 error, each first carrying the
port as a little-endian u16."""
from __future__ import annotations

import asyncio
import contextlib
import logging

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage
from wsproto.utilities import ProtocolError as WsProtocolError

from crio_native.streaming import protocol as sp
from crio_native.streaming.idle import Activity
from crio_native.streaming.streams import CommandStreams, PortStream

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

    async def send(self, data: bytes) -> None:
        """One binary message; waits while the client is slow to read."""
        if self.closed or self.ws.state != ConnectionState.OPEN:
            raise ConnectionResetError("websocket closed")
        async with self._lock:
            self.writer.write(self.ws.send(Message(data=data)))
            await self.writer.drain()
            self.activity.touch()

    async def messages(self):
        """Yield each binary message from the client until it closes."""
        parts: list[bytes] = []
        size = 0
        while not self.closed:
            for event in self.ws.events():
                if isinstance(event, BytesMessage):
                    parts.append(bytes(event.data))
                    size += len(event.data)
                    if size > MAX_MESSAGE:
                        await self.close(1009, "message too big")
                        return
                    if event.message_finished:
                        yield b"".join(parts)
                        parts, size = [], 0
                elif isinstance(event, TextMessage):
                    await self.close(1003, "text messages (base64 protocols) are not supported")
                    return
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
    def __init__(self, ws: WebSocket, **kw):
        super().__init__(**kw)
        self.ws = ws

    async def send(self, channel: int, data: bytes) -> None:
        try:
            await self.ws.send(bytes((channel,)) + data)
        except ConnectionError:
            self.lost()

    async def send_status(self, status: dict) -> None:
        await self.send(sp.ERROR, self.status_bytes(status))

    async def read_client(self) -> None:
        """Feed the client's messages in until it goes away."""
        resize = sp.ResizeDecoder()
        try:
            async for message in self.ws.messages():
                if not message:
                    continue
                channel, payload = message[0], message[1:]
                if channel == sp.STDIN:
                    await self.feed_stdin(payload)
                elif channel == sp.RESIZE:
                    for size in resize.feed(payload):
                        self.feed_resize(size)
                elif channel == sp.CLOSE and self.protocol == sp.V5 and payload[:1] == b"\0":
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
    def __init__(self, ws: WebSocket, index: int, port: int):
        super().__init__(port)
        self.ws, self.data_channel, self.error_channel = ws, 2 * index, 2 * index + 1
        self.done = asyncio.Event()

    async def _send(self, channel: int, data: bytes) -> None:
        try:
            await self.ws.send(bytes((channel,)) + data)
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


async def serve_ports(ws: WebSocket, ports: list[int], run_port) -> None:
    """One relay per requested port, all on this connection; it closes when
    every one has ended or the client goes away."""
    streams = [WsPortStream(ws, i, port) for i, port in enumerate(ports)]
    by_channel = {s.data_channel: s for s in streams}
    for s in streams:
        await s.start()

    async def read_client() -> None:
        try:
            async for message in ws.messages():
                if message and message[0] in by_channel:
                    await by_channel[message[0]].feed(message[1:])
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
