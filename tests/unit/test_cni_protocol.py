"""What the runtime sends CNI plugins for CHECK, DEL, STATUS and GC, and the
ipRanges capability, against a recording fake plugin (no root; the real
Debian plugins implement spec 1.0.0 at most, so STATUS and GC are only
exercised here and in tests/e2e/test_pod_network.py with this fake)."""
from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from crio_native.errors import FailedPrecondition
from crio_native.network.cni import (CNI, Attachment, NetworkList, PluginError,
                                     ip_ranges_from_cidr)

# Logs each call (env + stdin) as <log>/<n>.json; fails a command named in <log>/fail-<CMD>.
FAKE = r"""#!/bin/sh
log=@LOG@
n=$(ls "$log" | grep -c '\.json$')
stdin=$(cat)
printf '{"command":"%s","container":"%s","ifname":"%s","netns":"%s","args":"%s","stdin":%s}' \
  "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_IFNAME" "$CNI_NETNS" "$CNI_ARGS" "$stdin" > "$log/$n.json"
if [ -e "$log/fail-$CNI_COMMAND" ]; then
  echo '{"cniVersion":"1.1.0","code":50,"msg":"fake says no"}'; exit 1
fi
if [ "$CNI_COMMAND" = ADD ]; then
  echo '{"cniVersion":"1.1.0","ips":[{"address":"10.9.0.5/24"}]}'
fi
"""


def write_fake(plugin_dir: Path, log: Path, name: str = "fake") -> None:
    plugin_dir.mkdir(exist_ok=True)
    log.mkdir(exist_ok=True)
    path = plugin_dir / name
    path.write_text(FAKE.replace("@LOG@", str(log)))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def calls(log: Path) -> list[dict]:
    files = sorted((p for p in log.glob("*.json")), key=lambda p: int(p.stem))
    return [json.loads(p.read_text()) for p in files]


@pytest.fixture
def env(tmp_path):
    log = tmp_path / "log"
    write_fake(tmp_path / "bin", log)
    write_fake(tmp_path / "bin", log, "fake2")
    cni = CNI([str(tmp_path / "bin")], str(tmp_path / "cache"))
    return cni, log


def net(version="1.1.0", caps=None) -> NetworkList:
    first = {"type": "fake", "capabilities": caps or {"ipRanges": True}}
    return NetworkList("fakenet", version, [first, {"type": "fake2"}], "test")


def att(container="c1", **caps) -> Attachment:
    return Attachment(container_id=container, netns="/run/netns/x",
                      args={"IgnoreUnknown": "1", "K8S_POD_NAME": "p"}, capability_args=caps)


@pytest.mark.parametrize("cidr, ranges", [
    ("10.244.1.0/24", [[{"subnet": "10.244.1.0/24"}]]),
    ("10.244.1.7/24", [[{"subnet": "10.244.1.0/24"}]]),                  # host bits dropped
    ("10.244.1.0/24, fd00:1::/64", [[{"subnet": "10.244.1.0/24"}], [{"subnet": "fd00:1::/64"}]]),
    ("", []),
])
def test_ip_ranges_from_cidr(cidr, ranges):
    assert ip_ranges_from_cidr(cidr) == ranges


def test_ip_ranges_reach_only_plugins_that_declare_the_capability(env):
    cni, log = env
    ranges = ip_ranges_from_cidr("10.9.0.0/24")
    cni.add(net(), att(ipRanges=ranges, portMappings=[{"hostPort": 1}]))
    first, second = calls(log)
    assert first["stdin"]["runtimeConfig"] == {"ipRanges": ranges}
    assert "runtimeConfig" not in second["stdin"]
    assert second["stdin"]["prevResult"]["ips"][0]["address"] == "10.9.0.5/24"


