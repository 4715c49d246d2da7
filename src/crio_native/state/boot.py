"""What start-up finds, told by version files as CRI-O tells it.

`version_file` lies in the runroot, a tmpfs on a real node, so it is gone
after a reboot; `version_file_persist` lies under the root and survives
reboots, so a different major.minor in it means the daemon was upgraded (or
downgraded).  Both hold the version that last started, as a JSON string
(CRI-O writes its semver the same way).  A third file, `clean.shutdown` in
the runroot, is written when the daemon stops on SIGTERM/SIGINT and removed
at start: its absence after a start tells a crash (or kill -9).

The decision is logged once per start.  Recovery itself does not trust it:
every pod and container is judged on what is there (a live monitor, the
pins, the pod directory), so a wrong guess (a version file removed by hand)
cannot mark a running container exited."""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from crio_native import __version__
from crio_native.config import Config
from crio_native.logsetup import fields
from crio_native.state.files import atomic_write

log = logging.getLogger(__name__)

CLEAN_SHUTDOWN = "clean.shutdown"
_MAJOR_MINOR = re.compile(r"^(\d+)\.(\d+)")

FIRST_START = "first start"
REBOOT = "reboot"
RESTART = "restart"


def version_file(config: Config) -> Path:
    """`version_file`, else <runroot>/version."""
    return Path(config.version_file or Path(config.runroot) / "version")


def version_file_persist(config: Config) -> Path:
    """`version_file_persist`, else <root>/version."""
    return Path(config.version_file_persist or Path(config.root) / "version")


def read_version(path: Path) -> str | None:
    """The version a file holds; None if there is no file; "" if it holds
    nothing readable as a version (CRI-O then wipes, as after an upgrade)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return ""
    return value if isinstance(value, str) and _MAJOR_MINOR.match(value) else ""


def major_minor(version: str) -> tuple[int, int] | None:
    match = _MAJOR_MINOR.match(version)
    return (int(match.group(1)), int(match.group(2))) if match else None


@dataclass(frozen=True)
class BootState:
    """What start-up decided."""
    kind: str                   # FIRST_START, REBOOT or RESTART
    previous: str | None        # the version in version_file_persist (None: no file)
    upgraded: bool              # major.minor differs from the one that ran before
    clean_shutdown: bool        # the daemon before this one stopped on a signal

    @property
    def rebooted(self) -> bool:
        return self.kind == REBOOT

    def describe(self) -> str:
        if self.kind == FIRST_START:
            what = "first start"
        elif self.kind == REBOOT:
            what = "reboot: the runroot was wiped since the last start"
        else:
            what = "restart after a " + ("clean shutdown" if self.clean_shutdown else "crash")
        if self.upgraded:
            what += f"; upgrade from {self.previous or 'an unreadable version'} " \
                    f"to {__version__}"
        return what


def examine(config: Config, has_records: bool) -> BootState:
    """Read the version files and the shutdown marker (before anything
    writes them).  `has_records`: the root holds pod or container records."""
    runtime_version = read_version(version_file(config))
    previous = read_version(version_file_persist(config))
    clean = (Path(config.runroot) / CLEAN_SHUTDOWN).exists()
    if runtime_version is not None:
        kind = RESTART
    elif previous is None and not has_records:
        kind = FIRST_START
    else:
        kind = REBOOT
    before = major_minor(previous) if previous else None
    upgraded = previous is not None and before != major_minor(__version__)
    return BootState(kind=kind, previous=previous, upgraded=upgraded, clean_shutdown=clean)


def log_decision(state: BootState, config: Config) -> None:
    log.info("start-up: %s", state.describe(), extra=fields(
        boot=state.kind, upgraded=state.upgraded, previous_version=state.previous or "",
        version=__version__, version_file=str(version_file(config)),
        version_file_persist=str(version_file_persist(config))))


def mark_started(config: Config) -> None:
    """After recovery: both version files say this version; the shutdown
    marker is gone until the next clean stop."""
    data = json.dumps(__version__).encode()
    atomic_write(version_file(config), data, 0o644)
    atomic_write(version_file_persist(config), data, 0o644)
    (Path(config.runroot) / CLEAN_SHUTDOWN).unlink(missing_ok=True)


def mark_clean_shutdown(config: Config) -> None:
    (Path(config.runroot) / CLEAN_SHUTDOWN).touch()
