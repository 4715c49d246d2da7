"""The backends behind a streaming URL: exec (a new process in the
container, through its runtime handler), attach (the container's own stdio,
through its monitor's attach socket) and port forward (TCP to localhost in
the pod's network namespace).  Each runs on the streaming server's loop;
blocking work (launching, connecting in a namespace) goes to its executor.

A client that goes away ends only its session: an exec'd process is
killed and reaped, an attach connection closed, a forwarded TCP
connection closed; the container is left alone."""
from __future__ import annotations

import asyncio
import contextlib
import os
import fcntl
import logging
import select
import socket
import struct
import termios
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from functools import partial

from crio_native.errors import CrioNativeError
from crio_native.linux.nsthread import run_joined
from crio_native.monitor import control
from crio_native.monitor import protocol as mp
from crio_native.streaming import aio
from crio_native.streaming import protocol as sp
from crio_native.streaming.streams import CommandStreams, PortStream
from crio_native.streaming.tokens import StreamRequest

log = logging.getLogger(__name__)

# Once an exec'd process has ended, its output is relayed until the pipes
# close or are quiet this long (a background child may hold them forever),
# and at most DRAIN_MAX: the monitor's rule for containers.
DRAIN_IDLE = 0.1
DRAIN_MAX = 2.0
CONNECT_TIMEOUT = 10.0
ATTACH_TIMEOUT = 5.0
EOT = b"\x04"   # end of input on a terminal (^D)
# A runtime's relayed terminal (runc/crun `exec --tty`): how long stdin
# waits for a new window size to show in it once the runtime holds it, for
# the runtime to come to hold it, and how often it looks
RELAYED_SIZE_WAIT = 0.2
RELAYED_START_WAIT = 5.0
RELAYED_SIZE_POLL = 0.005


class Backend:
    """What the sessions reach: the container manager and sandbox store
    (DaemonContext's), an executor for blocking calls."""

    def __init__(self, containers, sandboxes, executor: Executor):
        self.containers = containers
        self.sandboxes = sandboxes
        self.executor = executor

    async def blocking(self, fn, *args, **kw):
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, partial(fn, *args, **kw))


# ---- exec -------------------------------------------------------------------------

async def run_exec(backend: Backend, request: StreamRequest, streams: CommandStreams) -> None:
    try:
        proc = await backend.blocking(
            backend.containers.exec_interactive, request.container_id, list(request.cmd),
            tty=request.tty, stdin=request.stdin, stdout=request.stdout,
            stderr=request.stderr and not request.tty)
    except CrioNativeError as e:
        await streams.finish(sp.internal_error(f"error executing command in container: {e}"))
        return
    try:
        code = await _relay_process(backend, proc, streams)
    finally:
        if proc.exit_code is None:       # cancelled (server stopping) or failed
            proc.kill()
            await backend.blocking(proc.reap)
        proc.close()
    if code is None:
        log.info("exec client went away; process killed", extra={"fields": {
            "container": request.container_id, "pid": proc.pid}})
        return
    await streams.finish(sp.success() if code == 0 else sp.exit_failure(code, request.cmd))


