"""Where the rest of the daemon reports to its metrics: `current` is the
running daemon's DaemonMetrics, or None while metrics are off, so a hook
costs one test and this module imports nothing of prometheus-client."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crio_native.metrics.collectors import DaemonMetrics

current: "DaemonMetrics | None" = None


def install(metrics: "DaemonMetrics | None") -> None:
    global current
    current = metrics
