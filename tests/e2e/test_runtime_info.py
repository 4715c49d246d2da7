"""Version, Status, RuntimeConfig and UpdateRuntimeConfig over real gRPC."""
from __future__ import annotations

import json
import stat

import grpc
import pytest

from crio_native import __version__
from crio_native._proto import api_pb2

pytestmark = pytest.mark.root

BRIDGE = {"cniVersion": "1.0.0", "name": "crn-test", "plugins": [
    {"type": "bridge", "bridge": "crn0", "ipam": {"type": "host-local", "subnet": "10.88.0.0/16"}}]}


def conditions(daemon, verbose=False):
    resp = daemon.runtime.Status(api_pb2.StatusRequest(verbose=verbose))
    return {c.type: c for c in resp.status.conditions}, resp


def test_version(daemon):
    resp = daemon.runtime.Version(api_pb2.VersionRequest(version="0.1.0"))
    assert resp.version == "0.1.0"
    assert resp.runtime_name == "crio-native"
    assert resp.runtime_version == __version__
    assert resp.runtime_api_version == "v1"


def test_socket_mode_and_parent(daemon_factory, tmp_path):
    listen = tmp_path / "sockdir" / "deeper" / "crn.sock"
    daemon_factory(listen=listen).start()
    mode = listen.stat().st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o660
    assert stat.S_IMODE(listen.parent.stat().st_mode) == 0o755


def test_network_ready_follows_the_cni_directory(daemon):
    conds, _ = conditions(daemon)
    assert conds["RuntimeReady"].status is True
    net = conds["NetworkReady"]
    assert net.status is False
    assert net.reason == "NetworkPluginNotReady"
    assert str(daemon.network_dir) in net.message

    daemon.network_dir.mkdir()
    conf = daemon.network_dir / "10-crn.conflist"
    conf.write_text(json.dumps(BRIDGE))
    conds, _ = conditions(daemon)
    assert conds["NetworkReady"].status is True
    assert conds["NetworkReady"].reason == ""

    conf.write_text("{broken")
    conds, _ = conditions(daemon)
    assert conds["NetworkReady"].status is False
    assert "10-crn.conflist" in conds["NetworkReady"].message

    conf.unlink()
    conds, _ = conditions(daemon)
    assert conds["NetworkReady"].status is False


def test_verbose_status_carries_the_effective_config(daemon):
    _, resp = conditions(daemon, verbose=True)
    config = json.loads(resp.info["config"])
    assert config["api"]["listen"] == str(daemon.socket)
    assert config["network"]["network_dir"] == str(daemon.network_dir)
    native = json.loads(resp.info["native"])
    assert native["libseccomp"].count(".") == 2
    _, plain = conditions(daemon, verbose=False)
    assert dict(plain.info) == {}


@pytest.mark.parametrize("flag, driver", [
    ([], api_pb2.CGROUPFS),
    (["--cgroup-manager", "systemd"], api_pb2.SYSTEMD),
])
def test_runtime_config_reports_the_cgroup_driver(daemon_factory, flag, driver):
    d = daemon_factory(*flag).start()
    assert d.runtime.RuntimeConfig(api_pb2.RuntimeConfigRequest()).linux.cgroup_driver == driver


def test_update_runtime_config_stores_pod_cidr(daemon):
    request = api_pb2.UpdateRuntimeConfigRequest(runtime_config=api_pb2.RuntimeConfig(
        network_config=api_pb2.NetworkConfig(pod_cidr="10.88.0.0/16,fd00::/64")))
    daemon.runtime.UpdateRuntimeConfig(request)
    _, resp = conditions(daemon, verbose=True)
    assert resp.info["pod_cidr"] == "10.88.0.0/16,fd00::/64"


def test_pod_cidr_survives_a_restart(daemon):
    request = api_pb2.UpdateRuntimeConfigRequest(runtime_config=api_pb2.RuntimeConfig(
        network_config=api_pb2.NetworkConfig(pod_cidr="10.89.0.0/16")))
    daemon.runtime.UpdateRuntimeConfig(request)
    daemon.stop()
    daemon.start()
    _, resp = conditions(daemon, verbose=True)
    assert resp.info["pod_cidr"] == "10.89.0.0/16"


def test_update_runtime_config_rejects_a_bad_cidr(daemon):
    request = api_pb2.UpdateRuntimeConfigRequest(runtime_config=api_pb2.RuntimeConfig(
        network_config=api_pb2.NetworkConfig(pod_cidr="10.88.0.0/99")))
    with pytest.raises(grpc.RpcError) as info:
        daemon.runtime.UpdateRuntimeConfig(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "runtime_config.network_config.pod_cidr" in info.value.details()


@pytest.mark.parametrize("service, rpc, request_cls, streaming", [
    ("runtime", "CheckpointContainer", api_pb2.CheckpointContainerRequest, False),
])
def test_unimplemented_rpcs_say_so(daemon, service, rpc, request_cls, streaming):
    stub = getattr(daemon, service)
    with pytest.raises(grpc.RpcError) as info:
        result = getattr(stub, rpc)(request_cls(), timeout=10)
        if streaming:
            list(result)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert rpc in info.value.details()
