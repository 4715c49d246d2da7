"""The values behind ListPodSandboxMetrics: per container, from its cgroup
directories (v1 or v2, told apart as stats/cgroup.py does), its processes
in /proc and its root filesystem; per pod, the interface counters of its
network namespace (stats/network.py).  Each reader returns samples of the
families in stats/metric_families.py: (family name, extra label values,
value).  A file the host lacks leaves its sample out; nothing is made up.

Readers take the CgroupStats stats/cgroup.py already read (cpu and memory
usage, working set, swap, pids, OOM kills), so both RPC families agree."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from crio_native.stats.cgroup import CgroupStats, Layout, layout_of, read_int, read_keyed
from crio_native.stats.disk import disk_usage
from crio_native.stats.metric_families import BY_NAME
from crio_native.stats.network import InterfaceStats

Sample = tuple[str, tuple[str, ...], int]      # family, extra label values, value
NS = 1_000_000_000
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class ContainerSource:
    """What one running container's samples are read from."""
    cgroup_dirs: tuple[Path, ...]
    cgroup: CgroupStats | None      # read already (host files, or a vm handler's shim)
    rootfs: str = ""                # the mounted root filesystem
    upper_dir: str = ""             # its writable layer
    pid: int = 0                    # the container's first process


def _some(*pairs: tuple[str, int | None]) -> list[Sample]:
    return [(name, (), value) for name, value in pairs if value is not None]


# ---- cpu ------------------------------------------------------------------------

