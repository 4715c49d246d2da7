"""Requests to a running monitor over its attach socket: reopen the log
(ReopenContainerLog, after log rotation) and resize its terminal."""
from __future__ import annotations

import os
import socket

from crio_native.errors import FailedPrecondition, Internal, native_error

from . import protocol as p
from .paths import attach_socket

_NAMES = {p.MSG_ATTACH: "attach", p.MSG_CLOSE_STDIN: "close stdin",
          p.MSG_RESIZE: "resize", p.MSG_REOPEN_LOG: "reopen log"}


def connect(state_dir: str | os.PathLike, timeout: float | None = 5.0) -> socket.socket:
    """A SOCK_SEQPACKET connection to the monitor of `state_dir`.

    Connects through /proc/self/fd/N/attach so that state dirs longer than
    sun_path's 108 bytes work.  FailedPrecondition if no monitor listens."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.settimeout(timeout)
    try:
        dirfd = os.open(state_dir, os.O_PATH | os.O_DIRECTORY)
    except FileNotFoundError as e:
        sock.close()
        raise FailedPrecondition(f"monitor state dir {state_dir}: not found") from e
    try:
        sock.connect(f"/proc/self/fd/{dirfd}/{p.ATTACH_SOCKET_NAME}")
    except (FileNotFoundError, ConnectionRefusedError) as e:
        sock.close()
        raise FailedPrecondition(
            f"monitor socket {attach_socket(state_dir)}: container monitor is not running") from e
    finally:
        os.close(dirfd)
    return sock


def check_reply(request: int, payload: bytes, where: str) -> None:
    kind, err = p.decode_reply(payload)
    if kind != request:
        raise Internal(f"monitor {where}: reply to {kind:#x}, expected {request:#x}")
    if err:
        raise native_error(err, f"monitor {_NAMES.get(request, hex(request))} `{where}`")


def request(sock: socket.socket, message: bytes, where: str) -> list[bytes]:
    """Send one request and wait for its reply.  Returns the output packets
    that arrived before the reply, in order, for the caller to keep."""
    sock.send(message)
    early: list[bytes] = []
    while True:
        packet = sock.recv(p.MSG_MAX)
        if not packet:
            raise FailedPrecondition(f"monitor {where}: closed the connection (container exited)")
        if packet[0] == p.MSG_REPLY:
            check_reply(message[0], packet[1:], where)
            return early
        early.append(packet)


def reopen_log(state_dir: str | os.PathLike, timeout: float = 5.0) -> None:
    """Make the monitor reopen its CRI log path (ReopenContainerLog)."""
    with connect(state_dir, timeout) as sock:
        request(sock, bytes((p.MSG_REOPEN_LOG,)), str(state_dir))


def resize(state_dir: str | os.PathLike, rows: int, cols: int, timeout: float = 5.0) -> None:
    """Set the window size of the container's terminal."""
    with connect(state_dir, timeout) as sock:
        request(sock, p.encode_resize(rows, cols), str(state_dir))
