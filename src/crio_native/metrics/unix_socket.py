"""The metrics endpoint on a unix socket (`[metrics] metrics_socket`, as
CRI-O offers): prometheus-client's own request handler behind a threading
unix-stream HTTP server, so a scraper on the node (or a sidecar with the
socket mounted) reads the same registry without a TCP port.  The socket is
made 0660 (root and its group), a stale one from an earlier run replaced."""
from __future__ import annotations

import os
import socketserver
import stat
import threading
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import MetricsHandler

from crio_native.errors import FailedPrecondition


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _Handler(MetricsHandler):
    def address_string(self) -> str:    # the peer of a unix socket has no address
        return "unix"


def _remove_stale(path: Path) -> None:
    try:
        if stat.S_ISSOCK(path.lstat().st_mode):
            path.unlink()
    except FileNotFoundError:
        pass


def serve_unix(path: str, registry: CollectorRegistry
               ) -> tuple[_UnixHTTPServer, threading.Thread]:
    """Serve `registry` at http://<unix:path>/metrics on a thread; a path
    that cannot be bound is an error naming metrics.metrics_socket."""
    sock = Path(path)
    handler = _Handler.factory(registry)
    old_umask = os.umask(0o117)
    try:
        sock.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(sock)
        server = _UnixHTTPServer(str(sock), handler)
    except OSError as e:
        raise FailedPrecondition(f"metrics.metrics_socket: cannot serve metrics on {path}: "
                                 f"{e.strerror or e}") from e
    finally:
        os.umask(old_umask)
    thread = threading.Thread(target=server.serve_forever, name="metrics-unix", daemon=True)
    thread.start()
    return server, thread


def stop_unix(server: _UnixHTTPServer, thread: threading.Thread, path: str) -> None:
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    try:
        _remove_stale(Path(path))
    except OSError:
        pass   # the directory went away first
