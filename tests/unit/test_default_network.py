"""The default bridge network installed into an empty CNI directory."""
from __future__ import annotations

import ipaddress
import json
import logging
import stat
from pathlib import Path

import pytest

from crio_native.config import LoadedConfig, load_config
from crio_native.config.sections import Config, NetworkConfig
from crio_native.context import DaemonContext
from crio_native.daemon import install_network
from crio_native.network.cni import NetworkList
from crio_native.network.cni_config import find_network_config
from crio_native.network.default_network import (DEFAULT_NETWORK_FILE, default_conflist,
                                                 install_default_network)

REPO = Path(__file__).resolve().parents[2]


def network(directory: Path, install: bool = True) -> NetworkConfig:
    return NetworkConfig(network_dir=str(directory), install_default_network=install)


def listing(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir()}


def test_empty_directory_gets_the_packaged_network(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="crio_native.network.default_network"):
        installed = install_default_network(network(tmp_path))
    assert installed == tmp_path / DEFAULT_NETWORK_FILE
    assert listing(tmp_path) == {DEFAULT_NETWORK_FILE: default_conflist()}   # no temp file left
    assert stat.S_IMODE(installed.stat().st_mode) == 0o644
    [record] = caplog.records
    assert record.levelno == logging.INFO
    assert record.fields["file"] == str(installed)
    assert record.fields["reason"] == f"no network config in {tmp_path}"


def test_missing_directory_is_made(tmp_path):
    directory = tmp_path / "etc" / "cni" / "net.d"
    assert install_default_network(network(directory)) == directory / DEFAULT_NETWORK_FILE
    assert stat.S_IMODE(directory.stat().st_mode) == 0o755


@pytest.mark.parametrize("name, content", [
    ("10-calico.conflist", '{"cniVersion": "1.0.0", "name": "k8s-pod-network", "plugins": []}'),
    ("87-podman-bridge.conf", '{"name": "podman", "type": "bridge"}'),
    ("99-loopback.json", '{"name": "lo", "type": "loopback"}'),
    ("50-broken.conflist", "{not json"),     # the operator's, even broken: ours would mask it
])
def test_a_directory_with_any_network_is_left_alone(tmp_path, name, content):
    (tmp_path / name).write_text(content)
    before = listing(tmp_path)
    assert install_default_network(network(tmp_path)) is None
    assert listing(tmp_path) == before


def test_files_that_are_no_network_do_not_count(tmp_path):
    (tmp_path / "README").write_text("notes")
    (tmp_path / "10-old.conflist.bak").write_text("{}")
    assert install_default_network(network(tmp_path)) == tmp_path / DEFAULT_NETWORK_FILE


def test_opt_out_leaves_the_directory_alone(tmp_path):
    directory = tmp_path / "net.d"
    assert install_default_network(network(directory, install=False)) is None
    assert not directory.exists()


def test_a_second_start_changes_nothing(tmp_path):
    install_default_network(network(tmp_path))
    (tmp_path / DEFAULT_NETWORK_FILE).write_text('{"edited": "by the operator"}')
    assert install_default_network(network(tmp_path)) is None
    assert (tmp_path / DEFAULT_NETWORK_FILE).read_text() == '{"edited": "by the operator"}'


def test_the_key_defaults_to_on_and_a_drop_in_turns_it_off(tmp_path):
    assert Config().network.install_default_network is True
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "50-cni.conf").write_text("[network]\ninstall_default_network = false\n")
    loaded = load_config(None, str(tmp_path / "d"))
    assert loaded.config.network.install_default_network is False


def test_the_installed_file_is_a_valid_network_list(tmp_path):
    install_default_network(network(tmp_path))
    found = find_network_config(str(tmp_path))
    assert (found.name, found.cni_version, found.is_list) == ("crio-native", "1.0.0", True)
    net = NetworkList.from_file(found)
    # loopback is not in it: the daemon runs it on lo itself (sandbox manager's LOOPBACK)
    assert [p["type"] for p in net.plugins] == ["bridge", "portmap"]
    bridge, portmap = net.plugins
    assert bridge["isGateway"] and bridge["ipMasq"]
    assert bridge["ipam"]["type"] == "host-local"
    assert portmap["capabilities"] == {"portMappings": True}


# Ranges and bridges this network must stay clear of: CRI-O's default, podman's
# and containerd's (podman also hands out 10.89.x.0/24 and up), flannel/kind,
# kubeadm's service range, k3s, and the e2e tests' own networks.
TAKEN = ["10.85.0.0/16", "10.88.0.0/16", "10.89.0.0/16", "10.244.0.0/16", "10.96.0.0/12",
         "10.42.0.0/15", "10.231.0.0/16"]
TAKEN_BRIDGES = {"cni0", "cni-podman0", "podman0", "docker0", "crntest0", "crntest1"}


def test_range_and_bridge_collide_with_no_other_runtime():
    bridge = json.loads(default_conflist())["plugins"][0]
    [[rng]] = bridge["ipam"]["ranges"]
    subnet = ipaddress.ip_network(rng["subnet"])
    assert subnet == ipaddress.ip_network("10.86.0.0/16")
    assert ipaddress.ip_address(rng["gateway"]) in subnet
    assert not [t for t in TAKEN if subnet.overlaps(ipaddress.ip_network(t))]
    assert bridge["bridge"] not in TAKEN_BRIDGES and len(bridge["bridge"]) <= 15   # IFNAMSIZ-1


def test_network_providers_configs_sort_first():
    """Calico, flannel, weave... drop 10-*.conflist when their pod starts; the
    lexically first config wins, so theirs takes over from ours."""
    for provider in ("05-cilium.conflist", "10-calico.conflist", "10-flannel.conflist",
                     "10-weave.conflist", "10-kindnet.conflist"):
        assert sorted([DEFAULT_NETWORK_FILE, provider])[0] == provider


def test_contrib_points_at_the_packaged_file():
    """Packagers find it in contrib/cni/; the link keeps one copy."""
    contrib = REPO / "contrib" / "cni" / DEFAULT_NETWORK_FILE
    assert contrib.is_symlink()
    assert contrib.read_bytes() == default_conflist()


def context(directory: Path) -> DaemonContext:
    config = Config()
    config.network.network_dir = str(directory)
    return DaemonContext(loaded=LoadedConfig(config=config, origins={}, sources=[]))


def test_the_daemon_step_installs_and_survives_an_unwritable_dir(tmp_path, caplog):
    install_network(context(tmp_path / "net.d"))
    assert (tmp_path / "net.d" / DEFAULT_NETWORK_FILE).exists()

    (tmp_path / "file").write_text("not a directory")
    with caplog.at_level(logging.WARNING, logger="crio_native.daemon"):
        install_network(context(tmp_path / "file" / "net.d"))   # logged, start-up goes on
    [record] = caplog.records
    assert record.getMessage() == "could not install the default CNI network"
    assert record.fields["network_dir"] == str(tmp_path / "file" / "net.d")
