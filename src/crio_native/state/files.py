"""Crash-safe file writes: a unique temp file in the same directory, fsync,
rename, fsync the directory.  A reader sees the old content or the new, never
half, and a failed write leaves no temp file behind (one a crash cut short
is found by interrupted_writes, for start-up to sweep).  Records, image
store metadata and CNI result caches all go through here.  `durable=False`
leaves out the two fsyncs: still atomic, and kept through a daemon crash,
but not through a power loss (docs/recovery.md, "Durability", says when
that is enough)."""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any


def fsync_dir(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_prefix(name: str) -> str:
    """The start of the name of a temp file atomic_write makes for `name`
    (tempfile adds random characters after it)."""
    return f".{name}."


def interrupted_writes(directory: str | Path, suffix: str) -> list[Path]:
    """Temp files a write of some `*<suffix>` file in `directory` left when
    the process died between mkstemp and rename: `.<name><suffix>.<random>`.
    No process writes them once it is gone, so start-up may remove them."""
    pattern = re.compile(r"^\..+" + re.escape(suffix) + r"\.[A-Za-z0-9_]+$")
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(Path(directory) / n for n in names if pattern.match(n))


def atomic_write(path: str | Path, data: bytes, mode: int = 0o600,
                 durable: bool = True) -> None:
    """`durable=False`: still atomic (temp file and rename), but not fsynced,
    for files under the runroot, which a reboot wipes (tmpfs) and which a
    daemon crash alone cannot lose (the page cache outlives the process)."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path.name))
    except FileNotFoundError:     # the directory first (not tried each time: a syscall)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path.name))
    try:
        try:
            # plain os.write: no buffered file object for one write
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, mode)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if durable:
        fsync_dir(path.parent)


def atomic_write_json(path: str | Path, doc: Any, mode: int = 0o600,
                      durable: bool = True) -> None:
    # Compact: json's C encoder only runs without `indent`, and a container's
    # config.json (its seccomp profile) is large enough for that to matter.
    atomic_write(path, json.dumps(doc, sort_keys=True, separators=(",", ":")).encode(), mode,
                 durable)


def read_json(path: str | Path) -> Any:
    with open(path, "rb") as f:
        return json.load(f)
