"""The CRI metrics RPCs on fake v1 and v2 cgroup trees: every metric
ListPodSandboxMetrics returns has a descriptor in ListMetricDescriptors with
as many label keys as it has label values; the values are the files';
included_pod_metrics picks the groups; UpdatePodSandboxResources answers
NOT_FOUND for an unknown pod and changes nothing it does not own."""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from crio_native._proto import api_pb2
from crio_native.config.load import ConfigError
from crio_native.config.sections import POD_METRIC_GROUPS, MetricsConfig
from crio_native.container.record import EXITED, RUNNING, ContainerRecord
from crio_native.cri.sandbox import metrics as rpc
from crio_native.cri.sandbox import update_resources
from crio_native.errors import NotFound
from crio_native.sandbox.record import READY, SandboxRecord
from crio_native.stats.cgroup import layout_of, read_cgroup
from crio_native.stats.metric_families import BY_NAME, FAMILIES
from crio_native.stats.network import InterfaceStats
from crio_native.stats.pod_metrics import (ContainerSource, check_samples, container_samples,
                                           cpu_samples, hugetlb_samples, memory_samples)

MiB = 1 << 20
S = 1_000_000_000


def _write(d: Path, files: dict[str, str]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text)
    return d


def v2_group(root: Path, procs: str) -> list[Path]:
    return [_write(root / "v2", {
        "cgroup.controllers": "cpu memory pids hugetlb\n",
        "cgroup.procs": procs,
        "cpu.stat": f"usage_usec {7_500_000}\nuser_usec {5_200_000}\nsystem_usec {2_300_000}\n"
                    "nr_periods 40\nnr_throttled 4\nthrottled_usec 3100000\n",
        "memory.current": f"{80 * MiB}\n",
        "memory.stat": f"anon {50 * MiB}\nfile {20 * MiB}\nkernel {MiB}\nfile_mapped 4096\n"
                       f"inactive_file {16 * MiB}\npgfault 13000\npgmajfault 7\n",
        "memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        "memory.peak": f"{90 * MiB}\n",
        "memory.swap.current": "4096\n",
        "memory.swap.max": "max\n",
        "memory.max": "max\n",
        "pids.current": "1\n",
        "pids.max": "max\n",
        "hugetlb.2MB.current": f"{4 * MiB}\n",
        "hugetlb.2MB.rsvd.current": "0\n",
    })]


def v1_groups(root: Path, procs: str) -> list[Path]:
    return [
        _write(root / "cpuacct", {"cgroup.procs": procs, "cpuacct.usage": f"{7 * S + 5}\n",
                                  "cpuacct.usage_user": f"{5 * S}\n",
                                  "cpuacct.usage_sys": f"{2 * S}\n"}),
        _write(root / "cpu", {"cpu.stat": "nr_periods 40\nnr_throttled 4\n"
                                          f"throttled_time {3 * S}\n", "cgroup.procs": procs}),
        _write(root / "memory", {
            "cgroup.procs": procs,
            "memory.usage_in_bytes": f"{80 * MiB}\n",
            "memory.limit_in_bytes": "9223372036854771712\n",
            "memory.stat": f"total_cache {20 * MiB}\ntotal_rss {50 * MiB}\n"
                           f"total_mapped_file 4096\ntotal_inactive_file {16 * MiB}\n"
                           "total_pgfault 13000\ntotal_pgmajfault 7\n",
            "memory.kmem.usage_in_bytes": f"{MiB}\n",
            "memory.failcnt": "3\n",
            "memory.memsw.usage_in_bytes": f"{80 * MiB + 4096}\n",
            "memory.max_usage_in_bytes": f"{90 * MiB}\n",
            "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n"}),
        _write(root / "pids", {"cgroup.procs": procs, "pids.current": "1\n",
                               "pids.max": "max\n"}),
        _write(root / "hugetlb", {"cgroup.procs": procs,
                                  "hugetlb.2MB.usage_in_bytes": f"{4 * MiB}\n",
                                  "hugetlb.2MB.max_usage_in_bytes": f"{6 * MiB}\n",
                                  "hugetlb.2MB.rsvd.usage_in_bytes": "0\n"}),
    ]


TREES = {"v1": v1_groups, "v2": v2_group}


def values(samples) -> dict[tuple[str, tuple[str, ...]], int]:
    return {(name, labels): value for name, labels, value in samples}


