"""The SPDY/3.1 transport over the sans-IO SpdyConnection (spdy.py), the
way the kubelet's streaming server speaks it (moby/spdystream): the client
opens one stream per channel, each with a `streamtype` header; the server
replies to each at once.

Remote command: error, stdin, stdout, stderr and resize streams; the
server waits (STREAM_CREATION_TIMEOUT) for the ones the request implies,
runs the session, writes the status on the error stream, closes its
streams and the connection.  The versions differ as the kubelet's
remotecommand handlers do: v3 and later take a resize stream (and wait for
it with a tty); v1 and v2 ignore one; v4 and v5 write a JSON status, v2 and
v3 the failure's text; v1 resets the error stream and closes its half of
stdin as soon as the streams are in, so a v1 client gets no status at
all.

Port forward: a pair of streams (`streamtype` error, then data) per
forwarded connection, matched by `requestid`, with the target in `port`;
any number of pairs, at any time."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from crio_native.streaming import protocol as sp
from crio_native.streaming.idle import Activity
from crio_native.streaming.spdy import (DataReceived, GoAwayReceived, ProtocolError, RstStatus,
                                        SpdyConnection, SpdyError, StreamOpened, StreamReset)
from crio_native.streaming.streams import CommandStreams, PortStream
from crio_native.streaming.tokens import StreamRequest

log = logging.getLogger(__name__)

READ_SIZE = 65536
STREAM_CREATION_TIMEOUT = 30.0   # the kubelet's default


class SpdySession:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 trailing: bytes = b"", activity: Activity | None = None):
        self.reader, self.writer = reader, writer
        self.activity = activity if activity is not None else Activity()
        # moby/spdystream never sends WINDOW_UPDATE: do not wait for it
        self.conn = SpdyConnection(client=False, peer_flow_control=False)
        self._trailing = trailing
        self.opened: asyncio.Queue[StreamOpened] = asyncio.Queue()
        # stream id -> (feed, end, lost) callbacks
        self.sinks: dict[int, tuple[Any, Any, Any]] = {}
        # what came on a stream before its session took it: data, fin, reset
        self._early: dict[int, list] = {}
        self.closed = asyncio.Event()

    # ---- io --------------------------------------------------------------------------

    async def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.writer.write(data)
            await self.writer.drain()
            self.activity.touch()

    async def send(self, stream_id: int, data: bytes, fin: bool = False) -> None:
        if self.closed.is_set():
            raise ConnectionResetError("SPDY connection closed")
        with contextlib.suppress(SpdyError):   # the client reset the stream
            self.conn.send_data(stream_id, data, fin)
        await self.flush()

    async def read_loop(self) -> None:
        data = self._trailing
        try:
            while True:
                if data:
                    for event in self.conn.receive_data(data):
                        await self._dispatch(event)
                    await self.flush()
                data = await self.reader.read(READ_SIZE)
                if not data:
                    return
                self.activity.touch()
        except ProtocolError as e:
            log.info("SPDY protocol error from client: %s", e)
            with contextlib.suppress(Exception):
                self.conn.go_away(e.status)
                await self.flush()
        except ConnectionError:
            pass
        finally:
            self.closed.set()
            for sink in list(self.sinks.values()):
                sink[2]()

    async def _dispatch(self, event) -> None:
        if isinstance(event, StreamOpened):
            self.conn.reply(event.stream_id, {})
            self._early[event.stream_id] = [[], event.fin, False]
            await self.opened.put(event)
        elif isinstance(event, DataReceived):
            early = self._early.get(event.stream_id)
            if early is not None:
                early[0].append(event.data)
                early[1] = early[1] or event.fin
                return
            sink = self.sinks.get(event.stream_id)
            if sink is not None and event.data:
                await sink[0](event.data)
            if event.fin:
                self._end(event.stream_id)
        elif isinstance(event, StreamReset):
            early = self._early.get(event.stream_id)
            if early is not None:
                early[2] = True
            sink = self.sinks.pop(event.stream_id, None)
            if sink is not None:
                sink[2]()
        elif isinstance(event, GoAwayReceived):
            pass          # the client opens no more streams; the open ones go on

    async def take(self, stream_id: int, feed, end, lost) -> None:
        """Route a stream's input to a session, with what came before."""
        fin = reset = False
        early = self._early.get(stream_id)
        if early is not None:
            while early[0]:      # the read loop may add more while we wait
                data = early[0].pop(0)
                if data:
                    await feed(data)
            del self._early[stream_id]
            fin, reset = early[1], early[2]
        self.sinks[stream_id] = (feed, end, lost)
        if reset or self.closed.is_set():
            lost()
        elif fin:
            end()

    def _end(self, stream_id: int) -> None:
        sink = self.sinks.get(stream_id)
        if sink is not None:
            sink[1]()

    async def next_opened(self, timeout: float | None = None) -> StreamOpened | None:
        """The next stream the client opens; None once the connection has
        closed or `timeout` passed.  Cancellation-safe: no waiter outlives it."""
        opened = asyncio.ensure_future(self.opened.get())
        closed = asyncio.ensure_future(self.closed.wait())
        try:
            await asyncio.wait({opened, closed}, timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
            return opened.result() if opened.done() else None
        finally:
            for waiter in (opened, closed):
                waiter.cancel()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.go_away()
            await self.flush()

    # ---- remote command ----------------------------------------------------------------

    async def serve_command(self, request: StreamRequest, protocol: str, make_session) -> None:
        reader = asyncio.ensure_future(self.read_loop())
        try:
            streams = await self._command_streams(request, protocol)
            if streams is None:
                return
            session = asyncio.ensure_future(make_session(streams))
            try:
                await session
            finally:
                session.cancel()
                await asyncio.gather(session, return_exceptions=True)
            await streams.close_all()
        finally:
            await self.close()
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _command_streams(self, request: StreamRequest,
                               protocol: str) -> "SpdyCommandStreams | None":
        want = {sp.STREAM_ERROR}
        if request.stdin:
            want.add(sp.STREAM_STDIN)
        if request.stdout:
            want.add(sp.STREAM_STDOUT)
        if request.stderr and not request.tty:
            want.add(sp.STREAM_STDERR)
        if request.tty and sp.has_resize(protocol):
            want.add(sp.STREAM_RESIZE)
        streams = SpdyCommandStreams(self, stdin=request.stdin, stdout=request.stdout,
                                     stderr=request.stderr and not request.tty,
                                     tty=request.tty, protocol=protocol)
        deadline = asyncio.get_running_loop().time() + STREAM_CREATION_TIMEOUT
        while not want <= set(streams.ids):
            left = deadline - asyncio.get_running_loop().time()
            event = await self.next_opened(max(left, 0))
            if event is None:
                if not self.closed.is_set():
                    log.info("SPDY client did not open the %s streams in time",
                             sorted(want - set(streams.ids)))
                return None
            kind = event.headers.get("streamtype", "")
            if kind in (sp.STREAM_ERROR, sp.STREAM_STDIN, sp.STREAM_STDOUT, sp.STREAM_STDERR,
                        sp.STREAM_RESIZE):
                await streams.adopt(kind, event.stream_id)
            else:
                self._early.pop(event.stream_id, None)
                self.conn.reset(event.stream_id, RstStatus.REFUSED_STREAM)
        if protocol == sp.V1:
            await streams.v1_start()
        return streams

    # ---- port forward ---------------------------------------------------------------------

    async def serve_ports(self, run_port) -> None:
        reader = asyncio.ensure_future(self.read_loop())
        pairs: dict[str, dict[str, StreamOpened]] = {}
        relays: set[asyncio.Task] = set()
        try:
            while True:
                event = await self.next_opened()
                if event is None:
                    break
                request_id = event.headers.get("requestid") or str(event.stream_id)
                kind = event.headers.get("streamtype", "")
                if kind not in (sp.STREAM_DATA, sp.STREAM_ERROR):
                    self._early.pop(event.stream_id, None)
                    self.conn.reset(event.stream_id, RstStatus.REFUSED_STREAM)
                    continue
                pair = pairs.setdefault(request_id, {})
                pair[kind] = event
                if len(pair) < 2:
                    continue
                del pairs[request_id]
                stream = await self._port_stream(pair)
                if stream is not None:
                    await stream.take()
                    task = asyncio.ensure_future(run_port(stream))
                    relays.add(task)
                    task.add_done_callback(relays.discard)
        finally:
            for task in list(relays):
                task.cancel()
            await asyncio.gather(*relays, return_exceptions=True)
            await self.close()
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _port_stream(self, pair: dict[str, StreamOpened]) -> "SpdyPortStream | None":
        data, error = pair[sp.STREAM_DATA], pair[sp.STREAM_ERROR]
        text = data.headers.get("port", "")
        stream = SpdyPortStream(self, data.stream_id, error.stream_id,
                                int(text) if text.isdigit() else 0)
        if not text.isdigit() or not 1 <= int(text) <= 65535:
            await stream.send_error(f"invalid port header {text!r}: must be 1-65535")
            await stream.close()
            return None
        return stream


class SpdyCommandStreams(CommandStreams):
    def __init__(self, session: SpdySession, **kw):
        super().__init__(**kw)
        self.session = session
        self.ids: dict[str, int] = {}
        self._resize = sp.ResizeDecoder()

    async def adopt(self, kind: str, stream_id: int) -> None:
        self.ids[kind] = stream_id
        take = self.session.take
        if kind == sp.STREAM_STDIN:
            await take(stream_id, self.feed_stdin, self.end_stdin, self.end_stdin)
        elif kind == sp.STREAM_RESIZE and sp.has_resize(self.protocol):
            await take(stream_id, self._on_resize, _nothing, _nothing)
        elif kind == sp.STREAM_ERROR:
            # the client resetting the error stream is the client leaving
            await take(stream_id, _drop, _nothing, self.lost)
        else:
            await take(stream_id, _drop, _nothing, _nothing)
        if self.session.closed.is_set():
            self.lost()

    async def v1_start(self) -> None:
        """What the kubelet's v1 handler does once every stream is in (the
        Kubernetes 1.0 behaviour it keeps): reset the error stream, so the
        status is never sent (send_status then finds the stream gone), and
        close the server's half of stdin.  The error stream's callbacks stay:
        the connection closing still means the client left."""
        conn = self.session.conn
        conn.reset(self.ids[sp.STREAM_ERROR], RstStatus.CANCEL)
        stdin = self.ids.get(sp.STREAM_STDIN)
        if stdin is not None:
            with contextlib.suppress(SpdyError):
                conn.end_stream(stdin)
        with contextlib.suppress(ConnectionError):
            await self.session.flush()

    async def _on_resize(self, data: bytes) -> None:
        for size in self._resize.feed(data):
            self.feed_resize(size)

    async def send(self, channel: int, data: bytes) -> None:
        kind = {sp.STDOUT: sp.STREAM_STDOUT, sp.STDERR: sp.STREAM_STDERR}[channel]
        try:
            await self.session.send(self.ids[kind], data)
        except ConnectionError:
            self.lost()

    async def send_status(self, status: dict) -> None:
        body = self.status_bytes(status)
        with contextlib.suppress(ConnectionError):
            await self.session.send(self.ids[sp.STREAM_ERROR], body, fin=True)

    async def close_all(self) -> None:
        """FIN on every stream (the error stream's comes with the status), so
        the client's copies end; client-go (v2 on) also waits for the
        server's FIN on stdin before it closes its own half."""
        for kind in (sp.STREAM_STDOUT, sp.STREAM_STDERR, sp.STREAM_ERROR, sp.STREAM_STDIN,
                     sp.STREAM_RESIZE):
            stream_id = self.ids.get(kind)
            if stream_id is not None and self.session.conn.is_open(stream_id):
                with contextlib.suppress(SpdyError, ConnectionError):
                    self.session.conn.end_stream(stream_id)
        with contextlib.suppress(ConnectionError):
            await self.session.flush()


class SpdyPortStream(PortStream):
    def __init__(self, session: SpdySession, data_id: int, error_id: int, port: int):
        super().__init__(port)
        self.session, self.data_id, self.error_id = session, data_id, error_id

    async def take(self) -> None:
        await self.session.take(self.error_id, _drop, _nothing, _nothing)
        await self.session.take(self.data_id, self.feed, self.end, self.lost)

    async def _send(self, stream_id: int, data: bytes, fin: bool = False) -> None:
        try:
            await self.session.send(stream_id, data, fin)
        except ConnectionError:
            self.lost()

    async def send(self, data: bytes) -> None:
        await self._send(self.data_id, data)

    async def close_write(self) -> None:
        if self.session.conn.is_open(self.data_id):
            await self._send(self.data_id, b"", fin=True)

    async def send_error(self, message: str) -> None:
        await self._send(self.error_id, message.encode())

    async def close(self) -> None:
        for stream_id in (self.data_id, self.error_id):
            self.session.sinks.pop(stream_id, None)
            if self.session.conn.is_open(stream_id):
                with contextlib.suppress(SpdyError):
                    self.session.conn.end_stream(stream_id)
        with contextlib.suppress(ConnectionError):
            await self.session.flush()


async def _drop(data: bytes) -> None:
    pass


def _nothing() -> None:
    pass