def _cpu_split(lay: Layout) -> tuple[int | None, int | None]:
    """(user, system) CPU time in ns."""
    user_f, sys_f = lay.v1_file("cpuacct.usage_user"), lay.v1_file("cpuacct.usage_sys")
    if user_f is not None and sys_f is not None:
        return read_int(user_f), read_int(sys_f)
    f = lay.v1_file("cpuacct.stat")
    if f is not None:   # in USER_HZ ticks
        ticks = read_keyed(f)
        user, system = ticks.get("user"), ticks.get("system")
        return (user * NS // CLK_TCK if user is not None else None,
                system * NS // CLK_TCK if system is not None else None)
    f = lay.v2_file("cpu.stat")
    stat = read_keyed(f) if f is not None else {}
    user, system = stat.get("user_usec"), stat.get("system_usec")
    return (user * 1000 if user is not None else None,
            system * 1000 if system is not None else None)


def _throttling(lay: Layout) -> tuple[int | None, int | None, int | None]:
    """(periods, throttled periods, throttled ns): the v1 cpu controller's
    cpu.stat, else the v2 one's (a hybrid host's unified cpu.stat has no
    periods: the cpu controller is in v1 there)."""
    f = lay.v1_file("cpu.stat")
    stat = read_keyed(f) if f is not None else {}
    if "nr_periods" in stat:
        return stat["nr_periods"], stat.get("nr_throttled"), stat.get("throttled_time")
    f = lay.v2_file("cpu.stat")
    stat = read_keyed(f) if f is not None else {}
    usec = stat.get("throttled_usec")
    return stat.get("nr_periods"), stat.get("nr_throttled"), \
        usec * 1000 if usec is not None else None


def cpu_samples(lay: Layout, cg: CgroupStats | None) -> list[Sample]:
    user, system = _cpu_split(lay)
    periods, throttled, throttled_ns = _throttling(lay)
    out = _some(("container_cpu_user_seconds_total", None if user is None else user // NS),
                ("container_cpu_system_seconds_total",
                 None if system is None else system // NS))
    if cg is not None and cg.cpu_usage_ns is not None:
        # cAdvisor's per-cpu split is off in the kubelet: "total" only
        out.append(("container_cpu_usage_seconds_total", ("total",), cg.cpu_usage_ns // NS))
    return out + _some(("container_cpu_cfs_periods_total", periods),
                       ("container_cpu_cfs_throttled_periods_total", throttled),
                       ("container_cpu_cfs_throttled_seconds_total",
                        None if throttled_ns is None else throttled_ns // NS))


# ---- memory ---------------------------------------------------------------------

def _memory_files(lay: Layout) -> dict[str, int | None]:
    """What CgroupStats does not carry: cache, mapped files, kernel memory,
    limit hits and the peak."""
    if lay.v2_file("memory.current") is not None:
        d = lay.v2
        assert d is not None
        stat = read_keyed(d / "memory.stat")
        return {"cache": stat.get("file"), "mapped": stat.get("file_mapped"),
                "kernel": stat.get("kernel"),
                # v2 counts the times the limit was hit as memory.events "max"
                "failcnt": read_keyed(d / "memory.events").get("max"),
                "peak": read_int(d / "memory.peak")}
    f = lay.v1_file("memory.usage_in_bytes")
    if f is None:
        return {}
    d = f.parent
    stat = read_keyed(d / "memory.stat")
    return {"cache": stat.get("total_cache"), "mapped": stat.get("total_mapped_file"),
            "kernel": read_int(d / "memory.kmem.usage_in_bytes"),
            "failcnt": read_int(d / "memory.failcnt"),
            "peak": read_int(d / "memory.max_usage_in_bytes")}


def memory_samples(lay: Layout, cg: CgroupStats | None) -> list[Sample]:
    files = _memory_files(lay)
    out = _some(("container_memory_cache", files.get("cache")),
                ("container_memory_rss", cg.rss_bytes if cg else None),
                ("container_memory_kernel_usage", files.get("kernel")),
                ("container_memory_mapped_file", files.get("mapped")),
                ("container_memory_swap", cg.swap_usage_bytes if cg else None),
                ("container_memory_failcnt", files.get("failcnt")),
                ("container_memory_usage_bytes", cg.memory_usage_bytes if cg else None),
                ("container_memory_max_usage_bytes", files.get("peak")),
                ("container_memory_working_set_bytes", cg.working_set_bytes if cg else None))
    # cAdvisor reports the group's own faults for both scopes
    for kind, value in (("pgfault", cg.page_faults if cg else None),
                        ("pgmajfault", cg.major_page_faults if cg else None)):
        if value is not None:
            out += [("container_memory_failures_total", (kind, scope), value)
                    for scope in ("container", "hierarchy")]
    return out


# ---- hugetlb, oom ---------------------------------------------------------------

def _page_size_files(d: Path, suffix: str) -> Iterable[tuple[str, Path]]:
    for f in sorted(d.glob(f"hugetlb.*.{suffix}")):
        size = f.name[len("hugetlb."):-len(suffix) - 1]
        if "." not in size:       # not hugetlb.<size>.rsvd.*
            yield size, f


def hugetlb_samples(lay: Layout) -> list[Sample]:
    out: list[Sample] = []
    for d in lay.v1:
        for size, f in _page_size_files(d, "usage_in_bytes"):
            for name, path in (("container_hugetlb_usage_bytes", f),
                               ("container_hugetlb_max_usage_bytes",
                                d / f"hugetlb.{size}.max_usage_in_bytes")):
                value = read_int(path)
                if value is not None:
                    out.append((name, (size,), value))
    if not out and lay.v2 is not None:   # v2 keeps no peak
        for size, f in _page_size_files(lay.v2, "current"):
            value = read_int(f)
            if value is not None:
                out.append(("container_hugetlb_usage_bytes", (size,), value))
    return out


def oom_samples(cg: CgroupStats | None) -> list[Sample]:
    return _some(("container_oom_events_total", cg.oom_kills if cg else None))


# ---- processes ------------------------------------------------------------------

def group_pids(lay: Layout) -> list[int]:
    """The processes in the group (cgroup.procs of the v2 dir, else of the
    first v1 dir that has one)."""
    for d in ([lay.v2] if lay.v2 is not None else []) + list(lay.v1):
        try:
            return [int(x) for x in (d / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            continue
    return []


def _fd_counts(pids: Sequence[int]) -> tuple[int, int]:
    """(open fds, sockets among them) over `pids`; a process that exits
    while it is read counts what was read."""
    fds = sockets = 0
    for pid in pids:
        try:
            names = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        fds += len(names)
        for name in names:
            try:
                if os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                    sockets += 1
            except OSError:
                pass
    return fds, sockets


def _threads(pids: Sequence[int]) -> int:
    count = 0
    for pid in pids:
        try:
            count += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            pass
    return count


def soft_open_files(pid: int) -> int | None:
    """The soft RLIMIT_NOFILE of `pid` from /proc/<pid>/limits; None when
    unlimited or unreadable."""
    try:
        text = Path(f"/proc/{pid}/limits").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Max open files"):
            soft = line[len("Max open files"):].split()[0]
            return int(soft) if soft.isdigit() else None
    return None


def process_samples(lay: Layout, cg: CgroupStats | None, pid: int) -> list[Sample]:
    pids = group_pids(lay)
    if not pids and (cg is None or cg.pids_current is None):
        return []
    fds, sockets = _fd_counts(pids)
    f = lay.v2_file("pids.max") or lay.v1_file("pids.max")
    limit = f.read_text().strip() if f is not None else ""
    out = _some(("container_processes",
                 cg.pids_current if cg and cg.pids_current is not None else len(pids)),
                ("container_threads", _threads(pids)),
                ("container_threads_max", int(limit) if limit.isdigit() else
                 (0 if limit == "max" else None)),
                ("container_file_descriptors", fds), ("container_sockets", sockets))
    nofile = soft_open_files(pid) if pid else None
    if nofile is not None:
        out.append(("container_ulimits_soft", ("max_open_files",), nofile))
    return out


# ---- disk -----------------------------------------------------------------------

def disk_samples(rootfs: str, upper_dir: str) -> list[Sample]:
    """The filesystem holding the container's root (statvfs: inodes, size)
    and what its writable layer uses of it."""
    out: list[Sample] = []
    if rootfs:
        try:
            st = os.statvfs(rootfs)
        except OSError:
            st = None
        if st is not None:
            out += _some(("container_fs_inodes_free", st.f_ffree),
                         ("container_fs_inodes_total", st.f_files),
                         ("container_fs_limit_bytes", st.f_blocks * st.f_frsize))
    usage = disk_usage(upper_dir) if upper_dir else None
    if usage is not None:
        out.append(("container_fs_usage_bytes", (), usage.used_bytes))
    return out


# ---- network --------------------------------------------------------------------

def network_samples(interfaces: Sequence[InterfaceStats]) -> list[Sample]:
    out: list[Sample] = []
    for s in interfaces:
        for name, value in (("receive_bytes", s.rx_bytes), ("receive_packets", s.rx_packets),
                            ("receive_packets_dropped", s.rx_dropped),
                            ("receive_errors", s.rx_errors),
                            ("transmit_bytes", s.tx_bytes),
                            ("transmit_packets", s.tx_packets),
                            ("transmit_packets_dropped", s.tx_dropped),
                            ("transmit_errors", s.tx_errors)):
            out.append((f"container_network_{name}_total", (s.name,), value))
    return out


# ---- one container --------------------------------------------------------------

def container_samples(groups: Sequence[str], src: ContainerSource,
                      now_s: int | None = None) -> list[Sample]:
    """Every sample of the groups in `groups` for one running container
    (network is the pod's: see network_samples), container_last_seen first."""
    lay = layout_of(src.cgroup_dirs)
    cg = src.cgroup
    out: list[Sample] = [("container_last_seen", (),
                          int(time.time()) if now_s is None else now_s)]
    for group in groups:
        if group == "cpu":
            out += cpu_samples(lay, cg)
        elif group == "memory":
            out += memory_samples(lay, cg)
        elif group == "hugetlb":
            out += hugetlb_samples(lay)
        elif group == "oom":
            out += oom_samples(cg)
        elif group == "process":
            out += process_samples(lay, cg, src.pid)
        elif group == "disk":
            out += disk_samples(src.rootfs, src.upper_dir)
    return out


def check_samples(samples: Iterable[Sample]) -> None:
    """Every sample names a known family with one value per extra label
    (a mismatch would make the kubelet drop the whole family)."""
    for name, labels, _value in samples:
        family = BY_NAME[name]
        if len(labels) != len(family.extra_labels):
            raise ValueError(f"{name}: {len(labels)} extra label values for "
                             f"{family.extra_labels}")
