"""Resource usage of one cgroup (a container's or a pod's), read from its
directories: one cgroup2 dir on a pure v2 host, or one dir per hierarchy on a
hybrid/v1 host (as CgroupPlan.dirs and Created.cgroup_dirs list them).

Which dir is which is told by the files present (a v2 dir has
cgroup.controllers; a v1 controller's files carry its prefix), so fixtures
and hosts with unusual mounts read the same way.  A controller the host
lacks, a file an older kernel does not have, a group that went away: the
field is None, never an exception.  Nothing is estimated from other sources."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

# memory.limit_in_bytes of an unlimited v1 group is LONG_MAX rounded down to
# a page (9223372036854771712); anything this large means "no limit".
V1_UNLIMITED = 1 << 62


@dataclass(frozen=True)
class Psi:
    """One pressure file's lines; total in ns (the kernel writes us)."""

    some_total_ns: int
    some_avg10: float
    some_avg60: float
    some_avg300: float
    full_total_ns: int | None = None
    full_avg10: float = 0.0
    full_avg60: float = 0.0
    full_avg300: float = 0.0


@dataclass(frozen=True)
class CgroupStats:
    timestamp_ns: int                        # wall clock, when read
    cpu_usage_ns: int | None = None
    memory_usage_bytes: int | None = None
    working_set_bytes: int | None = None
    rss_bytes: int | None = None
    page_faults: int | None = None
    major_page_faults: int | None = None
    memory_limit_bytes: int | None = None    # None: no limit set (or unknown)
    available_bytes: int | None = None
    swap_usage_bytes: int | None = None
    swap_limit_bytes: int | None = None
    swap_available_bytes: int | None = None
    pids_current: int | None = None
    oom_kills: int | None = None
    cpu_psi: Psi | None = None
    memory_psi: Psi | None = None
    io_psi: Psi | None = None


# ---- file readers ---------------------------------------------------------------

