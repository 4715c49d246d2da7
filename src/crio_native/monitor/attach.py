"""Attach client: live stdout/stderr of a container, its stdin, and the
resize of its terminal, through the monitor's attach socket.

    with AttachClient.connect(state_dir, stdin=True) as client:
        client.write_stdin(b"hello\\n")
        for frame in client.frames(timeout=5):
            ...

Any number of clients may attach at once; each gets output from the moment
it attached (the log file has what came before)."""
from __future__ import annotations

import os
import socket
from collections import deque
from dataclasses import dataclass
from typing import Iterator

from crio_native.errors import DeadlineExceeded

from . import protocol as p
from .control import connect, request

STDOUT = "stdout"
STDERR = "stderr"
EXIT = "exit"


@dataclass(frozen=True)
class Frame:
    kind: str                    # STDOUT, STDERR or EXIT
    data: bytes = b""
    exit_code: int | None = None


def _frame(packet: bytes) -> Frame | None:
    kind, payload = packet[0], packet[1:]
    if kind == p.MSG_STDOUT:
        return Frame(STDOUT, payload)
    if kind == p.MSG_STDERR:
        return Frame(STDERR, payload)
    if kind == p.MSG_EXIT:
        return Frame(EXIT, exit_code=p.decode_exit(payload))
    return None


class AttachClient:
    def __init__(self, sock: socket.socket, where: str):
        self._sock = sock
        self._where = where
        self._pending: deque[bytes] = deque()
        self.closed_by_monitor = False

    @classmethod
    def connect(cls, state_dir: str | os.PathLike, *, stdout: bool = True,
                stderr: bool = True, stdin: bool = False,
                timeout: float = 5.0) -> "AttachClient":
        """Attach to the container of `state_dir`.  With stdin=True this
        client owns stdin: if the container was started with stdin_once, its
        leaving closes the container's stdin."""
        flags = ((p.ATTACH_STDOUT if stdout else 0) | (p.ATTACH_STDERR if stderr else 0)
                 | (p.ATTACH_STDIN if stdin else 0))
        sock = connect(state_dir, timeout)
        client = cls(sock, str(state_dir))
        try:
            client._request(p.encode_attach(flags))
        except BaseException:
            sock.close()
            raise
        return client

    def _request(self, message: bytes) -> None:
        self._pending.extend(request(self._sock, message, self._where))

    def fileno(self) -> int:
        return self._sock.fileno()

    def recv(self, timeout: float | None = None) -> Frame | None:
        """The next output or exit frame; None once the monitor has closed
        the connection.  DeadlineExceeded if nothing came within `timeout`."""
        while True:
            if self._pending:
                packet = self._pending.popleft()
            else:
                self._sock.settimeout(timeout)
                try:
                    packet = self._sock.recv(p.MSG_MAX)
                except socket.timeout as e:
                    raise DeadlineExceeded(f"attach {self._where}: no output in {timeout}s") from e
                if not packet:
                    self.closed_by_monitor = True
                    return None
            frame = _frame(packet)
            if frame is not None:
                return frame

    def frames(self, timeout: float | None = None) -> Iterator[Frame]:
        """Frames until the monitor closes the connection (after EXIT)."""
        while (frame := self.recv(timeout)) is not None:
            yield frame

    def write_stdin(self, data: bytes) -> None:
        step = p.MSG_MAX - 1
        for i in range(0, len(data), step):
            self._sock.sendall(bytes((p.MSG_STDIN,)) + data[i:i + step])

    def close_stdin(self) -> None:
        self._request(bytes((p.MSG_CLOSE_STDIN,)))

    def resize(self, rows: int, cols: int) -> None:
        self._request(p.encode_resize(rows, cols))

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> "AttachClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
