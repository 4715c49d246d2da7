"""The client's end of one session as the session sees it, the same for
WebSocket and SPDY: the transport feeds stdin, resizes and the client's
departure in; the session writes stdout and stderr out and finishes with a
status on the error stream."""
from __future__ import annotations

import asyncio
from collections import deque

from crio_native.streaming import protocol
from crio_native.streaming.protocol import TerminalSize

# Input from the client held for a slow process at most; beyond it the
# transport stops reading, so TCP (or SPDY's window) pushes back.
QUEUE_LIMIT = 1 << 20


class ByteQueue:
    """Chunks from the client to the session, bounded: `put` waits while
    QUEUE_LIMIT bytes are queued; `get` returns None after `end`."""

    def __init__(self, limit: int = QUEUE_LIMIT):
        self.limit = limit
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self.ended = False
        self._readable = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    async def put(self, data: bytes) -> None:
        await self._room.wait()
        if self.ended or not data:
            return
        self._chunks.append(data)
        self._size += len(data)
        self._readable.set()
        if self._size >= self.limit:
            self._room.clear()

    def end(self) -> None:
        self.ended = True
        self._readable.set()
        self._room.set()

    async def get(self) -> bytes | None:
        while not self._chunks:
            if self.ended:
                return None
            self._readable.clear()
            await self._readable.wait()
        data = self._chunks.popleft()
        self._size -= len(data)
        if self._size < self.limit:
            self._room.set()
        return data


class CommandStreams:
    """An exec or attach session's streams.  Transports subclass it and
    implement `send` (one chunk on STDOUT or STDERR, waiting while the
    client is slow) and `send_status` (the error stream, then close)."""

    def __init__(self, *, stdin: bool, stdout: bool, stderr: bool, tty: bool, protocol: str):
        self.stdin, self.stdout, self.stderr, self.tty = stdin, stdout, stderr, tty
        self.protocol = protocol
        self._stdin = ByteQueue()
        self.resizes: asyncio.Queue[TerminalSize] = asyncio.Queue()
        self.gone = asyncio.Event()      # the client went away (or the server stops)

    # ---- transport -> session -------------------------------------------------

    async def feed_stdin(self, data: bytes) -> None:
        if self.stdin:
            await self._stdin.put(data)

    def end_stdin(self) -> None:
        self._stdin.end()

    def feed_resize(self, size: TerminalSize) -> None:
        self.resizes.put_nowait(size)

    def lost(self) -> None:
        self.gone.set()
        self.end_stdin()

    async def read_stdin(self) -> bytes | None:
        """The next chunk of stdin; None at its end."""
        return await self._stdin.get()

    # ---- session -> transport --------------------------------------------------

    async def send(self, channel: int, data: bytes) -> None:
        raise NotImplementedError

    async def send_status(self, status: dict) -> None:
        raise NotImplementedError

    async def finish(self, status: dict) -> None:
        """The error stream's status; the transport then closes the session."""
        if not self.gone.is_set():
            await self.send_status(status)

    def status_bytes(self, status: dict) -> bytes:
        return protocol.encode_status(status, self.protocol)


class PortStream:
    """One forwarded connection's data and error streams.  Transports
    implement `send`, `close_write` (end of the data the client gets) and
    `send_error`; they feed the client's data in."""

    def __init__(self, port: int):
        self.port = port
        self._data = ByteQueue()
        self.gone = asyncio.Event()

    async def feed(self, data: bytes) -> None:
        await self._data.put(data)

    def end(self) -> None:
        self._data.end()

    def lost(self) -> None:
        self.gone.set()
        self.end()

    async def read(self) -> bytes | None:
        return await self._data.get()

    async def send(self, data: bytes) -> None:
        raise NotImplementedError

    async def close_write(self) -> None:
        raise NotImplementedError

    async def send_error(self, message: str) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        """Both streams are done (the error stream closes too)."""
        raise NotImplementedError
