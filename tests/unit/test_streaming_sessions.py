"""Exec and attach relays (crio_native.streaming.sessions): a window size
the client sent before some input is in effect when that input reaches the
process, whichever pump the loop runs first, for a pty we hold, a terminal
the runtime holds (resize_fn) and attach through the monitor's socket.

The failure these pin: `read go; stty size` with the resize and "go\\n"
both queued while the exec was starting printed busybox's "stty: standard
input" (a 0x0 window) under load."""
from __future__ import annotations

import asyncio
import fcntl
import os
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from crio_native.monitor import protocol as mp
from crio_native.runtime.handler import ExecProcess
from crio_native.runtime.oci import relayed_tty
from crio_native.streaming import aio, sessions
from crio_native.streaming import protocol as sp
from crio_native.streaming.protocol import TerminalSize
from crio_native.streaming.streams import CommandStreams


class Streams(CommandStreams):
    def __init__(self, **kw):
        super().__init__(protocol=sp.V4, **kw)
        self.out: list[tuple[int, bytes]] = []

    async def send(self, channel: int, data: bytes) -> None:
        self.out.append((channel, data))


def window_size(fd: int) -> tuple[int, int]:
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, bytes(8)))
    return cols, rows


@pytest.fixture
def backend():
    with ThreadPoolExecutor(2) as pool:
        yield sessions.Backend(None, None, pool)


async def queued(streams: CommandStreams, *items) -> None:
    """The client's messages in order, as the transport feeds them."""
    for item in items:
        if isinstance(item, TerminalSize):
            streams.feed_resize(item)
        else:
            await streams.feed_stdin(item)


def test_a_resize_queued_before_input_is_applied_before_the_pty_gets_it(backend, monkeypatch):
    master, slave = os.openpty()
    os.set_blocking(master, False)
    exited_r, exited_w = os.pipe()
    sizes_at_write: list[tuple[bytes, tuple[int, int]]] = []
    write_all = aio.write_all

    async def recording_write_all(fd: int, data: bytes) -> None:
        sizes_at_write.append((data, window_size(slave)))
        await write_all(fd, data)

    monkeypatch.setattr(aio, "write_all", recording_write_all)
    proc = ExecProcess(pid=0, wait_fd=exited_r, stdin=master, stdout=master, pty=master,
                       reap_fn=lambda: 0)

    async def main() -> int | None:
        streams = Streams(stdin=True, stdout=True, stderr=False, tty=True)
        # both came while the exec was starting
        await queued(streams, TerminalSize(90, 21), b"go\n")
        relay = asyncio.ensure_future(sessions._relay_process(backend, proc, streams))
        while not sizes_at_write:
            await asyncio.sleep(0.01)
        # and while it runs
        await queued(streams, TerminalSize(100, 30), b"x\n")
        while len(sizes_at_write) < 2:
            await asyncio.sleep(0.01)
        os.close(slave)                  # the process ended: EIO on the master
        os.write(exited_w, b"x")
        return await relay

    try:
        assert asyncio.run(main()) == 0
    finally:
        proc.close()
        os.close(exited_w)
    assert sizes_at_write[0] == (b"go\n", (90, 21)), sizes_at_write
    assert sizes_at_write[1] == (b"x\n", (100, 30)), sizes_at_write


def test_a_terminal_the_runtime_holds_is_resized_before_the_input(backend):
    """resize_fn runs in the executor (a shim's ResizePty): stdin waits for
    it rather than overtaking it."""
    stdin_r, stdin_w = os.pipe()
    out_r, out_w = os.pipe()
    exited_r, exited_w = os.pipe()
    for fd in (stdin_w, out_r):
        os.set_blocking(fd, False)
    events: list[object] = []

    def resize_fn(width: int, height: int) -> None:
        time.sleep(0.05)                 # a round trip to the runtime
        events.append((width, height))

    proc = ExecProcess(pid=0, wait_fd=exited_r, stdin=stdin_w, stdout=out_r, terminal=True,
                       resize_fn=resize_fn, reap_fn=lambda: 0)

    async def main() -> int | None:
        streams = Streams(stdin=True, stdout=True, stderr=False, tty=True)
        await queued(streams, TerminalSize(80, 24), b"go\n")
        relay = asyncio.ensure_future(sessions._relay_process(backend, proc, streams))
        loop = asyncio.get_running_loop()
        events.append(await loop.run_in_executor(None, os.read, stdin_r, 100))
        os.close(out_w)
        os.write(exited_w, b"x")
        return await relay

    try:
        assert asyncio.run(main()) == 0
    finally:
        proc.close()
        for fd in (stdin_r, exited_w):
            os.close(fd)
    assert events == [(80, 24), b"go\n"], events


