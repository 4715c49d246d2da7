"""RunPodSandbox request checks, one varied field per case."""
from __future__ import annotations

import pytest

from crio_native._proto import api_pb2
from crio_native.errors import InvalidArgument
from crio_native.sandbox import validate


@pytest.mark.parametrize("text, value", [
    ("64Mi", 64 * 1024**2), ("1Gi", 1024**3), ("10M", 10**7), ("512", 512), ("2k", 2000),
])
def test_parse_quantity(text, value):
    assert validate.parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "1.5Gi", "-1", "10 M", "10MB", "fast"])
def test_parse_quantity_rejects(text):
    with pytest.raises(ValueError):
        validate.parse_quantity(text)


@pytest.mark.parametrize("name, where", [
    ("net.ipv4.ip_forward", "net"), ("net.core.somaxconn", "net"), ("kernel.shmmax", "ipc"),
    ("kernel.sem", "ipc"), ("fs.mqueue.msg_max", "ipc"), ("kernel.panic", None),
    ("vm.swappiness", None), ("kernel.hostname", None),
])
def test_sysctl_namespaces(name, where):
    assert validate.sysctl_namespace(name) == where


def test_sysctls_accept_slash_names_and_reject_host_wide_ones():
    assert validate.check_sysctls({"net/ipv4/ip_forward": "1"}, False, False) == {
        "net.ipv4.ip_forward": "1"}
    with pytest.raises(InvalidArgument, match=r"linux.sysctls\['vm.swappiness'\]"):
        validate.check_sysctls({"vm.swappiness": "1"}, False, False)
    with pytest.raises(InvalidArgument, match="own IPC namespace"):
        validate.check_sysctls({"kernel.shmmax": "1"}, False, True)


def test_shm_size_default_and_annotation():
    assert validate.shm_size({}) == 64 * 1024**2
    assert validate.shm_size({validate.SHM_SIZE_ANNOTATION: "128Mi"}) == 128 * 1024**2
    for bad in ("0", "100Ti", "lots"):
        with pytest.raises(InvalidArgument, match="ShmSize"):
            validate.shm_size({validate.SHM_SIZE_ANNOTATION: bad})


def test_bandwidth_from_annotations():
    assert validate.bandwidth({}) == {}
    got = validate.bandwidth({validate.INGRESS_ANNOTATION: "10M",
                              validate.EGRESS_ANNOTATION: "1G"})
    assert got["ingressRate"] == 10**7 and got["egressRate"] == 10**9
    assert got["ingressBurst"] == got["egressBurst"] == validate.BANDWIDTH_BURST_BITS


def test_dns_fields_are_named():
    dns = api_pb2.DNSConfig(servers=["1.1.1.1", "::1"], searches=["a.b"], options=["ndots:2"])
    assert validate.check_dns(dns)["servers"] == ["1.1.1.1", "::1"]
    with pytest.raises(InvalidArgument, match=r"dns_config.searches\[0\]"):
        validate.check_dns(api_pb2.DNSConfig(searches=["has space"]))


def test_port_mappings_keep_only_host_ports():
    mappings = [api_pb2.PortMapping(container_port=80, host_port=8080, protocol=api_pb2.UDP),
                api_pb2.PortMapping(container_port=81)]
    assert validate.check_port_mappings(mappings) == [
        {"hostPort": 8080, "containerPort": 80, "protocol": "udp", "hostIP": ""}]
    with pytest.raises(InvalidArgument, match=r"port_mappings\[0\].container_port"):
        validate.check_port_mappings([api_pb2.PortMapping(container_port=0, host_port=1)])


@pytest.mark.parametrize("hostname", ["-bad", "a" * 65, "under_score", "sp ace"])
def test_bad_hostnames(hostname):
    with pytest.raises(InvalidArgument, match="config.hostname"):
        validate.check_hostname(hostname)
