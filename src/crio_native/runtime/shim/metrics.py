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
from crio_native.stats.cgroup import V1_UNLIMITED, CgroupStats

V1_TYPE = "io.containerd.cgroups.v1.Metrics"
V2_TYPE = "io.containerd.cgroups.v2.Metrics"


def _limit(value: int) -> int | None:
    """0 (not reported) or a huge value ("max", LONG_MAX pages) is no limit."""
    return value if 0 < value < V1_UNLIMITED else None


def _working_set(usage: int, inactive_file: int) -> int:
    return max(usage - inactive_file, 0)


def _available(limit: int | None, used: int | None) -> int | None:
    return max(limit - used, 0) if limit is not None and used is not None else None


def _from_v1(m: v1.Metrics, now_ns: int) -> CgroupStats:
    memory = m.memory if m.HasField("memory") else None
    usage = memory.usage.usage if memory is not None and memory.HasField("usage") else None
    working_set = _working_set(usage, memory.total_inactive_file) if usage is not None else None
    limit = _limit(memory.usage.limit) if usage is not None else None
    swap = swap_limit = None
    if memory is not None and memory.HasField("swap") and memory.swap.usage and usage is not None:
        # memory.memsw.* counts memory and swap together
        swap = max(memory.swap.usage - usage, 0)
        memsw_limit = _limit(memory.swap.limit)
        if memsw_limit is not None and limit is not None:
            swap_limit = max(memsw_limit - limit, 0)
    return CgroupStats(
        timestamp_ns=now_ns,
        cpu_usage_ns=m.cpu.usage.total if m.HasField("cpu") and m.cpu.HasField("usage") else None,
        memory_usage_bytes=usage, working_set_bytes=working_set,
        rss_bytes=memory.total_rss if memory is not None else None,
        page_faults=memory.total_pg_fault if memory is not None else None,
        major_page_faults=memory.total_pg_maj_fault if memory is not None else None,
        memory_limit_bytes=limit, available_bytes=_available(limit, working_set),
        swap_usage_bytes=swap, swap_limit_bytes=swap_limit,
        swap_available_bytes=_available(swap_limit, swap),
        pids_current=m.pids.current if m.HasField("pids") else None,
        oom_kills=m.memory_oom_control.oom_kill if m.HasField("memory_oom_control") else None)


def _from_v2(m: v2.Metrics, now_ns: int) -> CgroupStats:
    memory = m.memory if m.HasField("memory") else None
    usage = memory.usage if memory is not None else None
    working_set = _working_set(usage, memory.inactive_file) if memory is not None else None
    limit = _limit(memory.usage_limit) if memory is not None else None
    swap = memory.swap_usage if memory is not None else None
    swap_limit = _limit(memory.swap_limit) if memory is not None else None
    return CgroupStats(
        timestamp_ns=now_ns,
        cpu_usage_ns=m.cpu.usage_usec * 1000 if m.HasField("cpu") else None,
        memory_usage_bytes=usage, working_set_bytes=working_set,
        rss_bytes=memory.anon if memory is not None else None,
        page_faults=memory.pgfault if memory is not None else None,
        major_page_faults=memory.pgmajfault if memory is not None else None,
        memory_limit_bytes=limit, available_bytes=_available(limit, working_set),
        swap_usage_bytes=swap, swap_limit_bytes=swap_limit,
        swap_available_bytes=_available(swap_limit, swap),
        pids_current=m.pids.current if m.HasField("pids") else None,
        oom_kills=m.memory_events.oom_kill if m.HasField("memory_events") else None)


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
