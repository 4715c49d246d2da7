"""The client's end of one session as the session sees it, the same for
WebSocket and SPDY: the transport feeds stdin, resizes and the client's
departure in; the session writes stdout and stderr out and finishes with a
status on the error stream."""
from __future__ import annotations

import asyncio

from crio_native.streaming import protocol
from crio_native.streaming.protocol import TerminalSize


class CommandStreams:
    """An exec or attach session's streams.  Transports subclass it and
    implement `send` (one chunk on STDOUT or STDERR, waiting while the
    client is slow) and `send_status` (the error stream, then close)."""

    def __init__(self, *, stdin: bool, stdout: bool, stderr: bool, tty: bool, protocol: str):
        self.stdin, self.stdout, self.stderr, self.tty = stdin, stdout, stderr, tty
        self.protocol = protocol
        self._stdin: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._stdin_ended = False
        self.resizes: asyncio.Queue[TerminalSize] = asyncio.Queue()
        self.gone = asyncio.Event()      # the client went away (or the server stops)

    # ---- transport -> session -------------------------------------------------

    def feed_stdin(self, data: bytes) -> None:
        if self.stdin and data and not self._stdin_ended:
            self._stdin.put_nowait(data)

    def end_stdin(self) -> None:
        if not self._stdin_ended:
            self._stdin_ended = True
            self._stdin.put_nowait(None)

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
        self._data: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._ended = False
        self.gone = asyncio.Event()

    def feed(self, data: bytes) -> None:
        if data and not self._ended:
            self._data.put_nowait(data)

    def end(self) -> None:
        if not self._ended:
            self._ended = True
            self._data.put_nowait(None)

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
