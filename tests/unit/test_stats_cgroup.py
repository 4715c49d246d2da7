"""Parsing of cgroup stats files on fake v1 (hybrid) and v2 trees, the CPU
sampler, and the CRI messages built from the readings."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from crio_native._proto import api_pb2
from crio_native.stats import CpuSampler, collect_container, collect_pod_sandbox
from crio_native.stats.cgroup import CgroupStats, layout_of, read_cgroup, read_psi
from crio_native.stats.convert import container_stats_message, pod_sandbox_stats_message
from crio_native.stats.network import InterfaceStats, parse_net_dev

MiB = 1 << 20

V2_MEMORY_STAT = """anon 52428800
file 20971520
kernel 1048576
sock 0
shmem 0
file_mapped 0
active_anon 52428800
inactive_anon 0
active_file 4194304
inactive_file 16777216
unevictable 0
pgfault 13000
pgmajfault 7
workingset_refault_anon 0
"""

V1_MEMORY_STAT = """cache 20971520
rss 52428800
swap 0
pgfault 99
pgmajfault 1
inactive_file 999
hierarchical_memory_limit 134217728
total_cache 20971520
total_rss 52428800
total_swap 4096
total_pgfault 13000
total_pgmajfault 7
total_inactive_anon 0
total_active_anon 52428800
total_inactive_file 16777216
total_active_file 4194304
"""

PRESSURE = ("some avg10=1.50 avg60=0.25 avg300=0.00 total=1234\n"
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=56\n")


def _write(d: Path, files: dict[str, str]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text)
    return d


def v2_tree(tmp_path: Path, **override: str | None) -> Path:
    files = {
        "cgroup.controllers": "cpuset cpu io memory pids\n",
        "cgroup.procs": "42\n",
        "cpu.stat": "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n"
                    "nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
        "memory.current": str(80 * MiB) + "\n",
        "memory.stat": V2_MEMORY_STAT,
        "memory.max": str(128 * MiB) + "\n",
        "memory.swap.current": "4096\n",
        "memory.swap.max": "max\n",
        "memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n",
        "pids.current": "3\n",
        "cpu.pressure": PRESSURE,
        "memory.pressure": PRESSURE,
        "io.pressure": PRESSURE,
    }
    for k, v in override.items():
        files.pop(k.replace("__", "."), None)
        if v is not None:
            files[k.replace("__", ".")] = v
    return _write(tmp_path / "unified" / "pod", files)


def v1_trees(tmp_path: Path) -> list[Path]:
    """One dir per hierarchy as a hybrid host has them (cpu and cpuacct
    separate here; the unified one has no controllers, only cpu.stat and PSI)."""
    return [
        _write(tmp_path / "cpu" / "c", {"cpu.shares": "1024\n", "cgroup.procs": "42\n"}),
        _write(tmp_path / "cpuacct" / "c", {"cpuacct.usage": "2500000123\n",
                                            "cpuacct.stat": "user 200\nsystem 50\n"}),
        _write(tmp_path / "memory" / "c", {
            "memory.usage_in_bytes": str(80 * MiB) + "\n",
            "memory.limit_in_bytes": str(128 * MiB) + "\n",
            "memory.memsw.usage_in_bytes": str(80 * MiB + 4096) + "\n",
            "memory.memsw.limit_in_bytes": str(192 * MiB) + "\n",
            "memory.stat": V1_MEMORY_STAT,
            "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        }),
        _write(tmp_path / "pids" / "c", {"pids.current": "3\n", "pids.max": "max\n"}),
        _write(tmp_path / "unified" / "c", {"cgroup.controllers": "", "cpu.stat":
                                            "usage_usec 1\nuser_usec 1\nsystem_usec 0\n",
                                            "cpu.pressure": PRESSURE}),
    ]


# ---- v2 ---------------------------------------------------------------------

def test_v2_full(tmp_path):
    st = read_cgroup([v2_tree(tmp_path)])
    assert st.cpu_usage_ns == 2_500_000_000
    assert st.memory_usage_bytes == 80 * MiB
    assert st.working_set_bytes == 80 * MiB - 16777216
    assert st.rss_bytes == 52428800
    assert (st.page_faults, st.major_page_faults) == (13000, 7)
    assert st.memory_limit_bytes == 128 * MiB
    assert st.available_bytes == 128 * MiB - st.working_set_bytes
    assert st.swap_usage_bytes == 4096
    assert st.swap_limit_bytes is None and st.swap_available_bytes is None
    assert st.pids_current == 3
    assert st.oom_kills == 1
    assert st.cpu_psi.some_total_ns == 1234000 and st.cpu_psi.some_avg10 == 1.5
    assert st.io_psi.full_total_ns == 56000


def test_v2_unlimited_memory_has_no_available(tmp_path):
    st = read_cgroup([v2_tree(tmp_path, memory__max="max\n")])
    assert st.memory_limit_bytes is None and st.available_bytes is None
    assert st.working_set_bytes == 80 * MiB - 16777216


def test_v2_limited_swap(tmp_path):
    st = read_cgroup([v2_tree(tmp_path, memory__swap__max="65536\n")])
    assert st.swap_limit_bytes == 65536 and st.swap_available_bytes == 65536 - 4096


def test_v2_working_set_never_negative(tmp_path):
    st = read_cgroup([v2_tree(tmp_path, memory__current="1000\n")])
    assert st.working_set_bytes == 0
    assert st.available_bytes == 128 * MiB


def test_v2_without_memory_and_pids_controllers(tmp_path):
    d = v2_tree(tmp_path, cgroup__controllers="cpu\n", memory__current=None, memory__stat=None,
                memory__max=None, memory__swap__current=None, memory__swap__max=None,
                memory__events=None, pids__current=None)
    st = read_cgroup([d])
    assert st.cpu_usage_ns == 2_500_000_000
    for name in ("memory_usage_bytes", "working_set_bytes", "rss_bytes", "page_faults",
                 "available_bytes", "swap_usage_bytes", "pids_current", "oom_kills"):
        assert getattr(st, name) is None, name


def test_v2_no_swap_accounting_no_psi(tmp_path):
    d = v2_tree(tmp_path, memory__swap__current=None, memory__swap__max=None,
                cpu__pressure=None, memory__pressure=None, io__pressure=None)
    st = read_cgroup([d])
    assert st.swap_usage_bytes is None and st.cpu_psi is None and st.io_psi is None
    assert st.memory_usage_bytes == 80 * MiB


def test_v2_garbage_is_absent_not_an_error(tmp_path):
    d = v2_tree(tmp_path, memory__current="oops\n", cpu__stat="usage_usec x\n",
                cpu__pressure="some avg10=bad\n")
    st = read_cgroup([d])
    assert st.memory_usage_bytes is None and st.cpu_usage_ns is None and st.cpu_psi is None


# ---- v1 / hybrid ------------------------------------------------------------

def test_v1_hybrid_full(tmp_path):
    dirs = v1_trees(tmp_path)
    lay = layout_of(dirs)
    assert lay.v2 == dirs[-1] and len(lay.v1) == 4
    st = read_cgroup(dirs)
    assert st.cpu_usage_ns == 2500000123          # cpuacct (ns) wins over unified usage_usec
    assert st.memory_usage_bytes == 80 * MiB
    assert st.working_set_bytes == 80 * MiB - 16777216   # total_inactive_file, not inactive_file
    assert st.rss_bytes == 52428800
    assert (st.page_faults, st.major_page_faults) == (13000, 7)
    assert st.memory_limit_bytes == 128 * MiB
    assert st.available_bytes == 128 * MiB - st.working_set_bytes
    assert st.swap_usage_bytes == 4096
    assert st.swap_limit_bytes == 64 * MiB
    assert st.swap_available_bytes == 64 * MiB - 4096
    assert st.pids_current == 3
    assert st.oom_kills == 2
    assert st.cpu_psi is not None and st.memory_psi is None


def test_v1_unlimited_memory(tmp_path):
    dirs = v1_trees(tmp_path)
    (tmp_path / "memory/c/memory.limit_in_bytes").write_text("9223372036854771712\n")
    (tmp_path / "memory/c/memory.memsw.limit_in_bytes").write_text("9223372036854771712\n")
    st = read_cgroup(dirs)
    assert st.memory_limit_bytes is None and st.available_bytes is None
    assert st.swap_limit_bytes is None and st.swap_usage_bytes == 4096


def test_v1_without_swap_accounting(tmp_path):
    dirs = v1_trees(tmp_path)
    (tmp_path / "memory/c/memory.memsw.usage_in_bytes").unlink()
    (tmp_path / "memory/c/memory.memsw.limit_in_bytes").unlink()
    st = read_cgroup(dirs)
    assert st.swap_usage_bytes is None and st.swap_limit_bytes is None


def test_v1_swap_from_memsw_when_stat_lacks_it(tmp_path):
    dirs = v1_trees(tmp_path)
    (tmp_path / "memory/c/memory.stat").write_text(V1_MEMORY_STAT.replace("total_swap 4096\n", ""))
    assert read_cgroup(dirs).swap_usage_bytes == 4096


def test_v1_old_kernel_without_oom_kill(tmp_path):
    dirs = v1_trees(tmp_path)
    (tmp_path / "memory/c/memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\n")
    assert read_cgroup(dirs).oom_kills is None


def test_v1_cpu_from_unified_when_no_cpuacct(tmp_path):
    dirs = v1_trees(tmp_path)
    dirs = [d for d in dirs if d.parent.name != "cpuacct"]
    assert read_cgroup(dirs).cpu_usage_ns == 1000


def test_v1_only_memory_hierarchy(tmp_path):
    st = read_cgroup([v1_trees(tmp_path)[2]])
    assert st.cpu_usage_ns is None and st.pids_current is None
    assert st.memory_usage_bytes == 80 * MiB


def test_v1_combined_cpu_cpuacct_dir(tmp_path):
    d = _write(tmp_path / "cpu,cpuacct" / "c", {"cpu.shares": "2\n", "cpuacct.usage": "77\n"})
    assert read_cgroup([d]).cpu_usage_ns == 77


# ---- nothing there ----------------------------------------------------------

def test_missing_dirs_read_as_nothing(tmp_path):
    st = read_cgroup([tmp_path / "gone" / "memory", tmp_path / "gone" / "unified"])
    assert st == CgroupStats(timestamp_ns=st.timestamp_ns)
    assert read_cgroup([]).memory_usage_bytes is None


def test_empty_dir_reads_as_nothing(tmp_path):
    st = read_cgroup([_write(tmp_path / "empty", {})])
    assert st == CgroupStats(timestamp_ns=st.timestamp_ns)


def test_psi_missing_file():
    p = Path("/nonexistent")
    assert read_psi(p) is None


def test_psi_some_only(tmp_path):
    f = tmp_path / "cpu.pressure"
    f.write_text("some avg10=0.00 avg60=0.00 avg300=0.00 total=10\n")
    psi = read_psi(f)
    assert psi.some_total_ns == 10000 and psi.full_total_ns is None


# ---- sampler ----------------------------------------------------------------

def test_sampler_first_call_unset_second_rate():
    s = CpuSampler()
    assert s.nano_cores("c1", 1_000_000_000, now_ns=10_000_000_000) is None
    # 0.5 s of cpu in 1 s: half a core
    assert s.nano_cores("c1", 1_500_000_000, now_ns=11_000_000_000) == 500_000_000
    assert s.nano_cores("c2", 5, now_ns=11_000_000_000) is None
    assert s.nano_cores("c1", 3_500_000_000, now_ns=12_000_000_000) == 2_000_000_000


def test_sampler_counter_reset_and_no_elapsed_time():
    s = CpuSampler()
    s.nano_cores("c", 100, now_ns=1000)
    assert s.nano_cores("c", 50, now_ns=2000) is None       # group recreated
    assert s.nano_cores("c", 60, now_ns=2000) is None       # no time passed
    assert s.nano_cores("c", None) is None


def test_sampler_forget_and_retain():
    s = CpuSampler()
    for k in ("a", "b", "c"):
        s.nano_cores(k, 1, now_ns=1)
    s.forget("a")
    s.retain({"b"})
    assert len(s) == 1
    assert s.nano_cores("b", 2, now_ns=2) == 1_000_000_000
    assert s.nano_cores("c", 2, now_ns=2) is None


def test_sampler_thread_safe():
    s = CpuSampler()
    errors = []

    def worker(i):
        try:
            for n in range(2000):
                s.nano_cores(f"k{i % 4}", n)
        except Exception as e:  # pragma: no cover
            errors.append(e)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(s) == 4


# ---- messages ---------------------------------------------------------------

def test_container_message_sets_only_what_was_read(tmp_path):
    d = v2_tree(tmp_path, memory__max="max\n", memory__swap__current=None,
                memory__swap__max=None)
    cg = read_cgroup([d])
    md = api_pb2.ContainerMetadata(name="app", attempt=2)
    msg = container_stats_message("cid", md, {"l": "1"}, {"a": "2"}, cg, None)
    assert msg.attributes.id == "cid" and msg.attributes.metadata.attempt == 2
    assert dict(msg.attributes.labels) == {"l": "1"}
    assert dict(msg.attributes.annotations) == {"a": "2"}
    assert msg.cpu.timestamp == cg.timestamp_ns
    assert msg.cpu.usage_core_nano_seconds.value == 2_500_000_000
    assert not msg.cpu.HasField("usage_nano_cores")
    assert msg.memory.working_set_bytes.value == 80 * MiB - 16777216
    assert not msg.memory.HasField("available_bytes")
    assert msg.memory.page_faults.value == 13000
    assert msg.memory.psi.Some.Total == 1234000
    assert not msg.HasField("swap") and not msg.HasField("writable_layer")
    assert msg.io.psi.Full.Total == 56000


def test_container_message_without_cgroup(tmp_path):
    from crio_native.stats.disk import DiskUsage
    msg = container_stats_message("cid", None, {}, {}, None, writable=DiskUsage(8192, 3),
                                  fs_mountpoint="/var/lib/x", timestamp_ns=5)
    assert not msg.HasField("cpu") and not msg.HasField("memory")
    assert msg.writable_layer.fs_id.mountpoint == "/var/lib/x"
    assert msg.writable_layer.used_bytes.value == 8192
    assert msg.writable_layer.inodes_used.value == 3
    assert msg.writable_layer.timestamp == 5


def test_container_message_zero_is_set_not_absent(tmp_path):
    d = v2_tree(tmp_path, memory__swap__current="0\n")
    msg = container_stats_message("c", None, {}, {}, read_cgroup([d]), 0)
    assert msg.cpu.HasField("usage_nano_cores") and msg.cpu.usage_nano_cores.value == 0
    assert msg.swap.HasField("swap_usage_bytes") and msg.swap.swap_usage_bytes.value == 0


def test_pod_message(tmp_path):
    cg = read_cgroup(v1_trees(tmp_path))
    ifaces = [InterfaceStats("eth0", 10, 0, 20, 1), InterfaceStats("net1", 1, 2, 3, 4)]
    child = api_pb2.ContainerStats()
    child.attributes.id = "c1"
    md = api_pb2.PodSandboxMetadata(name="p", namespace="ns", uid="u")
    msg = pod_sandbox_stats_message("pid", md, {}, {}, cg, 7, ifaces, [child])
    linux = msg.linux
    assert msg.attributes.metadata.uid == "u"
    assert linux.cpu.usage_nano_cores.value == 7
    assert linux.memory.usage_bytes.value == 80 * MiB
    assert linux.process.process_count.value == 3
    assert linux.network.default_interface.name == "eth0"
    assert linux.network.default_interface.tx_errors.value == 1
    assert [i.name for i in linux.network.interfaces] == ["eth0", "net1"]
    assert linux.containers[0].attributes.id == "c1"
    assert not msg.HasField("windows")


def test_pod_message_host_network_and_no_cgroup():
    msg = pod_sandbox_stats_message("p", None, {}, {}, None)
    assert msg.HasField("linux")
    assert not msg.linux.HasField("network") and not msg.linux.HasField("cpu")
    assert not msg.linux.HasField("process")


def test_collectors_tie_it_together(tmp_path):
    d = v2_tree(tmp_path)
    upper = tmp_path / "upper"
    upper.mkdir()
    (upper / "f").write_bytes(b"x" * 10000)
    s = CpuSampler()
    first = collect_container(s, "c", None, {}, {}, [d], upper)
    assert not first.cpu.HasField("usage_nano_cores")
    assert first.writable_layer.inodes_used.value == 2
    assert first.writable_layer.fs_id.mountpoint.startswith("/")
    (d / "cpu.stat").write_text("usage_usec 3500000\n")
    second = collect_container(s, "c", None, {}, {}, [d], upper)
    assert second.cpu.usage_nano_cores.value > 0
    pod = collect_pod_sandbox(s, "p", None, {}, {}, [d], containers=[second])
    assert pod.linux.containers[0].cpu.usage_core_nano_seconds.value == 3_500_000_000
    assert not pod.linux.HasField("network")
    stopped = collect_container(s, "gone", None, {}, {}, [], tmp_path / "nope")
    assert not stopped.HasField("cpu") and not stopped.HasField("writable_layer")


# ---- /proc/net/dev ----------------------------------------------------------

NET_DEV = """Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  123456     100    0    0    0     0          0         0   123456     100    0    0    0     0       0          0
  eth0: 9876543   12345    3    1    0     0          0         0  4567890    6789    2    0    0     0       0          0
 net1:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
"""


def test_parse_net_dev():
    got = parse_net_dev(NET_DEV)
    assert got == [InterfaceStats("eth0", 9876543, 3, 4567890, 2, rx_packets=12345,
                                  rx_dropped=1, tx_packets=6789, tx_dropped=0),
                   InterfaceStats("net1", 0, 0, 0, 0)]


@pytest.mark.parametrize("text", ["", "header\nheader\n", "h\nh\n eth0: 1 2 3\n"])
def test_parse_net_dev_short_input(text):
    assert parse_net_dev(text) == []