@pytest.mark.parametrize("version", TREES)
def test_cpu_and_memory_values_are_the_files(tmp_path, version):
    dirs = TREES[version](tmp_path, f"{os.getpid()}\n")
    lay, cg = layout_of(dirs), read_cgroup(dirs)
    got = values(cpu_samples(lay, cg) + memory_samples(lay, cg))
    assert got[("container_cpu_usage_seconds_total", ("total",))] == 7
    assert got[("container_cpu_user_seconds_total", ())] == 5
    assert got[("container_cpu_system_seconds_total", ())] == 2
    assert got[("container_cpu_cfs_periods_total", ())] == 40
    assert got[("container_cpu_cfs_throttled_periods_total", ())] == 4
    assert got[("container_cpu_cfs_throttled_seconds_total", ())] == 3
    assert got[("container_memory_usage_bytes", ())] == 80 * MiB
    assert got[("container_memory_working_set_bytes", ())] == 64 * MiB
    assert got[("container_memory_rss", ())] == 50 * MiB
    assert got[("container_memory_cache", ())] == 20 * MiB
    assert got[("container_memory_mapped_file", ())] == 4096
    assert got[("container_memory_kernel_usage", ())] == MiB
    assert got[("container_memory_failcnt", ())] == 3
    assert got[("container_memory_max_usage_bytes", ())] == 90 * MiB
    assert got[("container_memory_failures_total", ("pgmajfault", "container"))] == 7
    assert got[("container_memory_failures_total", ("pgfault", "hierarchy"))] == 13000


@pytest.mark.parametrize("version", TREES)
def test_hugetlb_per_page_size_without_the_reserved_files(tmp_path, version):
    got = values(hugetlb_samples(layout_of(TREES[version](tmp_path, "1\n"))))
    want = {("container_hugetlb_usage_bytes", ("2MB",)): 4 * MiB}
    if version == "v1":      # v2 keeps no peak
        want[("container_hugetlb_max_usage_bytes", ("2MB",))] = 6 * MiB
    assert got == want


@pytest.mark.parametrize("version", TREES)
def test_process_metrics_count_our_own_process(tmp_path, version):
    # the group's one process is this test's: its fds and threads are known
    dirs = TREES[version](tmp_path, f"{os.getpid()}\n")
    src = ContainerSource(tuple(dirs), read_cgroup(dirs), pid=os.getpid())
    got = values(container_samples(["process"], src))
    assert got[("container_processes", ())] == 1
    assert got[("container_threads", ())] == len(os.listdir("/proc/self/task"))
    assert got[("container_threads_max", ())] == 0
    assert got[("container_file_descriptors", ())] >= 3
    import resource
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert got[("container_ulimits_soft", ("max_open_files",))] == soft


def test_disk_metrics_are_the_filesystem_and_the_upper_dir(tmp_path):
    upper = tmp_path / "upper"
    upper.mkdir()
    (upper / "f").write_bytes(b"x" * 65536)
    got = values(container_samples(["disk"], ContainerSource(
        (), None, rootfs=str(tmp_path), upper_dir=str(upper))))
    st = os.statvfs(tmp_path)
    assert got[("container_fs_limit_bytes", ())] == st.f_blocks * st.f_frsize
    assert got[("container_fs_inodes_total", ())] == st.f_files
    assert got[("container_fs_usage_bytes", ())] >= 65536


# ---- the RPCs over fake managers ------------------------------------------------

class FakeContainers:
    def __init__(self, records: list[ContainerRecord]):
        self.records = records

    def of_sandbox(self, pod_id):
        return [r for r in self.records if r.sandbox_id == pod_id]

    def refresh(self, record):
        return record

    def cgroup_stats(self, record):
        return read_cgroup([Path(d) for d in record.cgroup_dirs])


def fake_ctx(groups, pods, containers):
    store = SimpleNamespace(all=lambda: pods, get=lambda i, rpc: _get(pods, i, rpc))
    return SimpleNamespace(
        config=SimpleNamespace(metrics=MetricsConfig(included_pod_metrics=list(groups)),
                               runtime=SimpleNamespace(cgroup_manager="cgroupfs",
                                                       cgroup_root="")),
        sandboxes=SimpleNamespace(store=store), containers=FakeContainers(containers))


def _get(pods, pod_id, rpc):
    for p in pods:
        if p.id == pod_id:
            return p
    raise NotFound(f"{rpc}: pod sandbox {pod_id!r} not found")


def _pod_and_containers(tmp_path, version):
    pod = SandboxRecord(id="p" * 64, name="web", namespace="default", uid="u", attempt=0,
                        state=READY, pins={"net": "/run/netns/fake"})
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    (tmp_path / "upper").mkdir()
    running = ContainerRecord(
        id="c" * 64, sandbox_id=pod.id, name="app", attempt=0, state=RUNNING,
        image="sha256:abc", user_image="registry.example/app:1", rootfs=str(rootfs),
        pid=os.getpid(),
        cgroup_dirs=[str(d) for d in TREES[version](tmp_path / "cg", f"{os.getpid()}\n")])
    exited = ContainerRecord(id="e" * 64, sandbox_id=pod.id, name="init", attempt=0,
                             state=EXITED)
    return pod, [running, exited]


IFACES = [InterfaceStats("eth0", 1000, 1, 2000, 2, 10, 3, 20, 4)]