def test_del_and_check_get_the_arguments_add_got(env):
    cni, log = env
    ranges = ip_ranges_from_cidr("10.9.0.0/24")
    cni.add(net(), att(ipRanges=ranges))
    later = att()   # e.g. after a restart, before UpdateRuntimeConfig came again
    cni.check(net(), later)
    cni.delete(net(), later)
    check1, check2, del2, del1 = calls(log)[2:]
    assert [c["command"] for c in (check1, check2, del2, del1)] == ["CHECK", "CHECK", "DEL", "DEL"]
    assert check1["stdin"]["runtimeConfig"] == {"ipRanges": ranges}
    assert del1["stdin"]["runtimeConfig"] == {"ipRanges": ranges}
    assert check1["stdin"]["prevResult"]["ips"][0]["address"] == "10.9.0.5/24"
    assert del1["args"] == "IgnoreUnknown=1;K8S_POD_NAME=p"
    assert cni.cached_entry("fakenet", later) is None


def test_check_needs_a_cached_result_and_cni_0_4(env):
    cni, log = env
    with pytest.raises(FailedPrecondition, match="no cached ADD result"):
        cni.check(net(), att())
    with pytest.raises(FailedPrecondition, match="CHECK needs 0.4.0"):
        cni.check(net("0.3.1"), att())
    assert calls(log) == []


def test_check_failure_carries_the_plugins_message(env):
    cni, log = env
    cni.add(net(), att())
    (log / "fail-CHECK").touch()
    with pytest.raises(PluginError, match="fake CHECK failed: code 50: fake says no"):
        cni.check(net(), att())


def test_status_runs_the_chain_without_attachment_variables(env):
    cni, log = env
    cni.status(net())
    assert [(c["command"], c["container"], c["ifname"], c["netns"]) for c in calls(log)] == [
        ("STATUS", "", "", ""), ("STATUS", "", "", "")]
    assert calls(log)[0]["stdin"]["name"] == "fakenet"
    assert "runtimeConfig" not in calls(log)[0]["stdin"]
    (log / "fail-STATUS").touch()
    with pytest.raises(PluginError, match="fake STATUS failed: code 50"):
        cni.status(net())


def test_status_and_gc_are_not_sent_to_1_0_configs(env):
    cni, log = env
    cni.status(net("1.0.0"))
    assert cni.gc(net("1.0.0"), set()) == []
    assert calls(log) == []


def test_gc_deletes_stale_cached_attachments_then_sends_the_valid_ones(env):
    cni, log = env
    ranges = ip_ranges_from_cidr("10.9.0.0/24")
    cni.add(net(), att("keep", ipRanges=ranges))
    cni.add(net(), att("stale", ipRanges=ranges))
    other = NetworkList("othernet", "1.1.0", [{"type": "fake"}], "test")
    cni.add(other, att("elsewhere"))
    n = len(calls(log))
    assert cni.gc(net(), {("keep", "eth0")}) == []
    made = calls(log)[n:]
    assert [(c["command"], c["container"]) for c in made] == [
        ("DEL", "stale"), ("DEL", "stale"), ("GC", ""), ("GC", "")]
    assert made[1]["stdin"]["runtimeConfig"] == {"ipRanges": ranges}   # the cached arguments
    assert made[1]["netns"] == "/run/netns/x"
    assert made[2]["stdin"]["cni.dev/valid-attachments"] == [
        {"containerID": "keep", "ifname": "eth0"}]
    assert [e["containerId"] for e in cni.cached_entries("fakenet")] == ["keep"]
    assert cni.cached_network_names() == {"fakenet", "othernet"}


def test_gc_reports_problems_and_goes_on(env):
    cni, log = env
    cni.add(net(), att("stale"))
    (log / "fail-DEL").touch()
    (log / "fail-GC").touch()
    problems = cni.gc(net(), set())
    assert len(problems) == 3 and "DEL of stale attachment stale eth0" in problems[0]
    assert all("code 50" in p for p in problems)
    assert cni.cached_entries("fakenet")        # a failed DEL keeps the cache for a retry
