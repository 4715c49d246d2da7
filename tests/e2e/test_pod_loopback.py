"""The pod's loopback interface over real gRPC (issue 21): the daemon sets
`lo` UP in the pod's network namespace itself, without exec'ing CNI's
loopback plugin, and a CNI user sees what the plugin gave: lo UP with
127.0.0.1 (and ::1 where IPv6 is on), reachable from the pod's containers.
A network list that names the loopback plugin itself still runs it."""
from __future__ import annotations

import json

import pytest

from tests.e2e import cni
from tests.e2e.test_container_security import run_once, start_running
from tests.e2e.test_containers import container_config, serving_image
from tests.e2e.test_pod_sandbox import pins_of, pod_config, remove, run_pod, status
from tests.fixtures.oci_builder import ImageBuilder, Pusher, symlink
from tests.fixtures.registry import registry  # noqa: F401

pytestmark = pytest.mark.root

# Retried, so the client need not know when the other container listens.
CLIENT = """
i=0
while [ $i -lt 100 ]; do
  out=$(nc 127.0.0.1 8080 2>/dev/null) && [ -n "$out" ] && echo "GOT $out" && exit 0
  sleep 0.1; i=$((i+1))
done
echo "no answer on 127.0.0.1:8080"; exit 1
"""


@pytest.fixture(scope="module")
def nc_image(registry):  # noqa: F811
    image = ImageBuilder().busybox().add_layer([symlink("bin/nc", "busybox")]).build()
    Pusher(registry.url).push_image("e2e/lobox", "1", image)
    return f"{registry.host}/e2e/lobox:1", image


@pytest.fixture
def bridge_daemon(daemon_factory, nc_image, tmp_path):
    """A daemon on the bridge network (which has no loopback plugin)."""
    d = daemon_factory("--cni-plugin-dir", cni.PLUGIN_DIR)
    cni.write_network(d.network_dir, tmp_path / "ipam")
    d.start()
    try:
        yield from serving_image(d, nc_image, tmp_path)
    finally:
        d.stop()
        cni.delete_bridge()


def lo_state(pin: str) -> tuple[str, str]:
    """(`ip -o addr show dev lo` inside the netns, its lo's disable_ipv6)."""
    shown = cni.in_netns(pin, "ip", "-o", "link", "show", "dev", "lo")
    addrs = cni.in_netns(pin, "ip", "-o", "addr", "show", "dev", "lo")
    assert shown.returncode == 0 and addrs.returncode == 0, shown.stderr + addrs.stderr
    v6off = cni.in_netns(pin, "cat", "/proc/sys/net/ipv6/conf/lo/disable_ipv6")
    return shown.stdout + addrs.stdout, v6off.stdout.strip()


def cached_results(d) -> list[dict]:
    return [json.loads(p.read_text()) for p in (d.base / "root" / "cni" / "results").glob("*.json")]


def test_lo_is_up_with_its_addresses_without_the_loopback_plugin(bridge_daemon):
    d = bridge_daemon
    pod = run_pod(d, pod_config(name="lo-up", uid="uid-lo-up"))
    text, v6off = lo_state(pins_of(d, pod)["net"])
    assert "state UNKNOWN" in text or ",UP" in text, text
    assert "inet 127.0.0.1/8" in text, text
    if v6off == "0":
        assert "inet6 ::1/128" in text, text
    # no plugin ran for lo: nothing is cached for it, only eth0's ADD
    assert sorted(e["ifName"] for e in cached_results(d)) == ["eth0"]
    # CNI CHECK (verbose status) asks after lo too
    assert status(d, pod, verbose=True).info["networkCheck"] == "ok"
    remove(d, pod)
    assert cached_results(d) == []


def test_a_container_reaches_a_listener_on_127_0_0_1_in_its_pod(bridge_daemon):
    d = bridge_daemon
    config = pod_config(name="lo-talk", uid="uid-lo-talk", log_directory=str(d.pod_logs / "p"))
    pod = run_pod(d, config, handler="builtin")
    start_running(d, pod, container_config(
        d, name="server", command=["nc", "-l", "-p", "8080", "-e", "echo", "served"]))
    code, output = run_once(d, pod, container_config(d, name="client",
                                                     command=["sh", "-c", CLIENT]))
    assert (code, output.strip().splitlines()[-1:]) == (0, ["GOT served"]), output
    remove(d, pod)


def test_a_network_list_with_the_loopback_plugin_still_runs_it(daemon_factory, tmp_path):
    d = daemon_factory("--cni-plugin-dir", cni.PLUGIN_DIR)
    d.network_dir.mkdir(parents=True, exist_ok=True)
    (d.network_dir / "10-crn-lo.conflist").write_text(json.dumps(
        {"cniVersion": "1.0.0", "name": "crn-lo", "plugins": [{"type": "loopback"}]}))
    d.start()
    try:
        pod = run_pod(d, pod_config(name="lo-conf", uid="uid-lo-conf"))
        [entry] = cached_results(d)
        assert (entry["networkName"], entry["ifName"]) == ("crn-lo", "eth0")
        assert entry["result"]["interfaces"][0]["name"] == "lo"     # the plugin's own answer
        text, _ = lo_state(pins_of(d, pod)["net"])
        assert "inet 127.0.0.1/8" in text, text
        remove(d, pod)
        assert cached_results(d) == []
    finally:
        d.stop()

