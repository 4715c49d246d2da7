"""The CRI's gRPC server: HTTP/2 with prior knowledge on a unix socket,
one reader thread per connection, calls on a bounded thread pool."""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable

from crio_native.cri.wire.call import Method, Service
from crio_native.cri.wire.connection import Connection

log = logging.getLogger("crio_native.cri.wire")

LISTEN_BACKLOG = 128


class Server:
    def __init__(self, services: Iterable[Service], max_workers: int,
                 max_send: int, max_recv: int):
        self.methods: dict[str, Method] = {
            f"/{service.full_name}/{name}": method
            for service in services for name, method in service.methods.items()}
        self.max_send = max_send
        self.max_recv = max_recv
        self.pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="cri")
        self.listener: socket.socket | None = None
        self.connections: set[Connection] = set()
        self.readers: list[threading.Thread] = []
        self.stopping = False
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._running = 0
        self._acceptor: threading.Thread | None = None

    def bind(self, path: str, mode_umask: int = 0o117) -> None:
        """Listen on the unix socket `path`, made under `mode_umask`."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old_umask = os.umask(mode_umask)
        try:
            sock.bind(path)
        except OSError:
            sock.close()
            raise
        finally:
            os.umask(old_umask)
        sock.listen(LISTEN_BACKLOG)
        self.listener = sock

    def start(self) -> None:
        if self.listener is None:
            raise RuntimeError("bind() the server before start()")
        self._acceptor = threading.Thread(target=self._accept, name="cri-accept", daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        assert self.listener is not None
        while not self.stopping:
            try:
                sock, _ = self.listener.accept()
            except OSError as e:
                if self.stopping:
                    return
                log.warning("accept on the CRI socket failed: %s", e)
                time.sleep(0.1)
                continue
            sock.set_inheritable(False)
            connection = Connection(sock, self)
            reader = threading.Thread(target=connection.serve, name="cri-conn", daemon=True)
            with self._lock:
                if self.stopping:
                    sock.close()
                    return
                self.connections.add(connection)
                self.readers = [r for r in self.readers if r.is_alive()] + [reader]
            reader.start()

    def forget(self, connection: Connection) -> None:
        with self._lock:
            self.connections.discard(connection)

    def submit(self, run: Callable[..., None], *args: Any) -> None:
        with self._lock:
            self._running += 1
        try:
            self.pool.submit(self._counted, run, *args)
        except RuntimeError:      # the pool is shut down: the server stopped
            self._done()

    def _counted(self, run: Callable[..., None], *args: Any) -> None:
        try:
            run(*args)
        finally:
            self._done()

    def _done(self) -> None:
        with self._lock:
            self._running -= 1
            if self._running == 0:
                self._idle.notify_all()

    def stop(self, grace: float) -> None:
        """No new calls; the running ones get up to `grace` seconds to
        finish; then every connection is closed (what is left is cancelled)."""
        with self._lock:
            self.stopping = True
            connections = list(self.connections)
        if self.listener is not None:
            try:
                self.listener.shutdown(socket.SHUT_RDWR)   # wakes accept()
            except OSError:
                pass
            self.listener.close()
        if self._acceptor is not None:
            self._acceptor.join(5.0)
        for connection in connections:
            connection.go_away()
        deadline = time.monotonic() + grace
        with self._lock:
            while self._running and (left := deadline - time.monotonic()) > 0:
                self._idle.wait(left)
            connections = list(self.connections)
            readers = list(self.readers)
        for connection in connections:
            connection.close()
        for reader in readers:
            reader.join(5.0)
        self.pool.shutdown(wait=False, cancel_futures=True)
