"""Interface counters of a pod's network namespace, lo excluded.

Read from <proc>/net/dev, which shows the namespace of the task it names:
either /proc/<pid>/net/dev of a process in the pod's namespace, or, given
the pinned namespace file, /proc/thread-self/net/dev on a short-lived
thread that joined it with setns (the network namespace is per thread, so
no other thread moves).  /sys/class/net cannot be used that way: a sysfs
mount keeps showing the namespace it was mounted in, whatever the reader
joins, and mounting a fresh one would need a private mount namespace."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, TypeVar

from crio_native.linux.nsthread import run_joined

T = TypeVar("T")

DEFAULT_INTERFACE = "eth0"   # what CNI plugins name the pod's interface


@dataclass(frozen=True)
class InterfaceStats:
    name: str
    rx_bytes: int
    rx_errors: int
    tx_bytes: int
    tx_errors: int
    # for the CRI metrics (stats/pod_metrics.py); the stats RPCs carry none
    rx_packets: int = 0
    rx_dropped: int = 0
    tx_packets: int = 0
    tx_dropped: int = 0


def parse_net_dev(text: str) -> list[InterfaceStats]:
    """/proc/net/dev: two header lines, then 'name: 8 rx fields 8 tx fields'
    (bytes packets errs drop fifo frame compressed multicast | bytes packets
    errs drop fifo colls carrier compressed).  lo is left out."""
    out = []
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        fields = rest.split()
        name = name.strip()
        if not sep or len(fields) < 16 or name == "lo":
            continue
        try:
            rx_bytes, rx_pkts, rx_errs, rx_drop, tx_bytes, tx_pkts, tx_errs, tx_drop = (
                int(fields[i]) for i in (0, 1, 2, 3, 8, 9, 10, 11))
        except ValueError:
            continue
        out.append(InterfaceStats(name, rx_bytes, rx_errs, tx_bytes, tx_errs,
                                  rx_pkts, rx_drop, tx_pkts, tx_drop))
    return sorted(out, key=lambda s: s.name)


def run_in_netns(netns_path: str | os.PathLike[str], work: Callable[[], T]) -> T:
    """`work()` on a fresh thread that joined the network namespace pinned at
    `netns_path`."""
    return run_joined([("net", netns_path)], work, name="netns-stats")


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def interface_stats(netns_path: str | os.PathLike[str] | None = None,
                    pid: int | None = None) -> list[InterfaceStats] | None:
    """Counters of every interface but lo in a network namespace, named by a
    process in it (`pid`, tried first) or by its pinned file; None when
    neither is usable (process gone, namespace unpinned)."""
    if pid is not None:
        try:
            return parse_net_dev(_read(f"/proc/{pid}/net/dev"))
        except OSError:
            pass
    if netns_path is not None:
        try:
            return parse_net_dev(run_in_netns(netns_path,
                                              lambda: _read("/proc/thread-self/net/dev")))
        except OSError:
            pass
    return None


def default_interface(stats: list[InterfaceStats],
                      name: str = DEFAULT_INTERFACE) -> InterfaceStats | None:
    """The pod's default interface: `name` when present, else the first."""
    for s in stats:
        if s.name == name:
            return s
    return stats[0] if stats else None
