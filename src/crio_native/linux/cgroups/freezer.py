"""Freezing and thawing a container's groups: the v1 freezer or v2's
cgroup.freeze, whichever is in charge."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from crio_native.errors import FailedPrecondition


def _freezer_files(dirs: list[Path]) -> list[tuple[Path, str, str, str]]:
    """(file to write, frozen value, thawed value, file to watch) for the one
    freezer in charge: v1 freezer.state when the host has it (a hybrid host's
    v2 freezer never settles on tasks the v1 one holds), else v2 cgroup.freeze."""
    v1 = [(d / "freezer.state", "FROZEN", "THAWED", "freezer.state")
          for d in dirs if (d / "freezer.state").exists()]
    if v1:
        return v1
    return [(d / "cgroup.freeze", "1", "0", "cgroup.events")
            for d in dirs if (d / "cgroup.freeze").exists()]


def _settled(path: Path, watch: str, frozen: bool) -> bool:
    text = (path.parent / watch).read_text()
    if watch == "freezer.state":
        return text.strip() == ("FROZEN" if frozen else "THAWED")
    return f"frozen {int(frozen)}" in text.splitlines()


def freeze(dirs: list[Path], frozen: bool, timeout: float = 5.0) -> None:
    """Freeze or thaw every process in the groups and wait until the kernel
    says it is done (v1 passes through FREEZING)."""
    files = _freezer_files(dirs)
    if not files:
        raise FailedPrecondition("the container has no freezer cgroup (set linux.cgroupsPath)")
    for path, on, off, _watch in files:
        path.write_text(on if frozen else off)
    deadline = time.monotonic() + timeout
    for path, on, _off, watch in files:
        while not _settled(path, watch, frozen):
            if time.monotonic() > deadline:
                raise FailedPrecondition(f"{path}: still not {'frozen' if frozen else 'thawed'}")
            if frozen and watch == "freezer.state":
                path.write_text(on)  # v1 may need a nudge out of FREEZING
            time.sleep(0.005)


def is_frozen(dirs: list[Path]) -> bool:
    return frozen_probe(dirs)()


def frozen_probe(dirs: list[Path]) -> Callable[[], bool]:
    """is_frozen(dirs) for asking again and again (ExecSync checks it at
    every exec): which freezer files are in charge is looked up once."""
    files = _freezer_files(dirs)
    return lambda: bool(files) and all(_settled(p, w, True) for p, _on, _off, w in files)
