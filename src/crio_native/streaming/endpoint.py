"""The streaming server's address, held from start-up; the server itself
(server.py: h11, wsproto, SPDY, an asyncio loop on a thread of its own)
started at the first Exec, Attach or PortForward.

A daemon that never streams so keeps about 2 MiB less resident (bench
daemon_rss).  The listening socket is bound at start, so a port in use or
an address that is not the node's still stops the start, the port (with
stream_port 0, the kernel's pick) is fixed from the start, and a client
that connects before the first URL waits in the backlog, as it would for a
busy server.  The TLS certificate and key are loaded at start too, for the
same reason.  An address that resolves to several (a name with IPv4 and
IPv6 addresses) starts the server at once, as before."""
from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import ssl
import threading
from typing import TYPE_CHECKING, Any

from crio_native.streaming.tokens import StreamRequest, TokenCache

if TYPE_CHECKING:
    from crio_native.streaming.server import StreamingServer

log = logging.getLogger(__name__)

BACKLOG = 100   # asyncio.start_server's


def base_url(address: str, port: int, tls: bool) -> str:
    """The streaming URLs' scheme, host (an IPv6 one bracketed) and port."""
    host = address
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{port}"


def bind_listener(address: str, port: int) -> socket.socket | None:
    """A listening TCP socket on address:port as asyncio would bind it; None
    when the address resolves to more than one socket address."""
    found = socket.getaddrinfo(address or None, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    if len({info[4] for info in found}) != 1:
        return None
    family, kind, proto, _, where = found[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(where)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class StreamingEndpoint:
    """What the RPCs and the daemon use of the streaming server: url_for
    and stop; the server runs from the first url_for on."""

    def __init__(self, containers: Any, sandboxes: Any, *, address: str = "127.0.0.1",
                 port: int = 0, tls_cert: str = "", tls_key: str = "",
                 tokens: TokenCache | None = None, idle_timeout: float | None = None):
        self.address, self.tls_cert = address, tls_cert
        self.tokens = tokens if tokens is not None else TokenCache()
        self.requested_port, self.tls_key, self.idle_timeout = port, tls_key, idle_timeout
        self._managers = (containers, sandboxes)
        self._server: StreamingServer | None = None
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self.port = 0

    def start(self) -> "StreamingEndpoint":
        """Bind (and check the TLS files); OSError or ssl.SSLError as the
        server's own start would raise."""
        if self.tls_cert:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(
                self.tls_cert, self.tls_key)
        self._sock = bind_listener(self.address, self.requested_port)
        if self._sock is None:
            self.port = self._running().port
        else:
            self.port = self._sock.getsockname()[1]
            log.info("streaming server listening (started at the first Exec, Attach or "
                     "PortForward)", extra={"fields": {"url": self.base_url}})
        return self

    @property
    def base_url(self) -> str:
        return base_url(self.address, self.port, bool(self.tls_cert))

    def url_for(self, request: StreamRequest) -> str:
        """Store `request` under a new token; its single-use URL (the server
        started first, if it is not yet)."""
        self._running()
        return f"{self.base_url}/{request.kind}/{self.tokens.insert(request)}"

    def _running(self) -> StreamingServer:
        with self._lock:
            if self._server is None:
                from crio_native.streaming.server import StreamingServer

                self._server = StreamingServer(
                    *self._managers, address=self.address, port=self.requested_port,
                    tls_cert=self.tls_cert, tls_key=self.tls_key, tokens=self.tokens,
                    idle_timeout=self.idle_timeout, sock=self._sock).start()
            return self._server

    def stop(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.stop()
        elif self._sock is not None:
            self._sock.close()
        self._sock = None
