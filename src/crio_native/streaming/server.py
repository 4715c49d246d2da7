"""The streaming server: HTTP/1.1 (h11) on api.stream_address:stream_port,
optionally TLS, upgraded to WebSocket or SPDY/3.1 for the sessions the
Exec, Attach and PortForward RPCs handed out tokens for.

One asyncio loop on one thread serves every connection: sessions are mostly
idle relays, so a thread each would cost more than it buys.  Blocking work
(launching an exec, connecting in a pod's netns, attaching to a monitor)
runs on a small executor of its own.  stop() cancels every session (killing
exec'd processes), closes the listener and joins both."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import h11
from wsproto.utilities import generate_accept_token

from crio_native.errors import InvalidArgument
from crio_native.streaming import protocol as sp
from crio_native.streaming import sessions, websocket, ws_channels
from crio_native.streaming.idle import Activity, run_until_idle
from crio_native.streaming.endpoint import base_url
from crio_native.streaming.tokens import ATTACH, EXEC, KINDS, PORTFORWARD, StreamRequest, TokenCache

log = logging.getLogger(__name__)

HEADER_TIMEOUT = 30.0       # to send the request line and headers
MAX_WS_PORTS = 128          # two channels per port, numbered in one byte
EXECUTOR_WORKERS = 16
STOP_TIMEOUT = 10.0
DEFAULT_IDLE_TIMEOUT = 4 * 3600.0   # api.stream_idle_timeout's default


class StreamingServer:
    def __init__(self, containers, sandboxes, *, address: str = "127.0.0.1", port: int = 0,
                 tls_cert: str = "", tls_key: str = "", tokens: TokenCache | None = None,
                 idle_timeout: float | None = None, sock: socket.socket | None = None):
        self.address, self.requested_port = address, port
        self.sock = sock            # bound and listening already (endpoint.py), or None
        self.idle_timeout = DEFAULT_IDLE_TIMEOUT if idle_timeout is None else idle_timeout
        self.tls_cert, self.tls_key = tls_cert, tls_key
        self.tokens = tokens if tokens is not None else TokenCache()
        self.port = 0
        self._executor = ThreadPoolExecutor(EXECUTOR_WORKERS, thread_name_prefix="stream-io")
        self.backend = sessions.Backend(containers, sandboxes, self._executor)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.Task] = set()
        self._started = threading.Event()
        self._start_error: BaseException | None = None

    # ---- lifecycle ----------------------------------------------------------------

    def start(self) -> "StreamingServer":
        self._thread = threading.Thread(target=self._run, name="streaming", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            self._thread.join()
            self._executor.shutdown(wait=True)
            raise self._start_error
        log.info("streaming server listening", extra={"fields": {"url": self.base_url}})
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._listen())
        except BaseException as e:  # noqa: BLE001 - handed to start()
            self._start_error = e
            self._started.set()
            loop.close()
            return
        self._started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _listen(self) -> None:
        context = None
        if self.tls_cert:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.tls_cert, self.tls_key)
        if self.sock is not None:
            self._server = await asyncio.start_server(self._accept, sock=self.sock, ssl=context)
        else:
            self._server = await asyncio.start_server(self._accept, self.address,
                                                      self.requested_port, ssl=context)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if thread.is_alive():
            future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            with contextlib.suppress(Exception):
                future.result(STOP_TIMEOUT)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(STOP_TIMEOUT)
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._thread = self._loop = None

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # ---- URLs -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return base_url(self.address, self.port, bool(self.tls_cert))

    def url_for(self, request: StreamRequest) -> str:
        """Store `request` under a new token; its single-use URL."""
        return f"{self.base_url}/{request.kind}/{self.tokens.insert(request)}"

    # ---- connections ---------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None   # a connection runs in its own task
        self._connections.add(task)
        try:
            await self._handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - one connection's bug must not end the server
            log.exception("streaming connection failed")
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            request = await asyncio.wait_for(_read_request(conn, reader), HEADER_TIMEOUT)
        except (h11.RemoteProtocolError, asyncio.TimeoutError):
            return
        if request is None:
            return
        target = urlsplit(request.target.decode("ascii", "replace"))
        parts = target.path.strip("/").split("/")
        headers = _headers(request)
        if len(parts) != 2 or parts[0] not in KINDS:
            return await _respond(conn, writer, 404, "404 page not found")
        stream = self.tokens.consume(parts[0], parts[1])
        if stream is None:
            return await _respond(conn, writer, 404, f"{parts[0]}: unknown, used or expired token")
        upgrade = ",".join(headers.get("upgrade", [])).lower()
        query = parse_qs(target.query)
        if "websocket" in upgrade:
            return await self._websocket(conn, reader, writer, headers, stream, query)
        if "spdy/3.1" in upgrade:
            return await self._spdy(conn, reader, writer, headers, stream)
        await _respond(conn, writer, 400, "streaming needs an upgrade to WebSocket "
                       f"({', '.join(ws_channels.names(ws_channels.REMOTE_COMMAND))}) "
                       "or SPDY/3.1")

    # ---- WebSocket -------------------------------------------------------------------------

    async def _websocket(self, conn, reader, writer, headers, stream: StreamRequest,
                         query: dict) -> None:
        key = (headers.get("sec-websocket-key") or [""])[0]
        if not key or (headers.get("sec-websocket-version") or [""])[0] != "13":
            return await _respond(conn, writer, 400, "websocket: Sec-WebSocket-Key and "
                                  "Sec-WebSocket-Version 13 are required")
        offered = [p.strip() for v in headers.get("sec-websocket-protocol", [])
                   for p in v.split(",") if p.strip()]
        supported = ws_channels.PORT_FORWARD if stream.kind == PORTFORWARD \
            else ws_channels.REMOTE_COMMAND
        channels = ws_channels.negotiate(offered, supported)
        if channels is None:
            return await _refuse_protocols(conn, writer, offered, supported)
        if stream.kind == PORTFORWARD:
            try:
                ports = _query_ports(query) or list(stream.ports)
            except InvalidArgument as e:
                return await _respond(conn, writer, 400, str(e))
            if not ports:
                return await _respond(conn, writer, 400, 'query parameter "port" is required')
            if len(ports) > MAX_WS_PORTS:
                return await _respond(conn, writer, 400,
                                      f"at most {MAX_WS_PORTS} ports on one WebSocket")
        reply = [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"),
                 (b"Sec-WebSocket-Accept", generate_accept_token(key.encode()))]
        if channels.name:
            reply.append((b"Sec-WebSocket-Protocol", channels.name.encode()))
        trailing = await _switch(conn, writer, reply)
        activity = Activity()
        ws = websocket.WebSocket(reader, writer, trailing, activity)
        if stream.kind == PORTFORWARD:
            def run_port(port_stream):
                return sessions.run_port(self.backend, stream, port_stream)
            await self._until_idle(stream, activity,
                                   websocket.serve_ports(ws, channels, ports, run_port))
            return
        streams = websocket.WsCommandStreams(
            ws, channels, stdin=stream.stdin, stdout=stream.stdout,
            stderr=stream.stderr and not stream.tty, tty=stream.tty)
        await self._until_idle(stream, activity, websocket.serve_command(
            ws, streams, self._command(stream, streams)))

    async def _until_idle(self, stream: StreamRequest, activity: Activity, session) -> None:
        """Run an upgraded session; end it after api.stream_idle_timeout
        without traffic (the caller then closes the connection)."""
        if await run_until_idle(session, activity, self.idle_timeout):
            log.info("streaming session idle; closed", extra={"fields": {
                "kind": stream.kind, "container": stream.container_id, "pod": stream.pod_id,
                "idle_timeout_s": self.idle_timeout}})

    def _command(self, stream: StreamRequest, streams):
        if stream.kind == EXEC:
            return sessions.run_exec(self.backend, stream, streams)
        assert stream.kind == ATTACH
        return sessions.run_attach(self.backend, stream, streams)

    # ---- SPDY ------------------------------------------------------------------------------

    async def _spdy(self, conn, reader, writer, headers, stream: StreamRequest) -> None:
        from crio_native.streaming import spdy_session
        offered = [p.strip() for v in headers.get("x-stream-protocol-version", [])
                   for p in v.split(",") if p.strip()]
        supported = (sp.PORTFORWARD_SPDY,) if stream.kind == PORTFORWARD else sp.SPDY_PROTOCOLS
        if not offered:
            # Kubernetes 1.0 clients sent none and got channel.k8s.io; the
            # kubelet's handshake has required the header since (it answers
            # nothing at all; a 400 says why)
            return await _respond(conn, writer, 400,
                                  "unable to upgrade: X-Stream-Protocol-Version is required")
        chosen = next((p for p in offered if p in supported), None)
        if chosen is None:
            return await _respond(
                conn, writer, 403,
                f"unable to upgrade: unable to negotiate protocol: client supports "
                f"{_go_list(offered)}, server accepts {_go_list(supported)}",
                [(b"X-Accepted-Stream-Protocol-Versions", ", ".join(supported).encode())])
        trailing = await _switch(conn, writer, [
            (b"Connection", b"Upgrade"), (b"Upgrade", b"SPDY/3.1"),
            (b"X-Stream-Protocol-Version", chosen.encode())])
        activity = Activity()
        session = spdy_session.SpdySession(reader, writer, trailing, activity)
        if stream.kind == PORTFORWARD:
            serve = session.serve_ports(
                lambda port_stream: sessions.run_port(self.backend, stream, port_stream))
        else:
            serve = session.serve_command(stream, chosen,
                                          lambda streams: self._command(stream, streams))
        await self._until_idle(stream, activity, serve)


# ---- HTTP helpers -------------------------------------------------------------------------

async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader) -> h11.Request | None:
    """The request, its body (if any) read and dropped; None if the client
    went away first."""
    request = None
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(65536)
            conn.receive_data(data)
            if not data and request is None:
                return None
            continue
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
            return request
        elif isinstance(event, h11.ConnectionClosed):
            return None


def _headers(request: h11.Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in request.headers:
        out.setdefault(name.decode().lower(), []).append(value.decode("latin-1"))
    return out


def _go_list(items) -> str:
    """A list of strings as Go's %v prints it (the kubelet's messages)."""
    return "[" + " ".join(items) + "]"


def _query_ports(query: dict) -> list[int]:
    ports = []
    for value in query.get("port", []):
        for text in value.split(","):
            if not text.isdigit() or not 1 <= int(text) <= 65535:
                raise InvalidArgument(f"unable to parse {text!r} as a port")
            ports.append(int(text))
    return ports


async def _respond(conn: h11.Connection, writer: asyncio.StreamWriter, status: int, text: str,
                   extra: Sequence[tuple[bytes, bytes]] = ()) -> None:
    body = (text + "\n").encode()
    with contextlib.suppress(h11.LocalProtocolError):
        writer.write(conn.send(h11.Response(status_code=status, headers=[
            (b"Content-Type", b"text/plain; charset=utf-8"),
            (b"Content-Length", str(len(body)).encode()), (b"Connection", b"close"),
            *extra])))
        writer.write(conn.send(h11.Data(data=body)))
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()


async def _refuse_protocols(conn, writer, offered: list[str], supported) -> None:
    """No subprotocol in common: 403, as the kubelet's x/net/websocket
    server answers a failed handshake (it sends no body; ours says why)."""
    await _respond(conn, writer, 403, f"websocket: requested protocol(s) are not supported: "
                   f"{offered}; supports {ws_channels.names(supported)} or none")


async def _switch(conn: h11.Connection, writer: asyncio.StreamWriter,
                  headers: list[tuple[bytes, bytes]]) -> bytes:
    """Send 101 Switching Protocols; the bytes the client sent after its
    request (the start of the new protocol)."""
    writer.write(conn.send(h11.InformationalResponse(status_code=101, headers=headers)))
    await writer.drain()
    return conn.trailing_data[0]