def test_a_failing_runtime_resize_does_not_hold_up_stdin(backend):
    stdin_r, stdin_w = os.pipe()
    out_r, out_w = os.pipe()
    exited_r, exited_w = os.pipe()
    for fd in (stdin_w, out_r):
        os.set_blocking(fd, False)

    def resize_fn(width: int, height: int) -> None:
        raise OSError(5, "the runtime is gone")

    proc = ExecProcess(pid=0, wait_fd=exited_r, stdin=stdin_w, stdout=out_r, terminal=True,
                       resize_fn=resize_fn, reap_fn=lambda: 0)

    async def main() -> bytes:
        streams = Streams(stdin=True, stdout=True, stderr=False, tty=True)
        await queued(streams, TerminalSize(80, 24), b"one\n", TerminalSize(1, 1), b"two\n")
        relay = asyncio.ensure_future(sessions._relay_process(backend, proc, streams))
        loop = asyncio.get_running_loop()
        got = b""
        while got != b"one\ntwo\n":
            got += await asyncio.wait_for(loop.run_in_executor(None, os.read, stdin_r, 100), 5)
        os.close(out_w)
        os.write(exited_w, b"x")
        assert await relay == 0
        return got

    try:
        assert asyncio.run(main()) == b"one\ntwo\n"
    finally:
        proc.close()
        for fd in (stdin_r, exited_w):
            os.close(fd)


def test_attach_through_a_runtime_resizer_sends_stdin_after_the_resize():
    """Attach to a container whose terminal the runtime holds: the window
    size goes to the runtime (slow), the input to the monitor's socket;
    the monitor must not get the input before the runtime has the size."""
    ours, monitor = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setblocking(False)
    events: list[object] = []

    async def resize_by_runtime(size: TerminalSize) -> None:
        await asyncio.sleep(0.05)
        events.append((size.width, size.height))

    async def main() -> None:
        streams = Streams(stdin=True, stdout=True, stderr=False, tty=True)
        await queued(streams, TerminalSize(132, 43), b"go\n")
        relay = asyncio.ensure_future(
            sessions._relay_attach(ours, [], streams, resize_by_runtime))
        loop = asyncio.get_running_loop()
        events.append(await loop.run_in_executor(None, monitor.recv, 100))
        monitor.sendall(bytes((mp.MSG_EXIT,)) + bytes(4))
        assert await relay is True

    try:
        asyncio.run(main())
    finally:
        ours.close()
        monitor.close()
    assert events == [(132, 43), bytes((mp.MSG_STDIN,)) + b"go\n"], events


# ---- a terminal the runtime relays (runc/crun `exec --tty`) ---------------------------

def _relayed_exec(relayed_size, resized=None):
    """Our pty (master handed to the session), and the process's own
    terminal somewhere else, read through `relayed_size`."""
    master, slave = os.openpty()
    os.set_blocking(master, False)
    exited_r, exited_w = os.pipe()
    proc = ExecProcess(pid=0, wait_fd=exited_r, stdin=master, stdout=master, pty=master,
                       reap_fn=lambda: 0, resized=resized, relayed_size=relayed_size)
    return proc, slave, exited_w


def _run_relayed(backend, proc, slave, exited_w, *queue) -> list[bytes]:
    """Queue the client's messages, relay, and return what reached our
    pty's slave (the runtime's stdin), one read per line."""
    got: list[bytes] = []

    async def main() -> int | None:
        streams = Streams(stdin=True, stdout=True, stderr=False, tty=True)
        await queued(streams, *queue)
        relay = asyncio.ensure_future(sessions._relay_process(backend, proc, streams))
        loop = asyncio.get_running_loop()
        got.append(await asyncio.wait_for(loop.run_in_executor(None, os.read, slave, 100), 5))
        os.close(slave)
        os.write(exited_w, b"x")
        return await relay

    try:
        assert asyncio.run(main()) == 0
    finally:
        proc.close()
        os.close(exited_w)
    return got


