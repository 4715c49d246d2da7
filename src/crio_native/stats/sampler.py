"""usage_nano_cores: the CPU rate between two reads of the cumulative usage.

As CRI-O and containerd do, the daemon keeps the last (time, usage) sample
per container or pod id; a call with a previous sample answers the rate over
the interval since, the first call answers None (CRI: field unset).  Times
are monotonic, so a wall-clock jump cannot produce a bogus rate."""
from __future__ import annotations

import threading
import time


class CpuSampler:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, tuple[int, int]] = {}   # id -> (monotonic ns, usage ns)

    def nano_cores(self, key: str, usage_ns: int | None, now_ns: int | None = None) -> int | None:
        """Record this sample for `key`; the average nanocores since the
        previous one, or None on the first sample, a counter that went
        backwards (the group was recreated) or no time elapsed."""
        if usage_ns is None:
            return None
        now = time.monotonic_ns() if now_ns is None else now_ns
        with self._lock:
            prev = self._last.get(key)
            if prev is not None and now <= prev[0]:
                return None  # a concurrent caller already stored a newer sample
            self._last[key] = (now, usage_ns)
        if prev is None or usage_ns < prev[1]:
            return None
        return (usage_ns - prev[1]) * 1_000_000_000 // (now - prev[0])

    def forget(self, key: str) -> None:
        """Drop a removed container's or pod's sample."""
        with self._lock:
            self._last.pop(key, None)

    def retain(self, keys: set[str]) -> None:
        """Drop the samples of every id not in `keys` (the live objects)."""
        with self._lock:
            for key in [k for k in self._last if k not in keys]:
                del self._last[key]

    def __len__(self) -> int:
        with self._lock:
            return len(self._last)
