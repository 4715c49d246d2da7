"""Exec, Attach and PortForward: check the request, store it under a
single-use token and answer the streaming server's URL for it
(crio_native/streaming/, docs/streaming.md).  The session itself starts
when the client opens the URL."""
from __future__ import annotations

from crio_native._proto import api_pb2
from crio_native.context import DaemonContext, containers_of, sandboxes_of
from crio_native.cri.container.ids import require_id
from crio_native.errors import FailedPrecondition, InvalidArgument, Unavailable
from crio_native.sandbox.record import READY
from crio_native.streaming.tokens import ATTACH, EXEC, PORTFORWARD, StreamRequest


def _server(ctx: DaemonContext, rpc: str):
    if ctx.streaming is None:
        raise Unavailable(f"{rpc}: the streaming server is not running")
    return ctx.streaming


def _check_stdio(rpc: str, request) -> None:
    if not (request.stdin or request.stdout or request.stderr):
        raise InvalidArgument(f"{rpc}: one of stdin, stdout or stderr must be set")
    if request.tty and request.stderr:
        raise InvalidArgument(f"{rpc}: tty and stderr cannot both be set (a terminal "
                              "has a single output stream)")


def exec_(ctx: DaemonContext, request: api_pb2.ExecRequest) -> api_pb2.ExecResponse:
    container_id = require_id("Exec", request.container_id)
    if not request.cmd:
        raise InvalidArgument("Exec: cmd: must not be empty")
    _check_stdio("Exec", request)
    server = _server(ctx, "Exec")
    record = containers_of(ctx).running(container_id, "Exec")
    return api_pb2.ExecResponse(url=server.url_for(StreamRequest(
        EXEC, container_id=record.id, cmd=tuple(request.cmd), tty=request.tty,
        stdin=request.stdin, stdout=request.stdout, stderr=request.stderr)))


def attach(ctx: DaemonContext, request: api_pb2.AttachRequest) -> api_pb2.AttachResponse:
    container_id = require_id("Attach", request.container_id)
    _check_stdio("Attach", request)
    server = _server(ctx, "Attach")
    record = containers_of(ctx).running(container_id, "Attach")
    return api_pb2.AttachResponse(url=server.url_for(StreamRequest(
        ATTACH, container_id=record.id, tty=request.tty, stdin=request.stdin,
        stdout=request.stdout, stderr=request.stderr)))


def port_forward(ctx: DaemonContext,
                 request: api_pb2.PortForwardRequest) -> api_pb2.PortForwardResponse:
    pod_id = request.pod_sandbox_id
    if not pod_id:
        raise InvalidArgument("PortForward: pod_sandbox_id: must not be empty")
    for i, port in enumerate(request.port):
        if not 1 <= port <= 65535:
            raise InvalidArgument(f"PortForward: port[{i}]: {port} is not a port (1-65535)")
    server = _server(ctx, "PortForward")
    sandbox = sandboxes_of(ctx).store.get(pod_id, "PortForward")
    if sandbox.state != READY:
        raise FailedPrecondition(f"PortForward: pod sandbox {sandbox.id} is not ready "
                                 f"({sandbox.state})")
    return api_pb2.PortForwardResponse(url=server.url_for(StreamRequest(
        PORTFORWARD, pod_id=sandbox.id, ports=tuple(request.port))))
