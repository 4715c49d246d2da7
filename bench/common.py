"""Helpers shared by the benchmarks: timing and reporting."""
from __future__ import annotations

import statistics
import threading
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


def time_concurrent(fn: Callable[[], object], callers: int,
                    rounds: int) -> tuple[list[float], float]:
    """`callers` threads, released together, each calling `fn` `rounds`
    times: the seconds of every call, and the wall time from the release
    until the last thread ended.  The first error of any caller is raised
    once all have ended."""
    start = threading.Barrier(callers + 1)
    samples: list[list[float]] = [[] for _ in range(callers)]
    errors: list[BaseException] = []

    def caller(mine: list[float]) -> None:
        start.wait()
        try:
            mine.extend(time_calls(fn, rounds, warmup=0))
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errors.append(e)

    threads = [threading.Thread(target=caller, args=(s,)) for s in samples]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    if errors:
        raise errors[0]
    return [x for s in samples for x in s], wall


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
