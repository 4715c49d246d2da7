"""Per-pod MCS levels: each pod gets its own pair of SELinux categories, so
the processes and files of one pod cannot reach another's (the container
types are MCS-constrained).  Levels are `s0:cA,cB` with A < B < 1024, as
container-selinux expects; a level in use by another pod is never handed
out twice."""
from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Callable, Iterable

from crio_native.spec import selinux as selinux_spec

CATEGORIES = 1024
ATTEMPTS = 1000
# what write_pod_files (setup.py) labels at the pod's level, in its directory
POD_FILES = ("hostname", "resolv.conf", "hosts")
XATTR = "security.selinux"


def level_of(a: int, b: int) -> str:
    lo, hi = sorted((a, b))
    return f"s0:c{lo},c{hi}"


def allocate_level(in_use: Iterable[str], rng: random.Random | None = None) -> str:
    """A category pair no pod in `in_use` holds.  Random rather than
    sequential, so levels are not predictable from the pod count."""
    taken = set(in_use)
    rng = rng or random.SystemRandom()
    for _ in range(ATTEMPTS):
        a, b = rng.sample(range(CATEGORIES), 2)
        level = level_of(a, b)
        if level not in taken:
            return level
    # nearly half a million pairs: only a huge node gets here; search in order
    for a in range(CATEGORIES):
        for b in range(a + 1, CATEGORIES):
            if level_of(a, b) not in taken:
                return level_of(a, b)
    raise RuntimeError("every MCS category pair is in use")


# ---- the level of a pod whose record is unreadable ---------------------------------------
#
# Such a pod is kept as it is, its containers running (docs/recovery.md,
# "Unreadable records"), so the level it holds is still in use; it is read
# from what is left of the pod.

def file_label_of(path: Path) -> str:
    """The SELinux label of `path` itself (OSError where it has none)."""
    return os.getxattr(path, XATTR, follow_symlinks=False).rstrip(b"\0").decode()


def level_in_label(label: str) -> str | None:
    """The level of `user:role:type:level`, or None where there is none."""
    parts = label.split(":", 3)
    if len(parts) != 4 or selinux_spec.level_problem(parts[3]):
        return None
    return parts[3]


def _level_in_record(path: Path) -> str | None:
    """`selinux_level` of a record file that is JSON but not a record (a
    field of another type, another version's shape), where it still has
    one that reads as a level ("" for a pod made without one)."""
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    level = doc.get("selinux_level") if isinstance(doc, dict) else None
    if not isinstance(level, str) or (level and selinux_spec.level_problem(level)):
        return None
    return level


def level_left_by(record_path: Path, pod_dir: Path,
                  read_label: Callable[[Path], str] = file_label_of) -> str | None:
    """The level a pod whose record at `record_path` is unreadable may still
    hold: the record's own `selinux_level` where it has one, else the label
    of the files its directory `pod_dir` shares with its containers.  ""
    where it holds none (its directory is gone: a reboot took it and what
    ran); None where it cannot be told."""
    level = _level_in_record(record_path)
    if level is not None:
        return level
    if not pod_dir.is_dir():
        return ""
    for name in POD_FILES:
        try:
            level = level_in_label(read_label(pod_dir / name))
        except (OSError, UnicodeDecodeError):
            continue
        if level is not None:
            return level
    return None
