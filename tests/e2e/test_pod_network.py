"""Pod networking beyond ADD/DEL, over real gRPC: ipRanges from the pod CIDR
(real bridge + host-local), NetworkReady following the CNI directory through
inotify, CNI CHECK in verbose PodSandboxStatus, CNI GC at start-up, and CNI
STATUS for spec 1.1 configs (a fake plugin: Debian's plugins stop at 1.0.0)."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import grpc
import pytest

from crio_native._proto import api_pb2
from tests.e2e import cni
from tests.e2e.test_pod_sandbox import pod_config, remove, run_pod, status

pytestmark = pytest.mark.root

BRIDGE = "crntest1"
NET = "crn-net"
POD_CIDR = "10.231.9.0/24"


def conflist(ipam_dir: Path, ranges: list | None = None, gateway: bool = True) -> dict:
    ipam = {"type": "host-local", "dataDir": str(ipam_dir), "routes": [{"dst": "0.0.0.0/0"}]}
    if ranges:
        ipam["ranges"] = ranges
    return {"cniVersion": "1.0.0", "name": NET, "plugins": [
        {"type": "bridge", "bridge": BRIDGE, "isGateway": gateway, "ipMasq": False,
         "capabilities": {"ipRanges": True}, "ipam": ipam},
        {"type": "portmap", "capabilities": {"portMappings": True}}]}


def reserved(ipam_dir: Path) -> list[str]:
    d = ipam_dir / NET
    return sorted(p.name for p in d.iterdir() if p.name[0].isdigit()) if d.is_dir() else []


def conditions(d) -> dict:
    return {c.type: c for c in d.runtime.Status(api_pb2.StatusRequest()).status.conditions}


def set_pod_cidr(d, cidr: str) -> None:
    d.runtime.UpdateRuntimeConfig(api_pb2.UpdateRuntimeConfigRequest(
        runtime_config=api_pb2.RuntimeConfig(
            network_config=api_pb2.NetworkConfig(pod_cidr=cidr))))


@pytest.fixture
def bridge_daemon(daemon_factory, tmp_path):
    """A daemon whose network takes its range from ipRanges (none of its own)."""
    d = daemon_factory("--cni-plugin-dir", cni.PLUGIN_DIR)
    d.ipam_dir = tmp_path / "ipam"
    d.network_dir.mkdir(parents=True)
    (d.network_dir / "10-crn-net.conflist").write_text(json.dumps(conflist(d.ipam_dir)))
    d.start()
    yield d
    d.stop()
    subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)


def test_pod_gets_its_ip_from_the_pod_cidr(bridge_daemon):
    d = bridge_daemon
    with pytest.raises(grpc.RpcError) as info:       # no pod CIDR yet, no range at all
        run_pod(d, pod_config("early", uid="u-early"))
    assert "no IP ranges specified" in info.value.details()
    assert reserved(d.ipam_dir) == []
    # host-local refuses that DEL for the same reason, so the rollback is partial
    # and the name stays taken; a retry re-tries the rollback and reports, never spins.
    with pytest.raises(grpc.RpcError) as info:
        run_pod(d, pod_config("early", uid="u-early"))
    assert "no IP ranges specified" in info.value.details()
    # The failed ADD left the bridge without an address; bridge 1.1.1 then
    # fails to set its MAC on the next ADD, so start from no bridge.
    subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)

    set_pod_cidr(d, POD_CIDR)
    pod_id = run_pod(d)
    ip = status(d, pod_id).status.network.ip
    assert ip.startswith("10.231.9.")
    assert reserved(d.ipam_dir) == [ip]
    pin = json.loads(status(d, pod_id, verbose=True).info["info"])["pins"]["net"]
    assert f"inet {ip}/24" in cni.in_netns(pin, "ip", "-o", "-4", "addr", "show", "eth0").stdout

    # A restarted daemon has no pod CIDR until the kubelet sends one; DEL uses
    # the ipRanges cached with the ADD result, so host-local still releases.
    d.stop()
    d.start()
    remove(d, pod_id)
    assert reserved(d.ipam_dir) == []


def test_a_changed_pod_cidr_applies_to_new_pods(bridge_daemon):
    d = bridge_daemon
    # No gateway address on the bridge: bridge 1.1.1 refuses a second one.
    (d.network_dir / "10-crn-net.conflist").write_text(
        json.dumps(conflist(d.ipam_dir, gateway=False)))
    set_pod_cidr(d, POD_CIDR)
    a = run_pod(d, pod_config("a", uid="ua"))
    set_pod_cidr(d, "10.231.10.0/24")
    b = run_pod(d, pod_config("b", uid="ub"))
    assert status(d, a).status.network.ip.startswith("10.231.9.")
    assert status(d, b).status.network.ip.startswith("10.231.10.")
    remove(d, a)
    remove(d, b)
    assert reserved(d.ipam_dir) == []


def test_verbose_status_runs_cni_check(bridge_daemon):
    d = bridge_daemon
    set_pod_cidr(d, POD_CIDR)
    pod_id = run_pod(d)
    assert "networkCheck" not in status(d, pod_id).info          # the kubelet's call: no CHECK
    assert status(d, pod_id, verbose=True).info["networkCheck"] == "ok"

    pin = json.loads(status(d, pod_id, verbose=True).info["info"])["pins"]["net"]
    cni.in_netns(pin, "ip", "link", "del", "eth0")
    verdict = status(d, pod_id, verbose=True).info["networkCheck"]
    assert verdict.startswith("failed: CNI plugin bridge CHECK failed"), verdict
    assert status(d, pod_id).status.state == api_pb2.SANDBOX_READY   # reported, not acted on

    d.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    assert status(d, pod_id, verbose=True).info["networkCheck"] == "skipped: not attached"
    remove(d, pod_id)
    assert reserved(d.ipam_dir) == []

    host = pod_config("hostnet", hostname="")
    host.linux.security_context.namespace_options.network = api_pb2.NODE
    host_id = run_pod(d, host)
    assert status(d, host_id, verbose=True).info["networkCheck"] == "skipped: host network"
    remove(d, host_id)


def test_gc_at_start_releases_attachments_no_pod_owns(bridge_daemon):
    d = bridge_daemon
    set_pod_cidr(d, POD_CIDR)
    pod_id = run_pod(d)
    assert len(reserved(d.ipam_dir)) == 1
    d.stop(signal.SIGKILL)
    # The record forgets the attachment (as a record restored from an old
    # backup would): only the CNI cache still knows of it.
    record_path = d.base / "root" / "sandboxes" / f"{pod_id}.json"
    record = json.loads(record_path.read_text())
    record["network_attached"] = False
    record_path.write_text(json.dumps(record))
    d.start()
    assert reserved(d.ipam_dir) == [], "GC at start must DEL the stale attachment"
    assert list((d.base / "root" / "cni" / "results").glob("*.json")) == []
    assert "CNI GC: deleting stale attachment" in d.log()
    remove(d, pod_id)


def test_network_ready_follows_the_directory_through_inotify(daemon_factory, tmp_path):
    d = daemon_factory("--cni-plugin-dir", cni.PLUGIN_DIR).start()
    assert conditions(d)["NetworkReady"].status is False
    tasks = len(os.listdir(f"/proc/{d.proc.pid}/task"))
    d.network_dir.mkdir()
    staged = tmp_path / "staged.conflist"
    staged.write_text(json.dumps(conflist(tmp_path / "ipam", [[{"subnet": POD_CIDR}]])))
    os.rename(staged, d.network_dir / "10-crn-net.conflist")   # how installers drop configs
    deadline = time.monotonic() + 5
    while "CNI network config changed" not in d.log().split("ready")[-1] \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert d.log().count("CNI network config changed") >= 2, "the watcher thread logs changes"
    assert conditions(d)["NetworkReady"].status is True
    (d.network_dir / "10-crn-net.conflist").write_text('{"name": "x"}')
    cond = conditions(d)["NetworkReady"]
    assert cond.status is False and "10-crn-net.conflist" in cond.message
    (d.network_dir / "10-crn-net.conflist").unlink()
    assert conditions(d)["NetworkReady"].status is False
    assert len(os.listdir(f"/proc/{d.proc.pid}/task")) == tasks   # no thread per change
    assert d.stop() == 0                                            # the watcher stops cleanly


# ---- CNI 1.1 STATUS and GC, with a fake plugin --------------------------------------

FAKE_1_1 = r"""#!/bin/sh
log=@LOG@
stdin=$(cat)
echo "$CNI_COMMAND $CNI_CONTAINERID $stdin" >> "$log/calls"
case "$CNI_COMMAND" in
  STATUS) if [ -e "$log/down" ]; then
            echo '{"cniVersion":"1.1.0","code":50,"msg":"fake network is down"}'; exit 1; fi ;;
  ADD) echo '{"cniVersion":"1.1.0","ips":[{"address":"10.231.11.2/24"}]}' ;;
  VERSION) echo '{"cniVersion":"1.1.0","supportedVersions":["1.0.0","1.1.0"]}' ;;
