"""The systemd driver's names: slice nesting, the kubelet's cgroup parents,
slice:prefix:name paths, and OCI resources as unit properties."""
from __future__ import annotations

import pytest

from crio_native.errors import InvalidArgument
from crio_native.linux.systemd.names import (expand_slice, parse_cgroups_path,
                                             slice_of_parent)
from crio_native.linux.cgroups.resources import cpu_weight_from_shares
from crio_native.linux.systemd.properties import (INFINITY, cpus_mask,
                                                  resource_properties, scope_properties)


@pytest.mark.parametrize("name, path", [
    ("-.slice", "/"),
    ("system.slice", "/system.slice"),
    ("kubepods.slice", "/kubepods.slice"),
    ("kubepods-burstable-pod1_2.slice",
     "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1_2.slice"),
])
def test_expand_slice(name, path):
    assert expand_slice(name) == path


@pytest.mark.parametrize("name", ["kubepods", "-kubepods.slice", "kubepods-.slice",
                                  "kube--pods.slice", ".slice", "a/b.slice", "kübe.slice",
                                  "x" * 250 + ".slice"])
def test_expand_slice_refuses(name):
    with pytest.raises(InvalidArgument, match="slice"):
        expand_slice(name, "slice")


def test_slice_of_parent_takes_name_or_path():
    full = "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podab_cd.slice"
    assert slice_of_parent(full, "f") == "kubepods-besteffort-podab_cd.slice"
    assert slice_of_parent(full + "/", "f") == "kubepods-besteffort-podab_cd.slice"
    assert slice_of_parent("kubepods-besteffort-podab_cd.slice", "f") == \
        "kubepods-besteffort-podab_cd.slice"
    assert slice_of_parent("", "f") == "system.slice"
    with pytest.raises(InvalidArgument, match="^f: .* is not where systemd puts"):
        slice_of_parent("/kubepods.slice/kubepods-besteffort-podab_cd.slice", "f")


@pytest.mark.parametrize("path, slice_, unit, cgroup", [
    ("kubepods-pod1.slice:crio:abc", "kubepods-pod1.slice", "crio-abc.scope",
     "/kubepods.slice/kubepods-pod1.slice/crio-abc.scope"),
    (":crio:abc", "system.slice", "crio-abc.scope", "/system.slice/crio-abc.scope"),
    ("-.slice::abc", "-.slice", "abc.scope", "/abc.scope"),
])
def test_parse_cgroups_path(path, slice_, unit, cgroup):
    p = parse_cgroups_path(path)
    assert (p.slice, p.unit, p.cgroup) == (slice_, unit, cgroup)


@pytest.mark.parametrize("path", ["/kubepods/crio-abc", "a:b", "a.slice:crio:", "a:crio:x",
                                  "a.slice:crio:x.slice", "a.slice:cr io:x"])
def test_parse_cgroups_path_refuses(path):
    with pytest.raises(InvalidArgument, match="linux.cgroupsPath"):
        parse_cgroups_path(path)


def test_cpu_weight_from_shares_matches_the_v2_conversion():
    assert [cpu_weight_from_shares(s) for s in (2, 1024, 131072, 262144)] == [1, 39, 5000, 10000]
    # below v1's minimum: systemd's CPUWeight takes 1..10000, never 0
    assert cpu_weight_from_shares(1) == 1


def test_cpus_mask():
    assert cpus_mask("0-3,9") == bytes([0x0F, 0x02])
    assert cpus_mask("1") == bytes([0x02])


def test_resource_properties():
    props = dict(resource_properties({
        "memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 1 << 20},
        "cpu": {"shares": 1024, "quota": 25_000, "period": 100_000, "cpus": "0-1"},
        "pids": {"limit": -1}}))
    assert props == {"MemoryMax": ("t", 64 << 20), "MemoryLow": ("t", 1 << 20),
                     "MemorySwapMax": ("t", 32 << 20), "CPUWeight": ("t", 39),
                     "CPUQuotaPeriodUSec": ("t", 100_000),
                     "CPUQuotaPerSecUSec": ("t", 250_000), "AllowedCPUs": ("ay", b"\x03"),
                     "TasksMax": ("t", INFINITY)}
    # 1/300 of a CPU rounds up to systemd's 10 ms step, never down to nothing
    assert dict(resource_properties({"cpu": {"quota": 1000, "period": 300_000}}))[
        "CPUQuotaPerSecUSec"] == ("t", 10_000)
    assert resource_properties({}) == []


def test_scope_properties():
    props = dict(scope_properties("kubepods.slice", [7], "d", delegate=True))
    assert props["Slice"] == ("s", "kubepods.slice") and props["PIDs"] == ("au", [7])
    assert props["Delegate"] == ("b", True) and props["DefaultDependencies"] == ("b", False)
    assert "Delegate" not in dict(scope_properties("s.slice", [7], "d", delegate=False))
