"""Reading the exit file a monitor leaves in its state dir."""
from __future__ import annotations

import calendar
import os
import time
from dataclasses import dataclass
from pathlib import Path

from crio_native.errors import DeadlineExceeded, Internal

from .paths import EXIT_FILE


@dataclass(frozen=True)
class ExitStatus:
    exit_code: int          # the exit status, or 128 + signal
    signal: int             # 0 unless killed by a signal
    finished_at: str        # RFC 3339 UTC with nanoseconds
    finished_at_ns: int     # the same, as nanoseconds since the epoch
    oom_killed: bool        # the cgroup's oom_kill count grew


def _ns_from_rfc3339(stamp: str) -> int:
    # fixed layout written by the monitor: YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ
    whole, _, frac = stamp.rstrip("Z").partition(".")
    secs = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return int(secs) * 1_000_000_000 + int(frac.ljust(9, "0")[:9] or 0)


def parse_exit(text: str, where: str = EXIT_FILE) -> ExitStatus:
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    try:
        return ExitStatus(
            exit_code=int(fields["code"]),
            signal=int(fields["signal"]),
            finished_at=fields["finished"],
            finished_at_ns=_ns_from_rfc3339(fields["finished"]),
            oom_killed=fields["oom"] == "1",
        )
    except (KeyError, ValueError) as e:
        raise Internal(f"monitor exit file {where}: malformed ({e!r}): {text!r}") from e


def read_exit(state_dir: str | os.PathLike) -> ExitStatus | None:
    """The recorded exit of the container, or None while it still runs."""
    path = Path(state_dir) / EXIT_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return parse_exit(text, str(path))


def wait_exit(state_dir: str | os.PathLike, timeout: float) -> ExitStatus:
    """Poll for the exit file; DeadlineExceeded if it is not there in time."""
    deadline = time.monotonic() + timeout
    while True:
        status = read_exit(state_dir)
        if status is not None:
            return status
        if time.monotonic() >= deadline:
            raise DeadlineExceeded(f"container in {state_dir}: no exit after {timeout}s")
        time.sleep(0.01)
