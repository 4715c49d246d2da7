"""The terminal of `crio-native-runtime run` in the foreground: a console
socket of our own receives the pty master the container makes, and we copy
between it and our stdio until the container's side closes, as runc does.

When our stdin is a terminal it is put in raw mode for the run (the
container's pty does the line editing and echo) and its window size is
copied to the pty at start and on every SIGWINCH."""
from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import socket
import struct
import tempfile
import termios
import tty
from pathlib import Path
from typing import Iterator

CHUNK = 65536


@contextlib.contextmanager
def console_socket() -> Iterator[tuple[str, socket.socket]]:
    """(path, listening socket) in a private temp dir, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="crn-console-") as d:
        path = str(Path(d) / "console.sock")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            server.bind(path)
            server.listen(1)
            yield path, server
        finally:
            server.close()


def receive_master(server: socket.socket, timeout: float = 10.0) -> int:
    """The pty master the runtime sent to our console socket during create
    (the connection is already queued: create returns after sending)."""
    server.settimeout(timeout)
    conn, _ = server.accept()
    with conn:
        _msg, fds, _flags, _addr = socket.recv_fds(conn, 64, 1)
    if not fds:
        raise OSError("the console socket received no pty master")
    return fds[0]


def _copy_winsize(src: int, dst: int) -> None:
    with contextlib.suppress(OSError):
        size = fcntl.ioctl(src, termios.TIOCGWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
        fcntl.ioctl(dst, termios.TIOCSWINSZ, size)


def proxy(master: int, stdin: int = 0, stdout: int = 1) -> None:
    """Copy stdin -> master and master -> stdout until the container side of
    the pty is closed by every process (reading the master fails with EIO
    or returns nothing).  Restores the terminal's mode and SIGWINCH."""
    interactive = os.isatty(stdin)
    saved = termios.tcgetattr(stdin) if interactive else None
    old_winch = None
    if interactive:
        _copy_winsize(stdin, master)
        old_winch = signal.signal(signal.SIGWINCH, lambda *_: _copy_winsize(stdin, master))
        tty.setraw(stdin)
    readers = [master, stdin]
    try:
        while True:
            ready, _, _ = select.select(readers, [], [])
            if master in ready:
                try:
                    data = os.read(master, CHUNK)
                except OSError:         # EIO: no process holds the pty's other side
                    data = b""
                if not data:
                    return
                _write_all(stdout, data)
            if stdin in ready:
                data = os.read(stdin, CHUNK)
                if data:
                    _write_all(master, data)
                else:
                    readers.remove(stdin)   # our input ended; the output goes on
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        if old_winch is not None:
            signal.signal(signal.SIGWINCH, old_winch)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
