"""runtime/shim/metrics.py: a shim's Task/Stats answer (cgroup v1 or v2
metrics in an Any) as the stats layer's CgroupStats, with the rules of
stats/cgroup.py (working set, no limit, fields the shim left out)."""
from __future__ import annotations

import pytest
from google.protobuf import any_pb2

from crio_native._proto.shim.cgroups.v1 import metrics_pb2 as v1
from crio_native._proto.shim.cgroups.v2 import metrics_pb2 as v2
from crio_native.errors import Internal
from crio_native.runtime.shim.metrics import V1_TYPE, V2_TYPE, cgroup_stats_from_any

NOW = 1_700_000_000_000_000_000
MIB = 1 << 20


def packed(message, type_name: str, prefix: str = "") -> any_pb2.Any:
    return any_pb2.Any(type_url=prefix + type_name, value=message.SerializeToString())


def test_v1_metrics():
    m = v1.Metrics()
    m.pids.current = 3
    m.cpu.usage.total = 123_456_789
    m.memory.usage.usage = 10 * MIB
    m.memory.usage.limit = 64 * MIB
    m.memory.total_inactive_file = 4 * MIB
    m.memory.total_rss = 5 * MIB
    m.memory.total_pg_fault = 77
    m.memory.total_pg_maj_fault = 2
    m.memory.swap.usage = 12 * MIB          # memsw: memory + swap
    m.memory.swap.limit = 96 * MIB
    m.memory_oom_control.oom_kill = 1
    # containerd's typeurl registry writes the bare name; others a prefix
    for prefix in ("", "type.googleapis.com/"):
        st = cgroup_stats_from_any(packed(m, V1_TYPE, prefix), NOW)
        assert st.timestamp_ns == NOW
        assert (st.cpu_usage_ns, st.pids_current, st.oom_kills) == (123_456_789, 3, 1)
        assert (st.memory_usage_bytes, st.working_set_bytes, st.rss_bytes) == \
            (10 * MIB, 6 * MIB, 5 * MIB)
        assert (st.page_faults, st.major_page_faults) == (77, 2)
        assert (st.memory_limit_bytes, st.available_bytes) == (64 * MIB, 58 * MIB)
        assert (st.swap_usage_bytes, st.swap_limit_bytes, st.swap_available_bytes) == \
            (2 * MIB, 32 * MIB, 30 * MIB)


def test_v1_unlimited_and_missing_parts():
    m = v1.Metrics()
    m.memory.usage.usage = 3 * MIB
    m.memory.usage.limit = 9223372036854771712     # an unlimited v1 group
    m.memory.total_inactive_file = 5 * MIB         # more than the usage: floored
    st = cgroup_stats_from_any(packed(m, V1_TYPE), NOW)
    assert (st.memory_limit_bytes, st.available_bytes, st.working_set_bytes) == (None, None, 0)
    assert (st.swap_usage_bytes, st.swap_limit_bytes) == (None, None)   # memsw not accounted
    assert (st.cpu_usage_ns, st.pids_current, st.oom_kills) == (None, None, None)
    empty = cgroup_stats_from_any(packed(v1.Metrics(), V1_TYPE), NOW)
    assert (empty.memory_usage_bytes, empty.working_set_bytes, empty.rss_bytes) == \
        (None, None, None)


def test_v2_metrics():
    m = v2.Metrics()
    m.pids.current = 2
    m.cpu.usage_usec = 4_000
    m.memory.usage = 8 * MIB
    m.memory.usage_limit = 32 * MIB
    m.memory.inactive_file = 1 * MIB
    m.memory.anon = 6 * MIB
    m.memory.pgfault, m.memory.pgmajfault = 10, 1
    m.memory.swap_usage, m.memory.swap_limit = MIB, 18446744073709551615   # "max"
    m.memory_events.oom_kill = 4
    st = cgroup_stats_from_any(packed(m, V2_TYPE), NOW)
    assert (st.cpu_usage_ns, st.pids_current, st.oom_kills) == (4_000_000, 2, 4)
    assert (st.memory_usage_bytes, st.working_set_bytes, st.rss_bytes) == \
        (8 * MIB, 7 * MIB, 6 * MIB)
    assert (st.memory_limit_bytes, st.available_bytes) == (32 * MIB, 25 * MIB)
    assert (st.swap_usage_bytes, st.swap_limit_bytes, st.swap_available_bytes) == \
        (MIB, None, None)
    assert (st.page_faults, st.major_page_faults) == (10, 1)


@pytest.mark.parametrize("stats, says", [
    (any_pb2.Any(type_url="io.containerd.cgroups.v3.Metrics", value=b""), "unknown metrics type"),
    (any_pb2.Any(type_url=V2_TYPE, value=b"\xff\xff"), "not a valid message"),
])
def test_what_cannot_be_read_is_internal(stats, says):
    with pytest.raises(Internal, match=says):
        cgroup_stats_from_any(stats)
