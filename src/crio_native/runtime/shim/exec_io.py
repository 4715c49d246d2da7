"""The stdio of an exec in a shim v2 task: FIFOs in a directory of its
own, whose paths go to the task's Exec and whose other ends the caller
(ExecSync, the streaming server) gets."""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import struct
import termios
import time
from pathlib import Path


class ExecFifos:
    """The FIFOs of one exec in `dir`: `ours` holds the caller's ends by
    name (stdin, stdout, stderr), `writers` our own writer of each output
    FIFO, so the caller reads to end of file without a gap before the shim
    has opened its end; `close_writers` once the exec has ended."""

    def __init__(self, dir: Path, tty: bool):
        self.dir = dir
        self.tty = tty
        self.wanted: list[str] = []
        self.ours: dict[str, int] = {}
        self.writers: list[int] = []

    @classmethod
    def create(cls, dir: Path, *, tty: bool, stdin: bool, stdout: bool,
               stderr: bool) -> ExecFifos:
        """Make `dir` and a FIFO per wanted stream (with `tty`, the terminal
        carries stderr too); on failure nothing is left behind."""
        fifos = cls(dir, tty)
        dir.mkdir(mode=0o700)
        fifos.wanted = [name for name, on in (("stdin", stdin), ("stdout", stdout),
                                              ("stderr", stderr and not tty)) if on]
        try:
            for name in fifos.wanted:
                fifos._open(name)
        except BaseException:
            fifos.close_fds()
            fifos.remove()
            raise
        return fifos

    def _open(self, name: str) -> None:
        path = self.dir / name
        os.mkfifo(path, 0o600)
        if name == "stdin":
            # read-write: opens without a reader; the shim reads it
            self.ours[name] = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        else:
            self.ours[name] = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            self.writers.append(os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC))

    def paths(self) -> dict[str, str]:
        """The stdin/stdout/stderr arguments of the task's Exec."""
        # an output nobody wants still needs a path (the runc shim opens
        # "" and fails): /dev/null, which the shims open as a file
        unwanted = ("stdout",) if self.tty else ("stdout", "stderr")
        return {**{name: os.devnull for name in unwanted},
                **{name: str(self.dir / name) for name in self.wanted}}

    def close_writers(self) -> None:
        while self.writers:
            with contextlib.suppress(OSError):
                os.close(self.writers.pop())

    def close_fds(self) -> None:
        """Every end, ours and the caller's: the exec did not start."""
        for fd in (*self.ours.values(), *self.writers):
            os.close(fd)

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_drained(fd: int, timeout: float) -> None:
    """Until the reader of the pipe behind `fd` has read all of it, or
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while _unread(fd) and time.monotonic() < deadline:
        time.sleep(0.005)


def _unread(fd: int) -> int:
    """Bytes in the pipe behind `fd` that nobody has read yet."""
    try:
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]
    except OSError:
        return 0
