"""Configuration: defaults, per-key validation, precedence and rendering."""
from __future__ import annotations

import tomllib

import pytest

from crio_native.config import Config, load_config, parse_duration, render_toml
from crio_native.errors import ConfigError


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def empty_dirs(tmp_path):
    """A missing main file and an empty drop-in dir: embedded defaults only."""
    (tmp_path / "d").mkdir()
    return tmp_path


def load(tmp_path, main: str | None = None, dropins: dict[str, str] | None = None,
         overrides=None):
    main_path = tmp_path / "main.conf"
    if main is not None:
        write(main_path, main)
    dropdir = tmp_path / "d"
    dropdir.mkdir(exist_ok=True)
    for name, text in (dropins or {}).items():
        write(dropdir / name, text)
    return load_config(str(main_path) if main is not None else None, str(dropdir),
                       overrides)


def test_defaults_need_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr("crio_native.config.load.DEFAULT_CONFIG_FILE", str(tmp_path / "none"))
    loaded = load(tmp_path)
    assert loaded.config == Config()
    assert loaded.sources == []
    assert loaded.config.api.listen == "/run/crio-native/crio-native.sock"
    assert loaded.config.runtime.default_runtime == "builtin"


def test_drop_ins_apply_in_lexical_order_and_flags_win(tmp_path):
    loaded = load(
        tmp_path,
        main='log_level = "debug"\n[runtime]\ncgroup_manager = "systemd"\n',
        dropins={"20-b.conf": '[runtime]\ncgroup_manager = "cgroupfs"\n',
                 "10-a.conf": '[runtime]\ncgroup_manager = "systemd"\nseccomp_profile = "/x.json"\n',
                 "30-ignored.txt": "this is not TOML = = =\n"},
        overrides={"log_level": ("warning", "flag --log-level")},
    )
    cfg = loaded.config
    assert cfg.runtime.cgroup_manager == "cgroupfs"
    assert cfg.runtime.seccomp_profile == "/x.json"
    assert cfg.log_level == "warning"
    assert loaded.origins["runtime.cgroup_manager"].endswith("20-b.conf")
    assert loaded.origins["log_level"] == "flag --log-level"
    assert [p.rsplit("/", 1)[1] for p in loaded.sources] == ["main.conf", "10-a.conf", "20-b.conf"]


def test_runtime_handlers_merge_with_defaults(tmp_path):
    cfg = load(tmp_path, main='[runtime.runtimes.runc]\nruntime_root = "/run/r"\n'
                              '[runtime.runtimes.kata]\nruntime_type = "vm"\n').config
    assert set(cfg.runtime.runtimes) == {"builtin", "runc", "crun", "kata"}
    assert cfg.runtime.runtimes["runc"].runtime_path == "/usr/sbin/runc"
    assert cfg.runtime.runtimes["runc"].runtime_root == "/run/r"
    assert cfg.runtime.runtimes["kata"].runtime_type == "vm"


@pytest.mark.parametrize("text, key, reason", [
    ('bogus = 1\n', "bogus", "unknown key"),
    ('[api]\nlisten = "relative.sock"\n', "api.listen", "absolute path"),
    ('[api]\nstream_port = 70000\n', "api.stream_port", "port number"),
    ('[api]\nstream_port = "80"\n', "api.stream_port", "integer"),
    ('[api]\nstream_address = "localhost"\n', "api.stream_address", "IP address"),
    ('[api]\ngrpc_max_send_msg_size = 1024\n', "api.grpc_max_send_msg_size", "16 MiB"),
    ('[api]\nstream_tls_cert = "/c.pem"\n', "api.stream_tls_cert", "go together"),
    ('[api]\nstream_idle_timeout = "4 hours"\n', "api.stream_idle_timeout", "duration"),
    ('[runtime]\ncgroup_manager = "cgroupv3"\n', "runtime.cgroup_manager", "one of"),
    ('[runtime]\ndefault_runtime = "youki"\n', "runtime.default_runtime", "no handler"),
    ('[runtime]\ndefault_capabilities = ["CAP_FLY"]\n', "runtime.default_capabilities",
     "unknown capability"),
    ('[runtime]\ndefault_capabilities = "CHOWN"\n', "runtime.default_capabilities",
     "list of strings"),
    ('[runtime]\ndefault_sysctls = ["net.ipv4.ip_forward"]\n', "runtime.default_sysctls",
     "name=value"),
    ('[runtime.runtimes.x]\nruntime_type = "wasm"\n', "runtime.runtimes.x.runtime_type",
     "one of"),
    ('[runtime.runtimes.x]\nruntime_path = "runc"\n', "runtime.runtimes.x.runtime_path",
     "absolute"),
    ('[runtime.runtimes.x]\nfoo = 1\n', "runtime.runtimes.x.foo", "unknown key"),
    ('[runtime.runtimes.builtin]\nruntime_path = "/bin/true"\n',
     "runtime.runtimes.builtin.runtime_path", "no runtime_path"),
    ('[image]\npull_progress_timeout = "soon"\n', "image.pull_progress_timeout", "duration"),
    ('[image]\nmax_concurrent_downloads = 0\n', "image.max_concurrent_downloads", "between"),
    ('[image.mirrors]\n"docker.io" = []\n', "image.mirrors.docker.io", "at least one"),
    ('[network]\nplugin_dirs = []\n', "network.plugin_dirs", "at least one"),
    ('[metrics]\nenable_metrics = "yes"\n', "metrics.enable_metrics", "true or false"),
    ('log_format = "xml"\n', "log_format", "one of"),
    ('api = 3\n', "api", "table"),
    ('[api\n', "(syntax)", "not valid TOML"),
])
def test_bad_values_name_file_key_and_reason(tmp_path, text, key, reason):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, main=text)
    err = info.value
    assert err.key == key
    assert reason in err.reason
    assert err.source == str(tmp_path / "main.conf")
    assert str(err).startswith(f"{tmp_path / 'main.conf'}: {key}: ")


def test_error_in_drop_in_names_the_drop_in(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, main="", dropins={"50-x.conf": '[runtime]\ncgroup_manager = "no"\n'})
    assert info.value.source == str(tmp_path / "d" / "50-x.conf")


def test_error_from_flag_names_the_flag(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, overrides={"runtime.cgroup_manager": ("nope", "flag --cgroup-manager")})
    assert info.value.source == "flag --cgroup-manager"


def test_explicit_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path / "missing.conf"), str(tmp_path))
    assert info.value.key == "--config"


def test_rendered_config_reads_back_identical(tmp_path):
    cfg = load(tmp_path, main='[image.mirrors]\n"registry.k8s.io" = ["127.0.0.1:5000"]\n').config
    text = render_toml(cfg)
    assert tomllib.loads(text)["image"]["mirrors"] == {"registry.k8s.io": ["127.0.0.1:5000"]}
    again = load(tmp_path / "again", main=text).config
    assert again == cfg


@pytest.mark.parametrize("text, seconds", [
    ("0", 0.0), ("30s", 30.0), ("5m", 300.0), ("1h30m", 5400.0), ("250ms", 0.25), ("1.5s", 1.5),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "m5", "5 m", "1h-1m", "3d"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_contrib_sample_matches_the_embedded_defaults():
    """contrib/crio-native.conf.default is `crio-native config --default`; regenerate it
    when a default changes."""
    from pathlib import Path

    sample = Path(__file__).resolve().parents[2] / "contrib" / "crio-native.conf.default"
    assert sample.read_text() == render_toml(Config())
