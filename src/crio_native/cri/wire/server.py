"""The CRI's gRPC server: HTTP/2 with prior knowledge on a unix socket,
one reader thread per connection, calls on a bounded set of worker threads."""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from queue import SimpleQueue
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
        self.max_workers = max_workers
        # (run, args) for the workers; None tells one to leave
        self._jobs: SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]] | None] = SimpleQueue()
        self._workers = 0            # threads made (they stay until stop)
        self._waiting = 0            # of them, those free for the next call
        self._closed = False         # stop() is past its grace: no more calls run
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

    @property
    def running_calls(self) -> int:
        """Calls handed to a worker and not yet done (queued or running)."""
        with self._lock:
            return self._running

    def forget(self, connection: Connection) -> None:
        with self._lock:
            self.connections.discard(connection)

    def submit(self, run: Callable[..., None], *args: Any) -> None:
        """run(*args) on a worker: a free one, else a new one while under
        max_workers, else the first to come free.  A plain queue and
        counters, not concurrent.futures: no Future per call, one lock."""
        with self._lock:
            if self._closed:
                return               # past stop's grace: its connection cancelled the call
            self._running += 1
            name = None
            if self._waiting:
                self._waiting -= 1
            elif self._workers < self.max_workers:
                self._workers += 1
                name = f"cri-{self._workers}"
        self._jobs.put((run, args))
        if name is not None:
            threading.Thread(target=self._work, name=name, daemon=True).start()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            run, args = job
            try:
                run(*args)
            except Exception:  # noqa: BLE001 - Connection.run answers its own errors
                log.exception("CRI call failed outside its handler")
            with self._lock:
                self._running -= 1
                self._waiting += 1
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
        with self._lock:
            self._closed = True
            workers, self._workers = self._workers, 0
        while not self._jobs.empty():      # calls that never started: their connections are closed
            self._jobs.get_nowait()
        for _ in range(workers):
            self._jobs.put(None)
