"""The cgroup metrics of a shim v2 task (Task/Stats) as the stats layer's
CgroupStats.  The shim answers with an Any: cgroup v1 metrics (the runc
shim on a v1 or hybrid host, kata's shim from inside its VM) or v2 (the
runc shim on a pure v2 host), told apart by the type URL.  The same rules
as stats/cgroup.py apply: working set = usage - inactive file, floored at
0; a limit this large means none; what the shim left out stays None."""
from __future__ import annotations

import time

from google.protobuf import any_pb2
from google.protobuf.message import DecodeError

from crio_native._proto.shim.cgroups.v1 import metrics_pb2 as v1
from crio_native._proto.shim.cgroups.v2 import metrics_pb2 as v2
from crio_native.errors import Internal
from crio_native.stats.cgroup import V1_UNLIMITED, CgroupStats, available, working_set

V1_TYPE = "io.containerd.cgroups.v1.Metrics"
V2_TYPE = "io.containerd.cgroups.v2.Metrics"


def _limit(value: int) -> int | None:
    """0 (not reported) or a huge value ("max", LONG_MAX pages) is no limit."""
    return value if 0 < value < V1_UNLIMITED else None


def _stats(now_ns: int, *, cpu_ns: int | None, pids: int | None, oom_kills: int | None,
           usage: int | None = None, inactive_file: int | None = None, rss: int | None = None,
           page_faults: int | None = None, major_page_faults: int | None = None,
           limit: int | None = None, swap: int | None = None,
           swap_limit: int | None = None) -> CgroupStats:
    """One version's figures with what follows from them, as read_cgroup
    derives it."""
    ws = working_set(usage, inactive_file)
    return CgroupStats(
        timestamp_ns=now_ns, cpu_usage_ns=cpu_ns, memory_usage_bytes=usage,
        working_set_bytes=ws, rss_bytes=rss, page_faults=page_faults,
        major_page_faults=major_page_faults, memory_limit_bytes=limit,
        available_bytes=available(limit, ws), swap_usage_bytes=swap,
        swap_limit_bytes=swap_limit, swap_available_bytes=available(swap_limit, swap),
        pids_current=pids, oom_kills=oom_kills)


def _from_v1(m: v1.Metrics, now_ns: int) -> CgroupStats:
    common = dict(
        cpu_ns=m.cpu.usage.total if m.HasField("cpu") and m.cpu.HasField("usage") else None,
        pids=m.pids.current if m.HasField("pids") else None,
        oom_kills=m.memory_oom_control.oom_kill if m.HasField("memory_oom_control") else None)
    if not m.HasField("memory"):
        return _stats(now_ns, **common)
    memory = m.memory
    usage = limit = swap = swap_limit = None
    if memory.HasField("usage"):
        usage, limit = memory.usage.usage, _limit(memory.usage.limit)
    if memory.HasField("swap") and memory.swap.usage and usage is not None:
        # memory.memsw.* counts memory and swap together
        swap = max(memory.swap.usage - usage, 0)
        memsw_limit = _limit(memory.swap.limit)
        if memsw_limit is not None and limit is not None:
            swap_limit = max(memsw_limit - limit, 0)
    return _stats(now_ns, **common, usage=usage, inactive_file=memory.total_inactive_file,
                  rss=memory.total_rss, page_faults=memory.total_pg_fault,
                  major_page_faults=memory.total_pg_maj_fault, limit=limit, swap=swap,
                  swap_limit=swap_limit)


def _from_v2(m: v2.Metrics, now_ns: int) -> CgroupStats:
    common = dict(
        cpu_ns=m.cpu.usage_usec * 1000 if m.HasField("cpu") else None,
        pids=m.pids.current if m.HasField("pids") else None,
        oom_kills=m.memory_events.oom_kill if m.HasField("memory_events") else None)
    if not m.HasField("memory"):
        return _stats(now_ns, **common)
    memory = m.memory
    return _stats(now_ns, **common, usage=memory.usage, inactive_file=memory.inactive_file,
                  rss=memory.anon, page_faults=memory.pgfault,
                  major_page_faults=memory.pgmajfault, limit=_limit(memory.usage_limit),
                  swap=memory.swap_usage, swap_limit=_limit(memory.swap_limit))


def cgroup_stats_from_any(stats: any_pb2.Any, now_ns: int | None = None) -> CgroupStats:
    """Internal for a type this does not know or bytes that do not parse."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    type_name = stats.type_url.rsplit("/", 1)[-1]
    try:
        if type_name == V1_TYPE:
            return _from_v1(v1.Metrics.FromString(stats.value), now_ns)
        if type_name == V2_TYPE:
            return _from_v2(v2.Metrics.FromString(stats.value), now_ns)
    except DecodeError as e:
        raise Internal(f"task stats: {type_name}: not a valid message: {e}") from e
    raise Internal(f"task stats: unknown metrics type {stats.type_url!r}")


__all__ = ["V1_TYPE", "V2_TYPE", "cgroup_stats_from_any"]
