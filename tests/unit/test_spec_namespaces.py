"""linux.namespaces (pod pins, pid modes, user namespaces) and linux.sysctl."""
from __future__ import annotations

import pytest

from crio_native._proto import api_pb2
from crio_native.config.sections import Config
from crio_native.errors import FailedPrecondition, InvalidArgument
from crio_native.spec import namespaces
from tests.unit.test_spec_support import apply, base_sandbox, config_with, make_inputs

NS = "linux__security_context__namespace_options"
POD, CONTAINER, NODE, TARGET = api_pb2.POD, api_pb2.CONTAINER, api_pb2.NODE, api_pb2.TARGET


def namespaces_of(cfg=None, **kw) -> dict[str, str]:
    b = apply(namespaces.with_namespaces, make_inputs(cfg, **kw))
    return {n["type"]: n.get("path", "") for n in b.linux["namespaces"]}


def test_pod_namespaces_joined_by_pin_path():
    got = namespaces_of()
    assert got == {"network": "/run/crio-native/ns/net/p1", "ipc": "/run/crio-native/ns/ipc/p1",
                   "uts": "/run/crio-native/ns/uts/p1", "pid": "", "mount": "", "cgroup": ""}


def test_host_network_pod_has_no_network_or_uts_entry():
    sandbox = base_sandbox(network_mode=NODE, pins={"ipc": "/pins/ipc"})
    cfg = config_with(**{f"{NS}__network": NODE})
    got = namespaces_of(cfg, sandbox=sandbox)
    assert "network" not in got and "uts" not in got and got["ipc"] == "/pins/ipc"


@pytest.mark.parametrize("mode, kw, want", [
    (CONTAINER, {}, ""),
    (NODE, {}, None),
    (POD, {"pod_pid_namespace": "/proc/42/ns/pid"}, "/proc/42/ns/pid"),
    (POD, {"sandbox": base_sandbox(pins={"pid": "/pins/pid"})}, "/pins/pid"),
    (POD, {}, ""),        # unset field in a pod that keeps pids apart
    (TARGET, {"target_pid_namespace": "/proc/7/ns/pid"}, "/proc/7/ns/pid"),
])
def test_pid_modes(mode, kw, want):
    cfg = config_with(**{f"{NS}__pid": mode, f"{NS}__target_id": "c0"})
    assert namespaces_of(cfg, **kw).get("pid") == want


def test_pid_pod_mode_without_a_shared_namespace():
    cfg = config_with(**{f"{NS}__pid": POD})
    with pytest.raises(FailedPrecondition, match=r"namespace_options\.pid"):
        namespaces_of(cfg, sandbox=base_sandbox(pid_mode=POD))


@pytest.mark.parametrize("target_id, kw", [("", {"target_pid_namespace": "/p"}), ("c0", {})])
def test_pid_target_errors(target_id, kw):
    cfg = config_with(**{f"{NS}__pid": TARGET, f"{NS}__target_id": target_id})
    with pytest.raises(InvalidArgument, match=r"namespace_options\.target_id"):
        namespaces_of(cfg, **kw)


@pytest.mark.parametrize("field, mode", [("network", NODE), ("ipc", NODE)])
def test_container_cannot_leave_the_pods_namespaces(field, mode):
    cfg = config_with(**{f"{NS}__{field}": mode})
    with pytest.raises(InvalidArgument, match=rf"namespace_options\.{field}: mode NODE"):
        namespaces_of(cfg)


def test_user_namespace_joined_with_mappings():
    userns = api_pb2.UserNamespace(mode=POD, uids=[api_pb2.IDMapping(host_id=100000,
                                                                      container_id=0,
                                                                      length=65536)],
                                   gids=[api_pb2.IDMapping(host_id=200000, container_id=0,
                                                           length=65536)])
    cfg = config_with(**{f"{NS}__userns_options": userns})
    pins = dict(base_sandbox().pins, user="/pins/user")
    sandbox = base_sandbox(pins=pins, userns_uids=[[0, 100000, 65536]],
                           userns_gids=[[0, 200000, 65536]])
    b = apply(namespaces.with_namespaces, make_inputs(cfg, sandbox=sandbox))
    assert {"type": "user", "path": "/pins/user"} in b.linux["namespaces"]
    assert b.linux["uidMappings"] == [{"containerID": 0, "hostID": 100000, "size": 65536}]
    assert b.linux["gidMappings"][0]["hostID"] == 200000


@pytest.mark.parametrize("mode, field", [(POD, "uids"), (CONTAINER, "mode")])
def test_user_namespace_needs_a_pinned_pod_namespace(mode, field):
    cfg = config_with(**{f"{NS}__userns_options": api_pb2.UserNamespace(mode=mode)})
    with pytest.raises(InvalidArgument, match=rf"userns_options\.{field}"):
        namespaces_of(cfg)


def test_user_namespace_node_mode_adds_nothing():
    cfg = config_with(**{f"{NS}__userns_options": api_pb2.UserNamespace(mode=NODE)})
    assert "user" not in namespaces_of(cfg)


# ---- sysctls ----------------------------------------------------------------

def sysctls_for(defaults, sandbox=None):
    cfg = Config()
    cfg.runtime.default_sysctls = defaults
    inputs = make_inputs(daemon=cfg, sandbox=sandbox or base_sandbox())
    b = apply(namespaces.with_namespaces, inputs)
    namespaces.with_sysctls(b, inputs)
    return b.linux.get("sysctl")


@pytest.mark.parametrize("defaults, sandbox, want", [
    ([], None, None),
    (["net.ipv4.ping_group_range=0 2147483647"], None,
     {"net.ipv4.ping_group_range": "0 2147483647"}),
    (["net/core/somaxconn = 1024"], None, {"net.core.somaxconn": "1024"}),
    (["kernel.shmmax=1"], None, {"kernel.shmmax": "1"}),
    (["net.core.somaxconn=1"], base_sandbox(network_mode=NODE, pins={"ipc": "/p"}), None),
    (["net.core.somaxconn=1"], base_sandbox(sysctls={"net.core.somaxconn": "9"}), None),
])
def test_default_sysctls(defaults, sandbox, want):
    assert sysctls_for(defaults, sandbox) == want


def test_default_sysctl_that_is_not_namespaced():
    with pytest.raises(InvalidArgument, match="runtime.default_sysctls: vm.swappiness"):
        sysctls_for(["vm.swappiness=1"])
