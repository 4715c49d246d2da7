"""`crio-native config` / `version` and config precedence seen by a running daemon."""
from __future__ import annotations

import json
import tomllib

import pytest

from crio_native import __version__
from crio_native._proto import api_pb2
from tests.e2e.daemon import run_cli

pytestmark = pytest.mark.root


def test_config_default_prints_the_embedded_defaults():
    out = run_cli("config", "--default")
    assert out.returncode == 0, out.stderr
    doc = tomllib.loads(out.stdout)
    assert doc["api"]["listen"] == "/run/crio-native/crio-native.sock"
    assert doc["runtime"]["default_runtime"] == "builtin"
    assert doc["network"]["network_dir"] == "/etc/cni/net.d"


def test_precedence_file_then_drop_in_then_flag(tmp_path, daemon_factory):
    d = daemon_factory(base=tmp_path / "d")
    (tmp_path / "d" / "crio-native.conf.d").mkdir(parents=True)
    (tmp_path / "d" / "crio-native.conf").write_text(
        'log_level = "debug"\n[runtime]\ncgroup_manager = "systemd"\n'
        '[image]\npause_image = "from-file:1"\n[metrics]\nmetrics_port = 1111\n')
    (tmp_path / "d" / "crio-native.conf.d" / "10-a.conf").write_text(
        '[image]\npause_image = "from-dropin:1"\n[metrics]\nmetrics_port = 2222\n')
    (tmp_path / "d" / "crio-native.conf.d" / "20-b.conf").write_text(
        '[runtime]\ncgroup_manager = "cgroupfs"\n')

    out = run_cli(*d.args(), "--pause-image", "from-flag:1", "config")
    assert out.returncode == 0, out.stderr
    doc = tomllib.loads(out.stdout)
    assert doc["log_level"] == "debug"                       # file only
    assert doc["metrics"]["metrics_port"] == 2222            # drop-in over file
    assert doc["runtime"]["cgroup_manager"] == "cgroupfs"    # later drop-in over file
    assert doc["image"]["pause_image"] == "from-flag:1"      # flag over everything

    # The running daemon sees the same merge.
    d.extra_args = ["--cgroup-manager", "systemd"]
    d.start()
    assert d.runtime.RuntimeConfig(api_pb2.RuntimeConfigRequest()).linux.cgroup_driver \
        == api_pb2.SYSTEMD
    info = d.runtime.Status(api_pb2.StatusRequest(verbose=True)).info
    config = json.loads(info["config"])
    assert config["image"]["pause_image"] == "from-dropin:1"
    assert config["metrics"]["metrics_port"] == 2222


def test_repeatable_plugin_dir_flag(tmp_path):
    out = run_cli("--config", "/dev/null", "--config-dir", str(tmp_path),
                  "--cni-plugin-dir", "/a", "--cni-plugin-dir", "/b", "config")
    assert out.returncode == 0, out.stderr
    assert tomllib.loads(out.stdout)["network"]["plugin_dirs"] == ["/a", "/b"]


@pytest.mark.parametrize("text, key", [
    ("[runtime]\nno_such_key = 1\n", "runtime.no_such_key"),
    ('[runtime]\ncgroup_manager = "cgroupv1"\n', "runtime.cgroup_manager"),
    ('[api\n', "(syntax)"),
])
def test_bad_config_exits_2_naming_file_and_key(tmp_path, daemon_factory, text, key):
    d = daemon_factory(base=tmp_path / "d")
    (tmp_path / "d" / "crio-native.conf.d").mkdir(parents=True)
    bad = tmp_path / "d" / "crio-native.conf.d" / "50-bad.conf"
    bad.write_text(text)
    out = run_cli(*d.args(), "daemon")
    assert out.returncode == 2
    assert str(bad) in out.stderr and key in out.stderr
    assert not d.socket.exists()


def test_bad_flag_value_exits_2(tmp_path):
    out = run_cli("--config-dir", str(tmp_path), "--config", "/dev/null",
                  "--log-format", "xml", "daemon")
    assert out.returncode == 2
    assert "flag --log-format" in out.stderr and "log_format" in out.stderr


def test_version_json():
    out = run_cli("version", "--json")
    assert out.returncode == 0
    info = json.loads(out.stdout)
    assert info["name"] == "crio-native" and info["version"] == __version__
    assert info["runtime_api_version"] == "v1"