esac
"""


def test_cni_1_1_status_feeds_network_ready_and_gc_runs_at_start(daemon_factory, tmp_path):
    plugins, log = tmp_path / "plugins", tmp_path / "fake-log"
    plugins.mkdir()
    log.mkdir()
    fake = plugins / "crn-fake11"
    fake.write_text(FAKE_1_1.replace("@LOG@", str(log)))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    d = daemon_factory("--cni-plugin-dir", cni.PLUGIN_DIR, "--cni-plugin-dir", str(plugins))
    d.network_dir.mkdir(parents=True)
    (d.network_dir / "10-fake.conflist").write_text(json.dumps(
        {"cniVersion": "1.1.0", "name": "fake11", "plugins": [{"type": "crn-fake11"}]}))
    d.start()
    try:
        assert conditions(d)["NetworkReady"].status is True
        assert "STATUS" in (log / "calls").read_text()
        (log / "down").touch()
        deadline = time.monotonic() + 10        # STATUS is re-asked every 5 s at most
        while conditions(d)["NetworkReady"].status and time.monotonic() < deadline:
            time.sleep(0.2)
        cond = conditions(d)["NetworkReady"]
        assert cond.status is False and "fake network is down" in cond.message
        (log / "down").unlink()

        pod_id = run_pod(d)
        assert status(d, pod_id).status.network.ip == "10.231.11.2"
        d.stop()
        d.start()
        gc = [line for line in (log / "calls").read_text().splitlines() if line.startswith("GC")]
        assert gc, "a 1.1 network gets GC at start-up"
        sent = json.loads(gc[-1].split(" ", 2)[2])
        assert sent["cni.dev/valid-attachments"] == [{"containerID": pod_id, "ifname": "eth0"}]
        remove(d, pod_id)
    finally:
        d.stop()
