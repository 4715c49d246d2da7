"""The Landlock policy annotation: its parser (one malformed field per
case), and with_landlock: honoured only when the handler allows the
annotation, refused or ignored where the handler cannot apply it, never
taken from the request's own annotations."""
from __future__ import annotations

import json
import logging

import pytest

from crio_native.config import Config
from crio_native.errors import FailedPrecondition, InvalidArgument
from crio_native.spec import build_container_spec
from crio_native.spec import landlock
from tests.unit.test_spec_support import apply, base_sandbox, config_with, make_inputs

KEY = "landlock.crio-native.io/app"


def test_full_policy_parses_and_normalises():
    p = landlock.parse_policy(json.dumps({
        "read_only": ["/", "/usr", "/"], "read_write": ["/tmp/rw"],
        "tcp_bind": [8080, 80], "tcp_connect": [443, 443], "required": True}))
    assert p == landlock.Policy(read_only=("/", "/usr"), read_write=("/tmp/rw",),
                                tcp_bind=(80, 8080), tcp_connect=(443,), required=True)
    assert landlock.parse_policy(p.to_json()) == p


def test_empty_policy_denies_everything_and_is_not_required():
    assert landlock.parse_policy("{}") == landlock.Policy()


@pytest.mark.parametrize("text, problem", [
    ("", "not valid JSON"),
    ("{", "not valid JSON"),
    ("[]", "must be a JSON object"),
    ('{"read_only": "/"}', "read_only: must be a list"),
    ('{"read_only": ["usr"]}', r"read_only\[0\]: must be an absolute path"),
    ('{"read_write": ["/a", 3]}', r"read_write\[1\]: must be an absolute path"),
    ('{"read_write": ["/a/../etc"]}', r"read_write\[0\]: must not contain"),
    ('{"tcp_bind": [70000]}', r"tcp_bind\[0\]: must be a port number"),
    ('{"tcp_connect": [-1]}', r"tcp_connect\[0\]: must be a port number"),
    ('{"tcp_connect": ["80"]}', r"tcp_connect\[0\]: must be a port number"),
    ('{"tcp_connect": [true]}', r"tcp_connect\[0\]: must be a port number"),
    ('{"tcp_connect": 80}', "tcp_connect: must be a list"),
    ('{"required": "yes"}', "required: must be true or false"),
    ('{"read_only": [], "writable": []}', "unknown key.*'writable'"),
])
def test_malformed_policies(text, problem):
    with pytest.raises(landlock.PolicyError, match=problem):
        landlock.parse_policy(text)


def _config(allowed: list[str]) -> Config:
    cfg = Config()
    cfg.runtime.runtimes["builtin"].allowed_annotations = allowed
    return cfg


def _inputs(value: str | None, *, allowed=("landlock.crio-native.io",), abi=7,
            handler="builtin", config=None):
    annotations = {} if value is None else {KEY: value}
    sandbox = base_sandbox(annotations=annotations, runtime_handler=handler)
    return make_inputs(config or config_with(), sandbox=sandbox,
                       daemon=_config(list(allowed)), landlock_abi=abi)


POLICY = json.dumps({"read_only": ["/"], "read_write": ["/tmp"], "tcp_connect": [80]})


def test_allowed_policy_goes_to_the_spec_annotation():
    spec = apply(landlock.with_landlock, _inputs(POLICY)).spec
    assert json.loads(spec["annotations"][landlock.SPEC_ANNOTATION]) == {
        "read_only": ["/"], "read_write": ["/tmp"], "tcp_bind": [], "tcp_connect": [80],
        "required": False}


def test_not_allowed_is_ignored_with_a_log_line(caplog):
    caplog.set_level(logging.INFO)
    spec = apply(landlock.with_landlock, _inputs(POLICY, allowed=())).spec
    assert landlock.SPEC_ANNOTATION not in spec["annotations"]
    assert KEY in caplog.text and "allowed_annotations" in caplog.text


def test_other_containers_policy_does_not_apply():
    sandbox = base_sandbox(annotations={"landlock.crio-native.io/other": POLICY},
                           runtime_handler="builtin")
    inputs = make_inputs(sandbox=sandbox, daemon=_config(["landlock.crio-native.io"]),
                         landlock_abi=7)
    assert landlock.SPEC_ANNOTATION not in apply(landlock.with_landlock, inputs).spec[
        "annotations"]


def test_malformed_policy_is_invalid_naming_the_annotation():
    with pytest.raises(InvalidArgument, match=rf"pod annotation {KEY}: not valid JSON"):
        apply(landlock.with_landlock, _inputs("{nope"))


def test_required_policy_on_a_handler_without_landlock_is_refused():
    value = json.dumps({"read_only": ["/"], "required": True})
    with pytest.raises(FailedPrecondition, match=rf"{KEY}: the policy is required but runtime "
                                                 r"handler 'builtin' cannot apply Landlock"):
        apply(landlock.with_landlock, _inputs(value, abi=0))


def test_optional_policy_on_a_handler_without_landlock_runs_without_it(caplog):
    spec = apply(landlock.with_landlock, _inputs(POLICY, abi=0)).spec
    assert landlock.SPEC_ANNOTATION not in spec["annotations"]
    assert "cannot apply Landlock" in caplog.text


def test_the_request_cannot_set_the_runtime_annotation_itself():
    cfg = config_with(annotations={landlock.SPEC_ANNOTATION: '{"read_write": ["/"]}'})
    spec = build_container_spec(_inputs(None, config=cfg)).spec
    assert landlock.SPEC_ANNOTATION not in spec["annotations"]
    spec = build_container_spec(_inputs(POLICY, config=cfg)).spec
    assert json.loads(spec["annotations"][landlock.SPEC_ANNOTATION])["read_write"] == ["/tmp"]
