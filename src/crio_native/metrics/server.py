"""The Prometheus endpoint: `[metrics]` enable_metrics, metrics_host and
metrics_port (CRI-O's keys), TLS with metrics_cert and metrics_key, served
by prometheus-client's own HTTP server thread; with metrics_socket also on
a unix socket (unix_socket.py)."""
from __future__ import annotations

import contextlib
import logging
from typing import Iterator

from prometheus_client import start_http_server

from crio_native.config.sections import MetricsConfig
from crio_native.errors import FailedPrecondition
from crio_native.logsetup import fields
from crio_native.metrics import collectors, hooks
from crio_native.metrics.unix_socket import serve_unix, stop_unix

log = logging.getLogger(__name__)


@contextlib.contextmanager
def metrics_served(config: MetricsConfig) -> Iterator[collectors.DaemonMetrics | None]:
    """Serve the daemon's metrics while the block runs (nothing when off).
    A port that cannot be bound is a start-up error naming it."""
    if not config.enable_metrics:
        yield None
        return
    metrics = collectors.DaemonMetrics()
    tls = bool(config.metrics_cert)
    try:
        server, thread = start_http_server(config.metrics_port, config.metrics_host,
                                           registry=metrics.registry,
                                           certfile=config.metrics_cert or None,
                                           keyfile=config.metrics_key or None)
    except OSError as e:
        raise FailedPrecondition(
            f"metrics.metrics_port: cannot serve metrics on {config.metrics_host}:"
            f"{config.metrics_port}: {e.strerror or e}") from e
    unix = None
    if config.metrics_socket:
        try:
            unix = serve_unix(config.metrics_socket, metrics.registry)
        except BaseException:
            server.shutdown()
            server.server_close()
            raise
    hooks.install(metrics)
    log.info("serving metrics", extra=fields(
        address=f"{config.metrics_host}:{server.server_port}", tls=tls,
        socket=config.metrics_socket))
    try:
        yield metrics
    finally:
        hooks.install(None)
        if unix is not None:
            stop_unix(*unix, config.metrics_socket)
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
