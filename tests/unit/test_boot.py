"""state/boot.py: what start-up decides from the version files and the
clean-shutdown marker (CRI-O's version_file and version_file_persist)."""
from __future__ import annotations

import json

import pytest

from crio_native import __version__
from crio_native.config import Config
from crio_native.errors import ConfigError
from crio_native.state import boot


@pytest.fixture
def config(tmp_path):
    return Config(root=str(tmp_path / "root"), runroot=str(tmp_path / "run"))


def write(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


def test_default_paths_follow_root_and_runroot(config, tmp_path):
    assert boot.version_file(config) == tmp_path / "run" / "version"
    assert boot.version_file_persist(config) == tmp_path / "root" / "version"
    config.version_file, config.version_file_persist = "/x/v", "/y/v"
    assert (str(boot.version_file(config)), str(boot.version_file_persist(config))) == \
        ("/x/v", "/y/v")


def test_first_start(config):
    state = boot.examine(config, has_records=False)
    assert (state.kind, state.upgraded, state.rebooted) == (boot.FIRST_START, False, False)
    assert state.describe() == "first start"


def test_mark_started_writes_both_files_as_json_strings(config, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / boot.CLEAN_SHUTDOWN).touch()
    boot.mark_started(config)
    for path in (tmp_path / "run" / "version", tmp_path / "root" / "version"):
        assert json.loads(path.read_text()) == __version__
    assert not (tmp_path / "run" / boot.CLEAN_SHUTDOWN).exists()


@pytest.mark.parametrize("clean", [True, False])
def test_restart(config, clean):
    boot.mark_started(config)
    if clean:
        boot.mark_clean_shutdown(config)
    state = boot.examine(config, has_records=True)
    assert (state.kind, state.upgraded, state.clean_shutdown) == (boot.RESTART, False, clean)
    assert state.describe() == ("restart after a clean shutdown" if clean
                                else "restart after a crash")


@pytest.mark.parametrize("persist", [True, False])
def test_reboot_when_the_runroot_file_is_gone(config, tmp_path, persist):
    """A wiped runroot with state left: the persistent file, or records
    written by a version before version files (no persistent file)."""
    boot.mark_started(config)
    (tmp_path / "run" / "version").unlink()
    if not persist:
        (tmp_path / "root" / "version").unlink()
    state = boot.examine(config, has_records=True)
    assert state.rebooted and not state.upgraded
    assert state.describe().startswith("reboot")


@pytest.mark.parametrize("previous, upgraded", [
    (__version__, False),
    (__version__.rsplit(".", 1)[0] + ".99", False),     # patch releases share their state
    ("0.0.1", True),
    ("99.1.0", True),                                   # a downgrade too, as CRI-O
    ("not a version", True),
])
def test_upgrade_by_major_minor(config, tmp_path, previous, upgraded):
    write(tmp_path / "root" / "version", previous)
    write(tmp_path / "run" / "version", previous)
    state = boot.examine(config, has_records=True)
    assert (state.kind, state.upgraded) == (boot.RESTART, upgraded)
    if upgraded:
        assert f"to {__version__}" in state.describe()


def test_unreadable_persistent_file_is_an_upgrade(config, tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "version").write_text("{garbage")
    state = boot.examine(config, has_records=True)
    assert state.upgraded and state.previous == ""
    assert "an unreadable version" in state.describe()


def test_config_keys_must_be_absolute():
    for key in ("version_file", "version_file_persist"):
        with pytest.raises(ConfigError, match=key):
            Config(**{key: "relative/version"}).validate()
        Config(**{key: ""}).validate()
        Config(**{key: "/abs/version"}).validate()