def _text(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def read_int(path: Path) -> int | None:
    text = _text(path)
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def read_keyed(path: Path) -> dict[str, int]:
    """A flat keyed file ("key value" per line: memory.stat, cpu.stat,
    memory.events, memory.oom_control); {} when absent."""
    out: dict[str, int] = {}
    for line in (_text(path) or "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


def read_limit(path: Path) -> int | None:
    """A v2 limit file ("max" or a number) or a v1 one (a huge number for
    none): the limit in bytes, or None when there is none or no file."""
    text = _text(path)
    if text is None or text.strip() == "max":
        return None
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return None if value >= V1_UNLIMITED else value


def read_psi(path: Path) -> Psi | None:
    """A v2 pressure file: 'some avg10=.. avg60=.. avg300=.. total=<us>' and
    (except cpu on older kernels) a 'full' line."""
    lines: dict[str, dict[str, float]] = {}
    for line in (_text(path) or "").splitlines():
        kind, *pairs = line.split()
        try:
            lines[kind] = {k: float(v) for k, v in (p.split("=", 1) for p in pairs)}
        except ValueError:
            return None
    some, full = lines.get("some"), lines.get("full")
    if not some or "total" not in some:
        return None
    psi = Psi(int(some["total"]) * 1000, some.get("avg10", 0.0), some.get("avg60", 0.0),
              some.get("avg300", 0.0))
    if full and "total" in full:
        psi = Psi(psi.some_total_ns, psi.some_avg10, psi.some_avg60, psi.some_avg300,
                  int(full["total"]) * 1000, full.get("avg10", 0.0), full.get("avg60", 0.0),
                  full.get("avg300", 0.0))
    return psi


# ---- which dir is which ---------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    v2: Path | None            # the cgroup2 dir, if any (on hybrid: the unified one)
    v1: tuple[Path, ...]       # the v1 controller dirs

    def v1_file(self, name: str) -> Path | None:
        """The v1 dir holding `name` (e.g. 'memory.usage_in_bytes')."""
        for d in self.v1:
            if (d / name).exists():
                return d / name
        return None

    def v2_file(self, name: str) -> Path | None:
        if self.v2 is not None and (self.v2 / name).exists():
            return self.v2 / name
        return None


def layout_of(dirs: Iterable[Path]) -> Layout:
    v2, v1 = None, []
    for d in map(Path, dirs):
        if (d / "cgroup.controllers").exists():
            v2 = v2 or d
        elif d.is_dir():
            v1.append(d)
    return Layout(v2, tuple(v1))


# ---- per controller -------------------------------------------------------------

def _cpu(lay: Layout) -> int | None:
    # On hybrid hosts both exist; cpuacct counts in ns, cpu.stat in us.
    f = lay.v1_file("cpuacct.usage")
    if f is not None:
        return read_int(f)
    f = lay.v2_file("cpu.stat")
    usec = read_keyed(f).get("usage_usec") if f is not None else None
    return usec * 1000 if usec is not None else None


def working_set(usage: int | None, inactive_file: int | None) -> int | None:
    """usage minus inactive file cache, floored at 0 (cadvisor's definition,
    which the kubelet's eviction uses)."""
    if usage is None:
        return None
    return max(usage - (inactive_file or 0), 0)


def available(limit: int | None, used: int | None) -> int | None:
    """What is left below a limit, floored at 0; None without a limit."""
    return max(limit - used, 0) if limit is not None and used is not None else None


def _memory_v2(d: Path) -> dict[str, int | None]:
    usage = read_int(d / "memory.current")
    stat = read_keyed(d / "memory.stat")
    events = read_keyed(d / "memory.events")
    swap_limit = read_limit(d / "memory.swap.max")
    return dict(memory_usage_bytes=usage,
                working_set_bytes=working_set(usage, stat.get("inactive_file")),
                rss_bytes=stat.get("anon"), page_faults=stat.get("pgfault"),
                major_page_faults=stat.get("pgmajfault"),
                memory_limit_bytes=read_limit(d / "memory.max"),
                swap_usage_bytes=read_int(d / "memory.swap.current"),
                swap_limit_bytes=swap_limit, oom_kills=events.get("oom_kill"))


def _memory_v1(d: Path) -> dict[str, int | None]:
    usage = read_int(d / "memory.usage_in_bytes")
    stat = read_keyed(d / "memory.stat")
    limit = read_limit(d / "memory.limit_in_bytes")
    # Swap is only accounted with swapaccount=1: then memory.memsw.* exist.
    swap = stat.get("total_swap")
    memsw = read_int(d / "memory.memsw.usage_in_bytes")
    if swap is None and memsw is not None and usage is not None:
        swap = max(memsw - usage, 0)
    memsw_limit = read_limit(d / "memory.memsw.limit_in_bytes")
    swap_limit = None
    if memsw_limit is not None and limit is not None:
        swap_limit = max(memsw_limit - limit, 0)
    if memsw is None:
        swap = None
    return dict(memory_usage_bytes=usage,
                working_set_bytes=working_set(usage, stat.get("total_inactive_file")),
                rss_bytes=stat.get("total_rss"), page_faults=stat.get("total_pgfault"),
                major_page_faults=stat.get("total_pgmajfault"),
                memory_limit_bytes=limit, swap_usage_bytes=swap, swap_limit_bytes=swap_limit,
                oom_kills=read_keyed(d / "memory.oom_control").get("oom_kill"))


def _memory(lay: Layout) -> dict[str, int | None]:
    if lay.v2_file("memory.current") is not None:
        out = _memory_v2(lay.v2)  # type: ignore[arg-type]
    else:
        f = lay.v1_file("memory.usage_in_bytes")
        if f is None:
            return {}
        out = _memory_v1(f.parent)
    out["available_bytes"] = available(out["memory_limit_bytes"], out["working_set_bytes"])
    out["swap_available_bytes"] = available(out["swap_limit_bytes"], out["swap_usage_bytes"])
    return out


def _pids(lay: Layout) -> int | None:
    f = lay.v2_file("pids.current") or lay.v1_file("pids.current")
    return read_int(f) if f is not None else None


def _psi(lay: Layout, name: str) -> Psi | None:
    # Pressure files live in every cgroup2 group (also the unified one on a
    # hybrid host), whatever controllers are enabled; absent without PSI.
    f = lay.v2_file(name)
    return read_psi(f) if f is not None else None


def read_cgroup(dirs: Iterable[Path]) -> CgroupStats:
    """Everything the host's files say about the group in `dirs`."""
    lay = layout_of(dirs)
    now = time.time_ns()
    return CgroupStats(timestamp_ns=now, cpu_usage_ns=_cpu(lay), pids_current=_pids(lay),
                       cpu_psi=_psi(lay, "cpu.pressure"), memory_psi=_psi(lay, "memory.pressure"),
                       io_psi=_psi(lay, "io.pressure"), **_memory(lay))
