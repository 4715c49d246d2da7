import pytest

from crio_native.config.sections import Config, RuntimeHandlerConfig
from crio_native.errors import ConfigError
from crio_native.spec.allowed import feature_annotation, handler_prefixes, is_allowed


def _config(prefixes):
    cfg = Config()
    cfg.runtime.runtimes["builtin"].allowed_annotations = prefixes
    return cfg


def test_prefix_match_is_by_start_of_key():
    assert is_allowed(["landlock.crio-native.io"], "landlock.crio-native.io/app")
    assert not is_allowed(["landlock.crio-native.io"], "x.landlock.crio-native.io/app")
    assert not is_allowed([], "landlock.crio-native.io/app")


def test_default_handler_used_when_pod_names_none():
    cfg = _config(["a."])
    assert handler_prefixes(cfg, "") == ["a."]
    assert handler_prefixes(cfg, "runc") == []
    assert handler_prefixes(cfg, "no-such-handler") == []


def test_disallowed_annotation_is_ignored_and_logged(caplog):
    cfg = _config([])
    anns = {"landlock.crio-native.io/app": "{}"}
    with caplog.at_level("INFO"):
        assert feature_annotation(cfg, "builtin", anns, "landlock.crio-native.io/app", "c1") is None
    assert "allowed_annotations" in caplog.text and "c1" in caplog.text


def test_allowed_annotation_value_returned():
    cfg = _config(["landlock.crio-native.io"])
    anns = {"landlock.crio-native.io/app": "{}"}
    assert feature_annotation(cfg, "builtin", anns, "landlock.crio-native.io/app") == "{}"
    assert feature_annotation(cfg, "builtin", anns, "landlock.crio-native.io/other") is None


def test_empty_prefix_is_a_config_error():
    handler = RuntimeHandlerConfig(runtime_type="builtin", allowed_annotations=[" "])
    with pytest.raises(ConfigError, match=r"allowed_annotations\[0\]"):
        handler.validate("builtin")
