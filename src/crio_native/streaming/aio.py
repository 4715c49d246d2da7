"""asyncio over raw fds (pipes, pty masters, pidfds) on the streaming
server's loop: wait for readiness with add_reader/add_writer, then do the
non-blocking call ourselves, so EIO from a pty master whose slave side is
gone reads as end of file instead of a transport error."""
from __future__ import annotations

import asyncio
import errno
import os


async def _ready(fd: int, write: bool = False) -> None:
    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def wake() -> None:
        if not fut.done():
            fut.set_result(None)

    (loop.add_writer if write else loop.add_reader)(fd, wake)
    try:
        await fut
    finally:
        (loop.remove_writer if write else loop.remove_reader)(fd)


async def wait_readable(fd: int) -> None:
    await _ready(fd)


async def read(fd: int, size: int = 65536) -> bytes:
    """The next bytes from non-blocking `fd`; b"" at end of file."""
    while True:
        try:
            return os.read(fd, size)
        except BlockingIOError:
            pass
        except OSError as e:
            if e.errno == errno.EIO:    # pty master: every slave fd is closed
                return b""
            raise
        await _ready(fd)


async def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
            view = view[n:]
            continue
        except BlockingIOError:
            pass
        await _ready(fd, write=True)