async def _relay_process(backend: Backend, proc, streams: CommandStreams) -> int | None:
    """Relay until the process ends (its exit code) or the client goes
    away (None, the process killed and reaped)."""
    activity = [time.monotonic()]
    outputs = []
    if proc.stdout is not None:
        outputs.append(asyncio.ensure_future(_pump_out(proc.stdout, sp.STDOUT, streams, activity)))
    if proc.stderr is not None and proc.stderr != proc.stdout:
        outputs.append(asyncio.ensure_future(_pump_out(proc.stderr, sp.STDERR, streams, activity)))
    helpers = []
    resizing = proc.pty is not None or proc.resize_fn is not None
    if proc.stdin is not None:
        helpers.append(asyncio.ensure_future(_pump_in(proc, streams, ordered=resizing)))
    if resizing:
        helpers.append(asyncio.ensure_future(_pump_resize(proc, streams)))
    exited = asyncio.ensure_future(aio.wait_readable(proc.wait_fd))
    gone = asyncio.ensure_future(streams.gone.wait())
    try:
        await asyncio.wait({exited, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not exited.done():
            proc.kill()
            await backend.blocking(proc.reap)
            return None
        # a pty reaches its master only through the kernel's flip-buffer
        # work, which a loaded machine may run late; its end of file (EIO
        # once every slave is closed) is reliable, so wait for that instead
        # of giving up after a quiet moment (still at most DRAIN_MAX)
        await _drain(outputs, activity, idle=None if proc.pty is not None else DRAIN_IDLE)
        return await backend.blocking(proc.reap)
    finally:
        for task in (*outputs, *helpers, exited, gone):
            task.cancel()
        await asyncio.gather(*outputs, *helpers, exited, gone, return_exceptions=True)


async def _drain(outputs: Sequence[asyncio.Future], activity: list[float],
                 idle: float | None = DRAIN_IDLE) -> None:
    """Let the output pumps finish: until they reach end of file, or (with
    `idle`) nothing came for that long, and at most DRAIN_MAX."""
    deadline = time.monotonic() + DRAIN_MAX
    pending = {t for t in outputs if not t.done()}
    while pending and time.monotonic() < deadline:
        _, pending = await asyncio.wait(pending, timeout=DRAIN_IDLE)
        if pending and idle is not None and time.monotonic() - activity[0] >= idle:
            return


async def _pump_out(fd: int, channel: int, streams: CommandStreams, activity: list[float]) -> None:
    while data := await aio.read(fd):
        activity[0] = time.monotonic()
        await streams.send(channel, data)


async def _pump_in(proc, streams: CommandStreams, ordered: bool = False) -> None:
    """Stdin to the process; `ordered`: each chunk only once every window
    size the client sent before it is in effect (see resizes_applied)."""
    while (data := await streams.read_stdin()) is not None:
        if ordered:
            await resizes_applied(streams)
        await aio.write_all(proc.stdin, data)
    if proc.pty is not None:
        await aio.write_all(proc.pty, EOT)
    elif proc.terminal:
        # end of input on a terminal someone else holds: EOT through it
        await aio.write_all(proc.stdin, EOT)
    else:
        fd, proc.stdin = proc.stdin, None
        if proc.close_stdin_fn is not None:
            await asyncio.get_running_loop().run_in_executor(None, proc.close_stdin_fn, fd)
            return
        with contextlib.suppress(OSError):
            os.close(fd)


async def resizes_applied(streams: CommandStreams) -> None:
    """Wait until every window size queued so far has been applied.

    The client's messages reach us in the order it sent them (one
    WebSocket connection; SPDY frames on one TCP connection), and the
    transport queues a resize before it feeds the stdin that followed it,
    but two pumps would apply them in whatever order they get to run.  A
    client that sets the size and then types (kubectl's first resize, then
    the user's keys; `read go; stty size`) must find the size in effect
    when the process reads the input, so stdin waits for the resizes
    queued before it: the resize pump marks each one done once applied."""
    await streams.resizes.join()


async def _pump_resize(proc, streams: CommandStreams) -> None:
    while True:
        size = await streams.resizes.get()
        try:
            await _apply_window_size(proc, size)
        except Exception:  # noqa: BLE001 - a dead pump would hold up stdin for good
            log.exception("exec: window size %dx%d not set", size.width, size.height)
        finally:
            streams.resizes.task_done()


async def _apply_window_size(proc, size: sp.TerminalSize) -> None:
    if proc.pty is None:
        try:
            await asyncio.get_running_loop().run_in_executor(
                None, proc.resize_fn, size.width, size.height)
        except (OSError, CrioNativeError) as e:    # the session goes on at the old size
            log.info("exec: window size %dx%d not set: %s", size.width, size.height, e)
        return
    set_window_size(proc.pty, size)
    if proc.resized is not None:
        proc.resized()
    if proc.relayed_size is not None:
        await _relayed_size_applied(proc, size)


async def _relayed_size_applied(proc, size: sp.TerminalSize) -> None:
    """Where the runtime relays a terminal of its own (runc/crun `exec
    --tty`) and copies our size onto it in its own time, wait until the
    process's terminal has the size, so the input that followed the resize
    finds it (resizes_applied): first for the runtime to hold that terminal
    (the process starting: it reads no input before that anyway), then at
    most RELAYED_SIZE_WAIT for the size.  Never for good: on a timeout, an
    unreadable size, or the exit, input goes on (logged)."""
    want = (size.height, size.width)
    start = time.monotonic()
    held_since: float | None = None
    while True:
        try:
            seen = proc.relayed_size()
        except OSError as e:
            log.info("exec: the window size of the runtime's terminal is unreadable, "
                     "input goes on: %s", e)
            return
        if seen == want:
            return
        now = time.monotonic()
        if seen is not None and held_since is None:
            held_since = now
        late = (now - held_since > RELAYED_SIZE_WAIT if held_since is not None
                else now - start > RELAYED_START_WAIT)
        if late or _ended(proc.wait_fd):
            if late:
                log.info("exec: window size %dx%d not in the runtime's terminal after "
                         "%.0f ms (it has %s), input goes on", size.width, size.height,
                         (now - start) * 1000, seen)
            return
        await asyncio.sleep(RELAYED_SIZE_POLL)


def _ended(pidfd: int) -> bool:
    """Whether the process behind `pidfd` has ended (readable pidfd)."""
    poller = select.poll()          # not select(): the fd may be past FD_SETSIZE
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(0))


def set_window_size(fd: int, size: sp.TerminalSize) -> None:
    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size.height, size.width, 0, 0))


