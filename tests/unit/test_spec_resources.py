"""linux.resources (v1-shaped, per the runtime spec) and linux.cgroupsPath."""
from __future__ import annotations

import re

import pytest

from crio_native._proto import api_pb2
from crio_native.config.sections import Config
from crio_native.errors import InvalidArgument
from crio_native.spec import resources
from tests.unit.test_spec_support import apply, base_sandbox, config_with, make_inputs

R = "linux__resources"


def res(**fields):
    cfg = config_with(**{f"{R}__{k}": v for k, v in fields.items()})
    return apply(resources.with_resources, make_inputs(cfg)).resources


@pytest.mark.parametrize("fields, key, want", [
    ({}, "cpu", None),
    ({"cpu_shares": 512}, "cpu", {"shares": 512}),
    ({"cpu_quota": 50000, "cpu_period": 100000}, "cpu", {"quota": 50000, "period": 100000}),
    ({"cpu_quota": -1}, "cpu", None),
    ({"cpuset_cpus": "0-3,5"}, "cpu", {"cpus": "0-3,5"}),
    ({"cpuset_mems": "0"}, "cpu", {"mems": "0"}),
    ({"memory_limit_in_bytes": 64 << 20}, "memory", {"limit": 64 << 20, "swap": 64 << 20}),
    ({"memory_limit_in_bytes": 64 << 20, "memory_swap_limit_in_bytes": 128 << 20}, "memory",
     {"limit": 64 << 20, "swap": 128 << 20}),
    ({"memory_limit_in_bytes": 64 << 20, "memory_swap_limit_in_bytes": -1}, "memory",
     {"limit": 64 << 20, "swap": -1}),
    ({"hugepage_limits": [api_pb2.HugepageLimit(page_size="2MB", limit=1 << 30)]},
     "hugepageLimits", [{"pageSize": "2MB", "limit": 1 << 30}]),
    ({"unified": {"memory.high": "100M", "pids.max": "64"}}, "unified",
     {"memory.high": "100M", "pids.max": "64"}),
])
def test_resources(fields, key, want):
    assert res(**fields).get(key) == want


HP = api_pb2.HugepageLimit
# what the kubelet sends: one limit per page size the node has, 0 for sizes
# the pod asks none of
KUBELET_HUGEPAGES = [HP(page_size="2MB", limit=0), HP(page_size="1GB", limit=0)]


@pytest.mark.parametrize("limits, sizes, want", [
    (KUBELET_HUGEPAGES, None, [{"pageSize": "2MB", "limit": 0}, {"pageSize": "1GB", "limit": 0}]),
    (KUBELET_HUGEPAGES, {"2MB", "1GB"},
     [{"pageSize": "2MB", "limit": 0}, {"pageSize": "1GB", "limit": 0}]),
    # a 0 limit for a size the host cannot limit is left out...
    (KUBELET_HUGEPAGES, {"2MB"}, [{"pageSize": "2MB", "limit": 0}]),
    (KUBELET_HUGEPAGES, set(), None),
    # ...a non-zero one stays, for the runtime to refuse
    ([HP(page_size="1GB", limit=1 << 30), HP(page_size="2MB", limit=0)], set(),
     [{"pageSize": "1GB", "limit": 1 << 30}]),
])
def test_hugepage_limits_the_host_cannot_enforce(limits, sizes, want):
    cfg = config_with(**{f"{R}__hugepage_limits": limits})
    built = apply(resources.with_resources, make_inputs(cfg, hugepage_sizes=sizes)).resources
    assert built.get("hugepageLimits") == want
    parts = dict(resources.oci_resources(cfg.linux.resources, hugepage_sizes=sizes))
    assert parts["hugepageLimits"] == (want or [])


