"""Per-pod MCS levels: each pod gets its own pair of SELinux categories, so
the processes and files of one pod cannot reach another's (the container
types are MCS-constrained).  Levels are `s0:cA,cB` with A < B < 1024, as
container-selinux expects; a level in use by another pod is never handed
out twice."""
from __future__ import annotations

import random
from typing import Iterable

CATEGORIES = 1024
ATTEMPTS = 1000


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