# ---- attach -----------------------------------------------------------------------

async def run_attach(backend: Backend, request: StreamRequest, streams: CommandStreams) -> None:
    flags = ((mp.ATTACH_STDOUT if request.stdout else 0)
             | (mp.ATTACH_STDERR if request.stderr and not request.tty else 0)
             | (mp.ATTACH_STDIN if request.stdin else 0))
    try:
        record = backend.containers.store.get(request.container_id, "Attach")
        sock, early = await backend.blocking(_attach_connect, record.monitor_dir, flags)
    except CrioNativeError as e:
        await streams.finish(sp.internal_error(f"error attaching to container: {e}"))
        return
    resizer = backend.containers.terminal_resizer(record)
    resize = None if resizer is None else partial(_resize_by_runtime, backend, resizer)
    try:
        ended = await _relay_attach(sock, early, streams, resize)
    finally:
        sock.close()
    if ended:
        await streams.finish(sp.success())


def _attach_connect(state_dir: str, flags: int) -> tuple[socket.socket, list[bytes]]:
    sock = control.connect(state_dir, ATTACH_TIMEOUT)
    try:
        early = control.request(sock, mp.encode_attach(flags), state_dir)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock, early


async def _resize_by_runtime(backend: Backend, resizer, size: sp.TerminalSize) -> None:
    try:
        await backend.blocking(resizer, size.width, size.height)
    except CrioNativeError as e:      # the session goes on at the old size
        log.info("attach: window size %dx%d not set: %s", size.width, size.height, e)