def test_input_waits_until_the_runtime_copied_the_size_to_its_own_terminal(backend):
    """The runtime starts holding its terminal late (None until then) and
    copies our size onto it later still (its signal loop): stdin reaches
    its stdin only after that, though our own pty had the size at once."""
    events: list[object] = []
    relayed = {"size": None}

    def copy_later() -> None:
        time.sleep(0.03)
        relayed["size"] = (0, 0)             # the runtime holds its pty: 0x0
        time.sleep(0.05)
        relayed["size"] = (21, 90)
        events.append("copied")

    def relayed_size():
        return relayed["size"]

    proc, slave, exited_w = _relayed_exec(
        relayed_size, resized=lambda: threading.Thread(target=copy_later).start())
    got = _run_relayed(backend, proc, slave, exited_w, TerminalSize(90, 21), b"go\n")
    events.extend(got)
    assert events == ["copied", b"go\n"], events


def test_a_size_the_runtime_never_copies_holds_input_only_briefly(backend, monkeypatch):
    monkeypatch.setattr(sessions, "RELAYED_SIZE_WAIT", 0.1)
    proc, slave, exited_w = _relayed_exec(lambda: (0, 0))
    started = time.monotonic()
    got = _run_relayed(backend, proc, slave, exited_w, TerminalSize(90, 21), b"go\n")
    waited = time.monotonic() - started
    assert got == [b"go\n"] and 0.1 <= waited < 3, (got, waited)


def test_an_unreadable_relayed_size_does_not_hold_up_stdin(backend, monkeypatch):
    monkeypatch.setattr(sessions, "RELAYED_START_WAIT", 30.0)

    def relayed_size():
        raise PermissionError(1, "pidfd_getfd: not permitted")

    proc, slave, exited_w = _relayed_exec(relayed_size)
    started = time.monotonic()
    got = _run_relayed(backend, proc, slave, exited_w, TerminalSize(90, 21), b"go\n")
    assert got == [b"go\n"] and time.monotonic() - started < 3, got


def test_the_relayed_size_is_read_from_the_runtime_process_s_pty_master():
    """relayed_tty reads the size of the pty master another process (our
    child, as the runtime is) holds, not of its stdio, and None while it
    holds none."""
    script = ("import fcntl, os, struct, sys, termios, time\n"
              "print('up', flush=True); sys.stdin.readline()\n"
              "m, s = os.openpty()\n"
              "fcntl.ioctl(m, termios.TIOCSWINSZ, struct.pack('HHHH', 33, 101, 0, 0))\n"
              "print('held', flush=True); time.sleep(30)\n")
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    pidfd = os.pidfd_open(child.pid)
    try:
        read = relayed_tty.relayed_size_reader(child.pid, pidfd)
        assert child.stdout.readline() == "up\n"
        assert read() is None
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline() == "held\n"
        assert read() == (33, 101)
        assert read() == (33, 101)          # the fd found is kept
    finally:
        child.kill()
        child.wait()
        os.close(pidfd)


def test_no_wait_for_the_terminal_of_a_runtime_that_has_ended(monkeypatch):
    """The runtime never came to hold a terminal (its exec failed) and has
    exited: the wait ends at once, not at RELAYED_START_WAIT."""
    monkeypatch.setattr(sessions, "RELAYED_START_WAIT", 30.0)
    exited_r, exited_w = os.pipe()
    os.write(exited_w, b"x")
    proc = ExecProcess(pid=0, wait_fd=exited_r, relayed_size=lambda: None)
    started = time.monotonic()
    try:
        asyncio.run(sessions._relayed_size_applied(proc, TerminalSize(90, 21)))
    finally:
        os.close(exited_r)
        os.close(exited_w)
    assert time.monotonic() - started < 3
