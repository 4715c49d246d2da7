"""Reloading the configuration: which changed keys apply at once, which wait
for a restart, and what the running configuration looks like afterwards."""
from __future__ import annotations

from crio_native.config import load_config
from crio_native.config.reload import RELOADABLE, apply_reload, describe, flatten, plan_reload
from crio_native.config.sections import Config


def load(tmp_path, text: str, flags=None):
    conf = tmp_path / "crio-native.conf"
    conf.write_text(text)
    drop_ins = tmp_path / "conf.d"
    drop_ins.mkdir(exist_ok=True)
    return load_config(str(conf), str(drop_ins), flags)


def test_flatten_walks_tables_and_the_handler_table():
    flat = flatten(Config())
    assert flat["log_level"] == "info"
    assert flat["api.listen"] == "/run/crio-native/crio-native.sock"
    assert flat["runtime.runtimes.runc.runtime_path"] == "/usr/sbin/runc"
    assert flat["image.mirrors"] == {}


def test_unchanged_files_change_nothing(tmp_path):
    running = load(tmp_path, 'log_level = "info"\n')
    plan = plan_reload(running.config, load(tmp_path, 'log_level = "info"\n').config)
    assert not plan.changed and describe(plan.applied) == "none"


def test_log_keys_apply_the_rest_waits_for_a_restart(tmp_path):
    running = load(tmp_path, "")
    (tmp_path / "conf.d" / "50-x.conf").write_text(
        'log_level = "debug"\n[image]\npause_image = "example.com/pause:1"\n'
        '[runtime.runtimes.kata]\nruntime_type = "vm"\n')
    wanted = load(tmp_path, "")
    plan = plan_reload(running.config, wanted.config)
    assert [c.key for c in plan.applied] == ["log_level"]
    assert [c.key for c in plan.needs_restart] == [
        "image.pause_image", "runtime.runtimes.kata.allowed_annotations",
        "runtime.runtimes.kata.runtime_path", "runtime.runtimes.kata.runtime_root",
        "runtime.runtimes.kata.runtime_type"]
    assert describe(plan.applied) == "log_level: info -> debug"
    assert str(plan.needs_restart[0]) == \
        "image.pause_image: registry.k8s.io/pause:3.10 -> example.com/pause:1"
    assert str(plan.needs_restart[2]) == 'runtime.runtimes.kata.runtime_path: (unset) -> ""'

    config = running.config
    apply_reload(running, wanted, plan)
    assert running.config is config                       # changed in place
    assert config.log_level == "debug"
    assert config.image.pause_image == "registry.k8s.io/pause:3.10"   # until a restart
    assert "kata" not in config.runtime.runtimes
    assert running.origins["log_level"].endswith("50-x.conf")


def test_a_flag_still_wins_over_the_files(tmp_path):
    flags = {"log_level": ("warning", "flag --log-level")}
    running = load(tmp_path, 'log_level = "info"\n', flags)
    wanted = load(tmp_path, 'log_level = "debug"\n', flags)
    assert not plan_reload(running.config, wanted.config).changed


def test_reloadable_keys_exist():
    flat = flatten(Config())
    assert all(key in flat for key in RELOADABLE)
