"""Assembles the gRPC server: both CRI services on one unix socket."""
from __future__ import annotations

import os
from concurrent import futures

import grpc

from crio_native.context import DaemonContext
from crio_native.cri import container, image, runtime_info, sandbox
from crio_native.cri.edge import service_handler

MAX_WORKERS = 64


def runtime_service_rpcs(ctx: DaemonContext) -> dict:
    return {**runtime_info.rpcs(ctx), **sandbox.rpcs(ctx), **container.rpcs(ctx)}


def image_service_rpcs(ctx: DaemonContext) -> dict:
    return {**image.rpcs(ctx)}


def build_server(ctx: DaemonContext) -> grpc.Server:
    api = ctx.config.api
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="cri"),
        options=[
            ("grpc.max_send_message_length", api.grpc_max_send_msg_size),
            ("grpc.max_receive_message_length", api.grpc_max_recv_msg_size),
        ],
    )
    server.add_generic_rpc_handlers((
        service_handler("RuntimeService", runtime_service_rpcs(ctx)),
        service_handler("ImageService", image_service_rpcs(ctx)),
    ))
    return server


def bind_unix_socket(server: grpc.Server, path: str) -> None:
    """Listen on `path` with mode 0660 (root and the socket's group)."""
    old_umask = os.umask(0o117)
    try:
        if server.add_insecure_port(f"unix:{path}") == 0:
            raise OSError(f"cannot listen on unix socket {path}")
    finally:
        os.umask(old_umask)
