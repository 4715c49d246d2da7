"""Starting, finding and stopping a shim v2 process, as containerd 1.6 does.

Start: `<shim> -namespace NS -address ADDR -publish-binary BIN -id ID start`
with the bundle as its working directory, stdin the runtime options (empty:
defaults) and TTRPC_ADDRESS in the environment.  That first process forks
the long-lived shim, which opens the FIFO `log` in the bundle for its own
log (it will not start without it), and prints the ttrpc address of the
socket it serves (`unix:///run/containerd/s/<hash>` for the runc shim).
The shim publishes task events to TTRPC_ADDRESS; crio-native does not take
them (the exit comes from Wait), so that address points at nothing and
the shim drops them after its retries.

The address and the shim's pid are saved in the container's directory
below the handler's state dir, so a restarted daemon reconnects.  Stop:
`Shutdown` once the task is deleted, then the process is waited for and a
socket it left is removed.  When the shim is gone but the runtime may
still hold the container, `<shim> ... -id ID -bundle B delete` cleans up
(containerd's cleanup path)."""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from crio_native.errors import DeadlineExceeded, FailedPrecondition
from crio_native.monitor import process_alive
from crio_native.runtime.shim.ttrpc import socket_path

log = logging.getLogger(__name__)

ADDRESS_FILE = "address"      # in the container's dir: the shim's ttrpc address
SHIM_PID_FILE = "shim.pid"
MONITOR_PID_FILE = "monitor.pid"   # the monitor whose relay waits for the task's exit
BUNDLE_FILE = "bundle"        # the bundle path, for `shim delete` after a crash
SHIM_LOG_FIFO = "log"         # in the bundle: the shim writes its log here
# What containerd-shim-runc-v2 leaves in the bundle (containerd removes the
# whole bundle; ours belongs to the container manager, so only these go).
SHIM_BUNDLE_FILES = ("init.pid", "log.json", "options.json", "runtime", "shim.pid")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass(frozen=True)
class ShimCommand:
    """How this daemon runs a shim binary."""

    binary: str
    namespace: str
    address: str           # "our" address: the shim hashes it into its socket name
    publish_binary: str

    def argv(self, container_id: str, *action: str) -> list[str]:
        return [self.binary, "-namespace", self.namespace, "-address", self.address,
                "-publish-binary", self.publish_binary, "-id", container_id, *action]

    def env(self) -> dict[str, str]:
        # As containerd: TTRPC_ADDRESS is where events go (nothing listens
        # there); GOMAXPROCS keeps the Go runtime small.
        return {**os.environ, "TTRPC_ADDRESS": self.address + ".ttrpc", "GOMAXPROCS": "2"}

    def missing(self) -> FailedPrecondition:
        return FailedPrecondition(f"runtime_path {self.binary}: no such executable "
                                  "(shim v2 binary)")

    def start(self, container_id: str, bundle: Path, timeout: float) -> str:
        """Run `start`; the address it printed."""
        argv = self.argv(container_id, "start")
        try:
            p = subprocess.run(argv, cwd=bundle, env=self.env(), stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=timeout, check=False)
        except FileNotFoundError as e:
            raise self.missing() from e
        except subprocess.TimeoutExpired as e:
            raise DeadlineExceeded(f"container {container_id}: `{self.binary} start` did not "
                                   f"finish in {timeout}s") from e
        address = p.stdout.decode(errors="replace").strip()
        if p.returncode != 0 or not address:
            said = p.stderr.decode(errors="replace").strip() or f"exit status {p.returncode}"
            raise FailedPrecondition(f"container {container_id}: {self.binary} start: {said}")
        return address

    def cleanup(self, container_id: str, bundle: Path, timeout: float) -> None:
        """`delete`: the shim's own cleanup of a container whose shim died."""
        if not bundle.is_dir():
            return
        try:
            p = subprocess.run(self.argv(container_id, "-bundle", str(bundle), "delete"),
                               cwd=bundle, env=self.env(), stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            log.warning("container %s: %s delete: %s", container_id, self.binary, e)
            return
        if p.returncode != 0:
            log.info("container %s: %s delete: %s", container_id, self.binary,
                     p.stderr.decode(errors="replace").strip())


class ShimFiles:
    """What the handler keeps of one container's shim: <root>/<id>/."""

    def __init__(self, root: Path, container_id: str):
        self.dir = root / container_id

    def exists(self) -> bool:
        return self.dir.is_dir()

    def save(self, address: str, bundle: Path) -> None:
        _write_atomic(self.dir / BUNDLE_FILE, str(bundle))
        _write_atomic(self.dir / ADDRESS_FILE, address)

    def save_pid(self, pid: int) -> None:
        _write_atomic(self.dir / SHIM_PID_FILE, str(pid))

    def save_monitor_pid(self, pid: int) -> None:
        _write_atomic(self.dir / MONITOR_PID_FILE, str(pid))

    def monitor_pid(self) -> int | None:
        try:
            return int((self.dir / MONITOR_PID_FILE).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def address(self) -> str | None:
        try:
            return (self.dir / ADDRESS_FILE).read_text().strip() or None
        except FileNotFoundError:
            return None

    def bundle(self) -> Path | None:
        try:
            return Path((self.dir / BUNDLE_FILE).read_text().strip())
        except FileNotFoundError:
            return None

    def shim_pid(self) -> int | None:
        try:
            return int((self.dir / SHIM_PID_FILE).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def remove(self) -> None:
        bundle = self.bundle()
        if bundle is not None:
            # what the shim and we left in the bundle (the bundle is the manager's)
            for name in (SHIM_LOG_FIFO, ADDRESS_FILE, *SHIM_BUNDLE_FILES):
                with contextlib.suppress(OSError):
                    (bundle / name).unlink()
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_process_gone(pid: int | None, address: str | None, timeout: float = 10.0) -> bool:
    """Wait for a process (the shim, a monitor) to end, reaping it when it
    was reparented to us (a subreaper), then remove the socket at `address`
    the shim may have left.  False if it still runs at the timeout."""
    gone = True
    if pid is not None:
        deadline = time.monotonic() + timeout
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        gone = not process_alive(pid)
    if gone and address and not socket_path(address).startswith("\0"):
        with contextlib.suppress(OSError):
            os.unlink(socket_path(address))
    return gone


def process_start_matches(pid: int, binary: str) -> bool:
    """`pid` still runs `binary` (a saved pid may name another process
    after a reboot)."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return False
    return os.path.basename(exe.removesuffix(" (deleted)")) == os.path.basename(binary)


__all__ = ["ADDRESS_FILE", "SHIM_LOG_FIFO", "ShimCommand", "ShimFiles",
           "process_start_matches", "wait_process_gone"]
