"""Helpers shared by the benchmarks: timing and reporting."""
from __future__ import annotations

import statistics
import time
from typing import Callable


def time_calls(fn: Callable[[], object], iterations: int, warmup: int = 5) -> list[float]:
    """Wall-clock seconds of each of `iterations` calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def time_alternating(calls: dict[str, Callable[[], object]], iterations: int,
                     warmup: int = 5) -> dict[str, list[float]]:
    """time_calls of several callables at once, taking turns call by call
    (the order reversed every round), so drift and warm-up hit all alike."""
    names = list(calls)
    for _ in range(warmup):
        for name in names:
            calls[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(iterations):
        for name in names if i % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            calls[name]()
            samples[name].append(time.perf_counter() - start)
    return samples


def summarize(label: str, samples: list[float]) -> float:
    """Print p50/p90 in milliseconds; return the median."""
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p90 = ordered[int(len(ordered) * 0.9) - 1]
    print(f"  {label:<32} p50 {p50 * 1000:8.3f} ms   p90 {p90 * 1000:8.3f} ms   n={len(samples)}")
    return p50


def ratio(label: str, ours: float, peer: float, target: float | None = None) -> None:
    """ours/peer; with `target`, whether it is at or below it."""
    verdict = "" if target is None else \
        f"   target <= {target}x: {'met' if ours / peer <= target else 'NOT met'}"
    print(f"  ratio {label}: {ours / peer:.2f}x{verdict}")