RESOURCE_ERRORS = [
    ({"cpu_shares": 1}, "cpu_shares", r"\[2, 262144\]"),
    ({"cpu_shares": 300000}, "cpu_shares", r"\[2, 262144\]"),
    ({"cpu_period": 999}, "cpu_period", "microseconds"),
    ({"cpu_quota": 500}, "cpu_quota", "at least 1000"),
    ({"cpu_quota": -5}, "cpu_quota", "at least 1000"),
    ({"cpuset_cpus": "0-a"}, "cpuset_cpus", "not a list"),
    ({"cpuset_mems": "0,,1"}, "cpuset_mems", "not a list"),
    ({"memory_limit_in_bytes": -1}, "memory_limit_in_bytes", ">= 0"),
    ({"memory_limit_in_bytes": 100 << 20, "memory_swap_limit_in_bytes": 50 << 20},
     "memory_swap_limit_in_bytes", "below"),
    ({"memory_swap_limit_in_bytes": 50 << 20}, "memory_swap_limit_in_bytes", "needs"),
    ({"hugepage_limits": [api_pb2.HugepageLimit(page_size="2M", limit=1)]},
     r"hugepage_limits\[0\]\.page_size", "2MB"),
    ({"unified": {"../escape": "1"}}, r"unified\['../escape'\]", "controller file"),
    ({"unified": {"cgroup.procs": "1"}}, r"unified\['cgroup.procs'\]", "controller file"),
    ({"unified": {"memory.max": "1\n2"}}, r"unified\['memory.max'\]", "one line"),
]


@pytest.mark.parametrize("fields, field, reason", RESOURCE_ERRORS)
def test_resource_errors(fields, field, reason):
    with pytest.raises(InvalidArgument,
                       match=rf"CreateContainer: config\.linux\.resources\.{field}: .*{reason}"):
        res(**fields)


@pytest.mark.parametrize("prefix", ["UpdateContainerResources: linux",
                                    "RunPodSandbox: config.linux.resources"])
@pytest.mark.parametrize("fields, field, reason", RESOURCE_ERRORS)
def test_resource_errors_name_the_callers_field(prefix, fields, field, reason):
    msg = api_pb2.LinuxContainerResources(**fields)
    with pytest.raises(InvalidArgument) as create:
        resources.oci_resources(msg)
    want = rf"^{re.escape(prefix)}\.{field}: .*{reason}"
    with pytest.raises(InvalidArgument, match=want) as other:
        resources.oci_resources(msg, field_prefix=prefix)
    # the text the callers used to make by rewriting CreateContainer's
    assert str(other.value) == str(create.value).replace(resources.CREATE_FIELD, prefix)


def test_swap_max_from_swap():
    assert resources.swap_max_from_swap(128, 64) == 64
    assert resources.swap_max_from_swap(64, 64) == 0


@pytest.mark.parametrize("manager, parent, want", [
    ("cgroupfs", "/kubepods/burstable/pod1", "/kubepods/burstable/pod1/crio-c1"),
    ("cgroupfs", "/kubepods/", "/kubepods/crio-c1"),
    ("cgroupfs", "", "crio-c1"),   # relative: below the runtime's cgroup root
    ("cgroupfs", "/", "crio-c1"),
    ("systemd", "kubepods-burstable-pod1.slice", "kubepods-burstable-pod1.slice:crio:c1"),
    ("systemd", "", "system.slice:crio:c1"),
    # the kubelet's systemd driver sends the slice's whole cgroup path
    ("systemd", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1_2.slice",
     "kubepods-burstable-pod1_2.slice:crio:c1"),
    ("systemd", "/kubepods.slice", "kubepods.slice:crio:c1"),
])
def test_cgroups_path(manager, parent, want):
    daemon = Config()
    daemon.runtime.cgroup_manager = manager
    b = apply(resources.with_cgroups_path,
              make_inputs(daemon=daemon, sandbox=base_sandbox(cgroup_parent=parent)))
    assert b.linux["cgroupsPath"] == want


@pytest.mark.parametrize("manager, parent", [("systemd", "/kubepods"),
                                             ("systemd", "kubepods"),
                                             # not where systemd nests this slice
                                             ("systemd", "/kubepods.slice/kubepods-pod1.slice/x"),
                                             ("systemd", "/other.slice/kubepods-pod1.slice"),
                                             ("systemd", "kubepods.slice/kubepods-pod1.slice"),
                                             ("systemd", "kube pods.slice"),
                                             ("cgroupfs", "kubepods")])
def test_cgroups_parent_must_suit_the_manager(manager, parent):
    with pytest.raises(InvalidArgument, match="cgroup_parent"):
        resources.cgroups_path(manager, parent, "c1")
