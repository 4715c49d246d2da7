"""Which CNI network config counts as present (drives NetworkReady)."""
from __future__ import annotations

import json

import pytest

from crio_native.network.cni_config import NoNetworkConfig, find_network_config

BRIDGE_LIST = {"cniVersion": "1.0.0", "name": "podnet",
               "plugins": [{"type": "bridge"}, {"type": "portmap"}]}
SINGLE = {"cniVersion": "0.4.0", "name": "single", "type": "bridge"}


def put(directory, name, doc):
    path = directory / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_missing_directory(tmp_path):
    with pytest.raises(NoNetworkConfig, match="does not exist"):
        find_network_config(str(tmp_path / "nope"))


def test_empty_directory(tmp_path):
    with pytest.raises(NoNetworkConfig, match="no valid CNI configuration"):
        find_network_config(str(tmp_path))


def test_lexically_first_valid_file_wins(tmp_path):
    put(tmp_path, "20-b.conflist", BRIDGE_LIST)
    put(tmp_path, "10-a.conf", SINGLE)
    found = find_network_config(str(tmp_path))
    assert found.name == "single" and not found.is_list


def test_invalid_files_are_skipped_and_reported(tmp_path):
    put(tmp_path, "00-broken.conflist", "{not json")
    put(tmp_path, "01-noplugins.conflist", {"name": "x", "plugins": []})
    put(tmp_path, "02-notype.conf", {"name": "y"})
    put(tmp_path, "README.md", "not a config")
    with pytest.raises(NoNetworkConfig) as info:
        find_network_config(str(tmp_path))
    message = str(info.value)
    assert "00-broken.conflist" in message and "02-notype.conf" in message
    put(tmp_path, "99-ok.conflist", BRIDGE_LIST)
    found = find_network_config(str(tmp_path))
    assert found.name == "podnet" and found.is_list


def test_wanted_name_selects_a_network(tmp_path):
    put(tmp_path, "10-a.conf", SINGLE)
    put(tmp_path, "20-b.conflist", BRIDGE_LIST)
    assert find_network_config(str(tmp_path), "podnet").name == "podnet"
    with pytest.raises(NoNetworkConfig, match="named 'other'"):
        find_network_config(str(tmp_path), "other")
