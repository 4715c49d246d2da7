"""Crash-safe file writes: temp file in the same directory, fsync, rename,
fsync the directory.  A reader sees the old content or the new, never half."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def atomic_write(path: str | Path, data: bytes, mode: int = 0o600) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_json(path: str | Path, doc: Any, mode: int = 0o600) -> None:
    atomic_write(path, json.dumps(doc, indent=1, sort_keys=True).encode(), mode)


def read_json(path: str | Path) -> Any:
    with open(path, "rb") as f:
        return json.load(f)
