"""Assembles the CRI server: both CRI services on one unix socket, served by
our own gRPC-over-HTTP/2 layer (cri/wire) rather than grpcio, whose server
would cost the daemon about 18 MiB (docs/memory.md)."""
from __future__ import annotations

from crio_native.context import DaemonContext
from crio_native.cri import container, image, runtime_info, sandbox
from crio_native.cri.edge import service_handler
from crio_native.cri.wire import Server

MAX_WORKERS = 64


def runtime_service_rpcs(ctx: DaemonContext) -> dict:
    return {**runtime_info.rpcs(ctx), **sandbox.rpcs(ctx), **container.rpcs(ctx)}


def image_service_rpcs(ctx: DaemonContext) -> dict:
    return {**image.rpcs(ctx)}


def build_server(ctx: DaemonContext) -> Server:
    api = ctx.config.api
    return Server((service_handler("RuntimeService", runtime_service_rpcs(ctx)),
                   service_handler("ImageService", image_service_rpcs(ctx))),
                  max_workers=MAX_WORKERS, max_send=api.grpc_max_send_msg_size,
                  max_recv=api.grpc_max_recv_msg_size)


def bind_unix_socket(server: Server, path: str) -> None:
    """Listen on `path` with mode 0660 (root and the socket's group)."""
    try:
        server.bind(path, mode_umask=0o117)
    except OSError as e:
        raise OSError(f"cannot listen on unix socket {path}: {e}") from e