@pytest.mark.parametrize("version", TREES)
def test_every_metric_returned_has_its_descriptor(tmp_path, monkeypatch, version):
    monkeypatch.setattr(rpc, "interface_stats", lambda path: IFACES)
    pod, containers = _pod_and_containers(tmp_path, version)
    ctx = fake_ctx(POD_METRIC_GROUPS, [pod], containers)
    descriptors = {d.name: d for d in rpc.list_metric_descriptors(ctx).descriptors}
    answer = rpc.list_pod_sandbox_metrics(ctx).pod_metrics
    assert [p.pod_sandbox_id for p in answer] == [pod.id]
    assert [c.container_id for c in answer[0].container_metrics] == ["c" * 64]  # running only
    metrics = [*answer[0].metrics, *answer[0].container_metrics[0].metrics]
    seen = set()
    for m in metrics:
        assert m.name in descriptors, m.name
        assert len(m.label_values) == len(descriptors[m.name].label_keys), m
        assert m.metric_type == BY_NAME[m.name].type
        assert m.timestamp > 0
        seen.add(m.name)
    # every group's families show up on these trees (v2 keeps no hugetlb peak)
    missing = set(descriptors) - seen
    assert missing <= {"container_hugetlb_max_usage_bytes"} if version == "v2" else \
        not missing, missing
    pod_level = {m.name: list(m.label_values) for m in answer[0].metrics}
    assert pod_level["container_network_receive_packets_dropped_total"] == [
        pod.id, "POD", "", "eth0"]
    by_name = {m.name: m for m in answer[0].container_metrics[0].metrics}
    assert list(by_name["container_memory_rss"].label_values) == [
        "c" * 64, "app", "registry.example/app:1"]
    assert by_name["container_oom_events_total"].value.value == 1


def test_descriptors_follow_included_pod_metrics(tmp_path, monkeypatch):
    monkeypatch.setattr(rpc, "interface_stats", lambda path: IFACES)
    pod, containers = _pod_and_containers(tmp_path, "v2")
    for groups in ([], ["cpu"], ["network", "oom"]):
        ctx = fake_ctx(groups, [pod], containers)
        names = {d.name for d in rpc.list_metric_descriptors(ctx).descriptors}
        assert names == {f.name for f in FAMILIES if f.group in ("", *groups)}
        answer = rpc.list_pod_sandbox_metrics(ctx).pod_metrics[0]
        returned = {m.name for m in answer.metrics} | {
            m.name for c in answer.container_metrics for m in c.metrics}
        assert returned <= names and "container_last_seen" in returned
        assert bool(answer.metrics) == ("network" in groups)


def test_streamed_metrics_are_the_listed_ones_in_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(rpc, "interface_stats", lambda path: IFACES)
    pods = [SandboxRecord(id=f"{i:064x}", name=f"p{i}", namespace="d", uid=str(i), attempt=0,
                          state=READY, created_at=i) for i in range(150)]
    ctx = fake_ctx(["cpu"], pods, [])
    chunks = list(rpc.stream_pod_sandbox_metrics(ctx))
    assert [len(c.pod_sandbox_metrics) for c in chunks] == [100, 50]
    assert [p.pod_sandbox_id for c in chunks for p in c.pod_sandbox_metrics] == [
        p.id for p in pods]


def test_every_family_sample_shape_is_checked():
    check_samples([("container_cpu_usage_seconds_total", ("total",), 1)])
    with pytest.raises(ValueError, match="container_cpu_usage_seconds_total"):
        check_samples([("container_cpu_usage_seconds_total", (), 1)])
    assert len({f.name for f in FAMILIES}) == len(FAMILIES)


def test_an_unknown_group_is_a_config_error():
    with pytest.raises(ConfigError, match=r"metrics.included_pod_metrics\[1\]"):
        MetricsConfig(included_pod_metrics=["cpu", "gpu"]).validate()


# ---- UpdatePodSandboxResources ------------------------------------------------

def test_update_resources_of_an_unknown_pod_is_not_found():
    ctx = fake_ctx([], [], [])
    with pytest.raises(NotFound, match="UpdatePodSandboxResources"):
        update_resources.update_pod_sandbox_resources(
            ctx, api_pb2.UpdatePodSandboxResourcesRequest(pod_sandbox_id="nope"))


def test_update_resources_leaves_a_cgroup_it_did_not_make(tmp_path):
    d = _write(tmp_path / "kubepods" / "pod1", {"memory.limit_in_bytes": "1048576\n"})
    pod = SandboxRecord(id="p" * 64, name="k", namespace="d", uid="u", attempt=0, state=READY,
                        cgroup_parent="/kubepods/pod1", cgroup_dirs=[str(d)], cgroups_made=[])
    request = api_pb2.UpdatePodSandboxResourcesRequest(pod_sandbox_id=pod.id)
    request.resources.memory_limit_in_bytes = 64 * MiB
    update_resources.update_pod_sandbox_resources(fake_ctx([], [pod], []), request)
    assert (d / "memory.limit_in_bytes").read_text() == "1048576\n"
    assert update_resources.owned_pod_cgroup(pod) == []
    pod.cgroups_made = [str(d)]
    assert update_resources.owned_pod_cgroup(pod) == [d]