async def _relay_attach(sock: socket.socket, early: list[bytes], streams: CommandStreams,
                        resize_by_runtime=None) -> bool:
    """True when the container's output ended (it exited), False when the
    client went away first.  Window sizes go to the monitor, which holds
    the pty, or to `resize_by_runtime(size)` where the runtime holds it."""
    loop = asyncio.get_running_loop()

    async def output() -> None:
        for packet in early:
            await _attach_packet(packet, streams)
        while packet := await loop.sock_recv(sock, mp.MSG_MAX):
            if not await _attach_packet(packet, streams):
                return

    async def stdin() -> None:
        while (data := await streams.read_stdin()) is not None:
            await resizes_applied(streams)
            for i in range(0, len(data), mp.MSG_MAX - 1):
                await loop.sock_sendall(sock, bytes((mp.MSG_STDIN,)) + data[i:i + mp.MSG_MAX - 1])
        if not streams.gone.is_set():
            # the client closed its stdin; one that just left closes nothing
            # (the monitor closes it for a stdin_once container)
            await loop.sock_sendall(sock, bytes((mp.MSG_CLOSE_STDIN,)))

    async def resize() -> None:
        while True:
            size = await streams.resizes.get()
            try:
                if resize_by_runtime is not None:
                    await resize_by_runtime(size)
                else:
                    await loop.sock_sendall(sock, mp.encode_resize(size.height, size.width))
            finally:
                streams.resizes.task_done()

    out = asyncio.ensure_future(output())
    gone = asyncio.ensure_future(streams.gone.wait())
    helpers = [asyncio.ensure_future(resize())]
    if streams.stdin:
        helpers.append(asyncio.ensure_future(stdin()))
    try:
        await asyncio.wait({out, gone}, return_when=asyncio.FIRST_COMPLETED)
        if out.done() and out.exception() is not None and not gone.done():
            log.info("attach relay ended: %s", out.exception())
        return out.done() and not gone.done()
    finally:
        for task in (out, gone, *helpers):
            task.cancel()
        await asyncio.gather(out, gone, *helpers, return_exceptions=True)


async def _attach_packet(packet: bytes, streams: CommandStreams) -> bool:
    """Relay one monitor packet; False after EXIT (the last one)."""
    kind = packet[0]
    if kind == mp.MSG_STDOUT and streams.stdout:
        await streams.send(sp.STDOUT, packet[1:])
    elif kind == mp.MSG_STDERR and streams.stderr:
        await streams.send(sp.STDERR, packet[1:])
    elif kind == mp.MSG_EXIT:
        return False
    return True       # REPLY to our CLOSE_STDIN / RESIZE: nothing to relay


# ---- port forward -----------------------------------------------------------------

def pod_netns(backend: Backend, pod_id: str) -> str:
    """The pod's pinned network namespace ("" for a host-network pod)."""
    return backend.sandboxes.store.get(pod_id, "PortForward").netns_path


def _connect(netns: str, port: int) -> socket.socket:
    def dial() -> socket.socket:
        # a socket keeps the namespace it was made in, so it can be used
        # from any thread once created (and connected) in the pod's
        return socket.create_connection(("127.0.0.1", port), timeout=CONNECT_TIMEOUT)
    sock = run_joined([("net", netns)], dial, name="portforward") if netns else dial()
    sock.setblocking(False)
    return sock


async def run_port(backend: Backend, request: StreamRequest, stream: PortStream) -> None:
    """One forwarded connection: dial, relay both ways until both sides
    have ended, errors on the error stream."""
    try:
        netns = pod_netns(backend, request.pod_id)
        sock = await backend.blocking(_connect, netns, stream.port)
    except (OSError, CrioNativeError) as e:
        await stream.send_error(f"error forwarding port {stream.port} to pod {request.pod_id}"
                                f", uid : failed to connect to localhost:{stream.port} inside "
                                f"namespace {request.pod_id}: {e}")
        await stream.close()
        return
    loop = asyncio.get_running_loop()

    async def upstream() -> None:
        while (data := await stream.read()) is not None:
            await loop.sock_sendall(sock, data)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)

    async def downstream() -> None:
        while data := await loop.sock_recv(sock, 65536):
            await stream.send(data)
        await stream.close_write()

    up = asyncio.ensure_future(upstream())
    down = asyncio.ensure_future(downstream())
    gone = asyncio.ensure_future(stream.gone.wait())
    try:
        await asyncio.wait({down, gone}, return_when=asyncio.FIRST_COMPLETED)
        if down.done() and down.exception() is not None and not gone.done():
            await stream.send_error(f"error forwarding port {stream.port} to pod "
                                    f"{request.pod_id}: {down.exception()}")
    finally:
        for task in (up, down, gone):
            task.cancel()
        await asyncio.gather(up, down, gone, return_exceptions=True)
        sock.close()
    if not stream.gone.is_set():
        await stream.close()
