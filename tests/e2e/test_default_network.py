"""`make run` leaves a node that runs pods: a daemon on the default settings,
started on an empty CNI directory, installs the packaged bridge network and a
pod gets an address from it; what the pod made goes with it.

This runs the real default network: bridge crn0, 10.86.0.0/16, host-local
state in /var/lib/cni/networks/crio-native.  No other test uses that bridge,
range or store, and CRI-O (cni0, 10.85/16) and podman (10.88/16) use others.
A crn0 or store that was already there (a crio-native node on this host) is
shared, never removed."""
from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from crio_native._proto import api_pb2
from crio_native.network.default_network import DEFAULT_NETWORK_FILE, default_conflist
from tests.e2e import cni
from tests.e2e.test_pod_sandbox import pins_of, pod_config, remove, run_pod, status

pytestmark = pytest.mark.root

BRIDGE = "crn0"
SUBNET = ipaddress.ip_network("10.86.0.0/16")
IPAM_STORE = Path("/var/lib/cni/networks/crio-native")   # host-local's default dataDir
INSTALLED = "installed the default CNI network"


def bridge_ports() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show", "master", BRIDGE],
                         capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def nat_rules() -> str:
    return subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True).stdout


@pytest.fixture
def default_daemon(daemon_factory):
    had_bridge = os.path.exists(f"/sys/class/net/{BRIDGE}")
    had_store = IPAM_STORE.exists()
    d = daemon_factory()
    d.default_network = True     # the harness turns it off for every other test
    yield d
    d.stop()
    if not had_bridge:
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
    if not had_store:
        shutil.rmtree(IPAM_STORE, ignore_errors=True)


def test_empty_cni_dir_gets_the_default_network_and_a_pod_runs_on_it(default_daemon):
    d = default_daemon
    assert not d.network_dir.exists()
    d.start()
    installed = d.network_dir / DEFAULT_NETWORK_FILE
    assert [p.name for p in d.network_dir.iterdir()] == [DEFAULT_NETWORK_FILE]
    assert installed.read_bytes() == default_conflist()
    assert d.log().count(INSTALLED) == 1 and str(installed) in d.log()
    ready = {c.type: c for c in d.runtime.Status(api_pb2.StatusRequest()).status.conditions}
    assert ready["NetworkReady"].status is True

    d.stop()
    d.start()                                     # a dir with a network is left alone
    assert d.log().count(INSTALLED) == 1

    ports_before = bridge_ports()
    config = pod_config("default-net", uid="u-default-net")
    config.linux.security_context.namespace_options.network = api_pb2.POD
    pod_id = run_pod(d, config)
    ip = status(d, pod_id).status.network.ip
    assert ipaddress.ip_address(ip) in SUBNET, ip
    assert (IPAM_STORE / ip).exists()
    net_pin = pins_of(d, pod_id)["net"]
    assert f"inet {ip}/16" in cni.in_netns(net_pin, "ip", "-o", "-4", "addr", "show",
                                           "eth0").stdout
    assert "default via 10.86.0.1" in cni.in_netns(net_pin, "ip", "route").stdout
    [veth] = bridge_ports() - ports_before
    assert pod_id in nat_rules(), "ipMasq: a masquerade chain for the pod"
    cached = json.loads(next((d.base / "root" / "cni" / "results").glob(
        f"crio-native-{pod_id}-eth0.json")).read_text())
    assert cached["networkName"] == "crio-native"

    remove(d, pod_id)
    assert not os.path.exists(f"/sys/class/net/{veth}"), "the host end of the veth is gone"
    assert not os.path.exists(net_pin), "the pinned netns is gone"
    assert not (IPAM_STORE / ip).exists(), "the address is released"
    assert pod_id not in nat_rules(), "the masquerade chain is gone"
    assert list((d.base / "root" / "cni" / "results").glob(f"*{pod_id}*")) == []


def test_opt_out_leaves_the_cni_dir_alone(daemon_factory):
    d = daemon_factory()
    d.default_network = True                      # no harness drop-in: the operator's own
    d.prepare()
    (d.base / "crio-native.conf.d" / "50-cni.conf").write_text(
        "[network]\ninstall_default_network = false\n")
    d.start()
    assert not d.network_dir.exists()
    assert INSTALLED not in d.log()
    ready = {c.type: c for c in d.runtime.Status(api_pb2.StatusRequest()).status.conditions}
    assert ready["NetworkReady"].status is False
