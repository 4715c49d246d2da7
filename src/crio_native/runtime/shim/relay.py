"""The process a vm-handler container's crio-native-monitor runs in place of
the container (spawn mode): it relays the task's stdout/stderr FIFOs to its
own stdout/stderr, which the monitor writes into the CRI log, and exits
with the task's exit status, which it gets from the shim's `Wait`.  So the
monitor's exit file holds the container's exit code, as for every other
handler, and the container manager needs no special case; and all of it
keeps working while the daemon is down (DESIGN.md invariant 2).

It also drains the shim's own log FIFO into a file (a FIFO nobody reads
would, once full, block the shim), and feeds the monitor's stdin pipe (its
fd 0) into the task's stdin FIFO when the container has stdin.

    python -m crio_native.runtime.shim.relay --address A --id ID
        --stdout FIFO --stderr FIFO [--stdin FIFO] [--shim-log FIFO --shim-log-file F]

Exit status: the task's (128+signal when a signal ended it), or 255 when
the shim could not say (gone, or the task never appeared)."""
from __future__ import annotations

import argparse
import contextlib
import errno
import os
import selectors
import sys
import threading
import time

UNKNOWN_EXIT = 255
SHIM_LOST_GRACE = 2.0            # seconds without a shim to connect to before giving up
SHIM_LOG_LIMIT = 1 << 20         # bytes of the shim's log kept
DRAIN_IDLE, DRAIN_MAX = 0.1, 2.0  # after the exit, as the monitor: quiet this long / at most


def _open_fifo_reader(path: str) -> tuple[int, int]:
    """Our read end and a writer of our own, so reads do not see EOF
    before the shim has opened its end (dropped once the task exited)."""
    r = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    w = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    return r, w


class Waiter(threading.Thread):
    """Calls Wait on the shim (retrying while the task is not created yet)
    and wakes the relay loop through a pipe."""

    def __init__(self, address: str, task_id: str, appear_timeout: float):
        super().__init__(daemon=True, name="wait")
        self.address, self.task_id = address, task_id
        self.appear_timeout = appear_timeout
        self.code: int | None = None
        self.rfd, self.wfd = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)

    def run(self) -> None:
        try:
            self.code = self._wait()
        except Exception as e:  # noqa: BLE001 -- reported, and the exit is unknown
            print(f"crio-native shim relay: Wait for {self.task_id}: {e}", file=sys.stderr)
            self.code = UNKNOWN_EXIT
        os.write(self.wfd, b"x")

    def _wait(self) -> int:
        from crio_native.errors import NotFound, Unavailable
        from crio_native.runtime.shim.task import TaskClient

        deadline = time.monotonic() + self.appear_timeout
        lost_at: float | None = None
        while True:
            try:
                with TaskClient.dial(self.address, connect_timeout=1.0) as task:
                    lost_at = None
                    status = task.wait(self.task_id).exit_status
                    return status if 0 <= status <= 255 else UNKNOWN_EXIT
            except NotFound:
                # not created yet (the relay starts first)
                if time.monotonic() >= deadline:
                    raise
            except Unavailable:
                # the shim is gone (or was never there): a short grace, then
                # the exit is unknown
                lost_at = lost_at or time.monotonic()
                if time.monotonic() - lost_at >= SHIM_LOST_GRACE:
                    raise
            time.sleep(0.02)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            n = os.write(fd, data)
        except BlockingIOError:
            time.sleep(0.001)
            continue
        data = data[n:]


def relay(args: argparse.Namespace) -> int:
    sel = selectors.DefaultSelector()
    own_writers: list[int] = []
    outputs: dict[int, int] = {}               # fifo fd -> our fd 1 or 2
    for path, dest in ((args.stdout, 1), (args.stderr, 2)):
        if path:
            r, w = _open_fifo_reader(path)
            own_writers.append(w)
            outputs[r] = dest
            sel.register(r, selectors.EVENT_READ, "out")
    shim_log_in = shim_log_out = None
    if args.shim_log:
        with contextlib.suppress(OSError):
            shim_log_in = os.open(args.shim_log, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            shim_log_out = os.open(args.shim_log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND
                                   | os.O_CLOEXEC, 0o600)
            sel.register(shim_log_in, selectors.EVENT_READ, "shimlog")
    stdin_fifo = None
    if args.stdin:
        # O_RDWR: never blocks, and never fails for want of a reader
        stdin_fifo = os.open(args.stdin, os.O_RDWR | os.O_CLOEXEC)
        sel.register(0, selectors.EVENT_READ, "stdin")

    waiter = Waiter(args.address, args.id, args.appear_timeout)
    sel.register(waiter.rfd, selectors.EVENT_READ, "exit")
    waiter.start()

    shim_log_written = 0
    exited_at: float | None = None
    while True:
        open_outputs = [fd for fd in outputs if fd in sel.get_map()]
        now = time.monotonic()
        if exited_at is not None and (not open_outputs or now - exited_at >= DRAIN_MAX):
            break
        ready = sel.select(DRAIN_IDLE if exited_at is not None else None)
        if not ready and exited_at is not None:
            break        # quiet since the exit: a background process may hold the FIFOs
        for key, _ in ready:
            fd, kind = key.fd, key.data
            if kind == "exit":
                sel.unregister(fd)
                exited_at = time.monotonic()
                for w in own_writers:    # now EOF comes once the shim closes its end
                    os.close(w)
                own_writers.clear()
                continue
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            except OSError as e:
                if e.errno != errno.EINTR:
                    sel.unregister(fd)
                continue
            if not chunk:
                sel.unregister(fd)
                if kind == "stdin" and stdin_fifo is not None:
                    os.close(stdin_fifo)      # EOF for the task
                    stdin_fifo = None
                continue
            if kind == "out":
                _write_all(outputs[fd], chunk)
            elif kind == "shimlog" and shim_log_out is not None:
                if shim_log_written < SHIM_LOG_LIMIT:
                    os.write(shim_log_out, chunk[:SHIM_LOG_LIMIT - shim_log_written])
                    shim_log_written += len(chunk)
            elif kind == "stdin" and stdin_fifo is not None:
                with contextlib.suppress(OSError):
                    _write_all(stdin_fifo, chunk)
    return waiter.code if waiter.code is not None else UNKNOWN_EXIT


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="crio-native-shim-relay")
    p.add_argument("--address", required=True)
    p.add_argument("--id", required=True)
    p.add_argument("--stdout", default="")
    p.add_argument("--stderr", default="")
    p.add_argument("--stdin", default="")
    p.add_argument("--shim-log", default="")
    p.add_argument("--shim-log-file", default="")
    p.add_argument("--appear-timeout", type=float, default=120.0,
                   help="how long the task may take to be created")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return relay(args)


if __name__ == "__main__":
    sys.exit(main())
