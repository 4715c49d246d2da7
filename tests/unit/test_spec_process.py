"""process.*: args, env, cwd, terminal, rlimits, no_new_privs, oom_score_adj,
stop signal and log path; one varied field per case."""
from __future__ import annotations

import signal

import pytest

from crio_native._proto import api_pb2
from crio_native.errors import InvalidArgument
from crio_native.spec import process
from crio_native.spec.process import DEFAULT_PATH
from tests.unit.test_spec_support import apply, base_sandbox, config_with, make_inputs

IMAGE = {"Entrypoint": ["/entry"], "Cmd": ["--serve"]}


@pytest.mark.parametrize("fields, image, args", [
    ({}, IMAGE, ["/entry", "--serve"]),
    ({"command": ["/bin/sh"]}, IMAGE, ["/bin/sh"]),                 # command drops image Cmd
    ({"args": ["--debug"]}, IMAGE, ["/entry", "--debug"]),          # args replace Cmd
    ({"command": ["/bin/sh"], "args": ["-c", "x"]}, IMAGE, ["/bin/sh", "-c", "x"]),
    ({}, {"Cmd": ["sh"]}, ["sh"]),
    ({}, {"Entrypoint": ["/e"]}, ["/e"]),
    ({"args": ["echo", "hi"]}, {}, ["echo", "hi"]),
])
def test_args(fields, image, args):
    b = apply(process.with_args, make_inputs(config_with(**fields), image=image))
    assert b.process["args"] == args


def test_no_command_anywhere_is_invalid():
    with pytest.raises(InvalidArgument, match=r"config\.command: .*no Entrypoint or Cmd"):
        apply(process.with_args, make_inputs(image={}))


def _env(b) -> dict[str, str]:
    return dict(e.split("=", 1) for e in b.process["env"])


@pytest.mark.parametrize("image_env, envs, want", [
    ([], [], {"PATH": DEFAULT_PATH, "HOSTNAME": "web"}),
    (["PATH=/bin"], [], {"PATH": "/bin"}),
    (["A=image"], [("A", "request")], {"A": "request"}),
    (["A=1", "B=2"], [("C", "3")], {"A": "1", "B": "2", "C": "3"}),
    (["A=x=y"], [], {"A": "x=y"}),
    (["garbage"], [], {}),
    ([], [("EMPTY", "")], {"EMPTY": ""}),
])
def test_env_merge(image_env, envs, want):
    cfg = config_with(envs=[api_pb2.KeyValue(key=k, value=v.encode()) for k, v in envs])
    env = _env(apply(process.with_env, make_inputs(cfg, image={"Env": image_env})))
    for key, value in want.items():
        assert env[key] == value
    assert "garbage" not in env


def test_env_keeps_first_position_of_overridden_variable():
    cfg = config_with(envs=[api_pb2.KeyValue(key="A", value=b"2")])
    b = apply(process.with_env, make_inputs(cfg, image={"Env": ["A=1", "B=1"]}))
    keys = [e.split("=")[0] for e in b.process["env"]]
    assert keys.index("A") < keys.index("B")


@pytest.mark.parametrize("fields, sandbox, want", [
    ({}, {}, "web"),
    ({}, {"hostname": "custom"}, "custom"),
    ({}, {"network_mode": 2}, "node-1"),
])
def test_env_hostname(fields, sandbox, want):
    inputs = make_inputs(config_with(**fields), sandbox=base_sandbox(**sandbox),
                         node_hostname="node-1")
    assert _env(apply(process.with_env, inputs))["HOSTNAME"] == want


def test_env_tty_sets_term():
    assert _env(apply(process.with_env, make_inputs(config_with(tty=True))))["TERM"] == "xterm"


@pytest.mark.parametrize("key", ["", "A=B"])
def test_env_bad_key(key):
    cfg = config_with(envs=[api_pb2.KeyValue(key=key, value=b"v")])
    with pytest.raises(InvalidArgument, match=r"config\.envs\[0\]\.key"):
        apply(process.with_env, make_inputs(cfg))


# KeyValue.value is bytes (cri-api v0.36.2): UTF-8 passes as it is; every
# byte that is not part of valid UTF-8 becomes one U+FFFD, as Go's
# encoding/json writes a CRI-O or containerd spec.
@pytest.mark.parametrize("value, want", [
    (b"plain", "plain"),
    ("h\u00e9llo \u20ac \U0001f600".encode(), "h\u00e9llo \u20ac \U0001f600"),
    (b"\xff\xfe", "\ufffd\ufffd"),
    (b"a\xe2\x82b", "a\ufffd\ufffdb"),          # a truncated sequence: one per byte
    (b"\xed\xa0\x80", "\ufffd\ufffd\ufffd"),       # an encoded surrogate is not UTF-8
    (b"\xc0\xaf", "\ufffd\ufffd"),                # nor is an overlong form
    (b"x\xf0\x9f\x98", "x\ufffd\ufffd\ufffd"),
    (b"", ""),
])
def test_env_value_bytes(value, want):
    cfg = config_with(envs=[api_pb2.KeyValue(key="SECRET", value=value)])
    assert _env(apply(process.with_env, make_inputs(cfg)))["SECRET"] == want


def test_env_value_from_the_wire_that_is_not_utf8():
    # What a kubelet >= 1.36.2 sends for a Secret with binary data: on the
    # wire a bytes field is a string field, but a string-typed KeyValue.value
    # failed to parse the whole request.
    placeholder = b"ok!!"
    config = config_with(envs=[api_pb2.KeyValue(key="SECRET", value=placeholder)])
    wire = api_pb2.CreateContainerRequest(pod_sandbox_id="p", config=config).SerializeToString()
    assert wire.count(placeholder) == 1
    wire = wire.replace(placeholder, b"ok\xff\x80")
    request = api_pb2.CreateContainerRequest.FromString(wire)
    assert request.config.envs[0].value == b"ok\xff\x80"
    b = apply(process.with_env, make_inputs(request.config))
    assert "SECRET=ok\ufffd\ufffd" in b.process["env"]


def test_env_value_with_nul_is_invalid_and_not_shown():
    cfg = config_with(envs=[api_pb2.KeyValue(key="TOKEN", value=b"hid\0den")])
    with pytest.raises(InvalidArgument, match=r"config\.envs\[0\]\.value: .*TOKEN.*NUL") as e:
        apply(process.with_env, make_inputs(cfg))
    assert "hid" not in str(e.value)


@pytest.mark.parametrize("working_dir, image_dir, want", [
    ("", None, "/"),
    ("", "/srv", "/srv"),
    ("", "srv/app", "/srv/app"),          # relative WorkingDir from old builders
    ("/work", "/srv", "/work"),
    ("", "/", "/"),
])
def test_cwd(working_dir, image_dir, want):
    image = {"Cmd": ["x"]} | ({"WorkingDir": image_dir} if image_dir is not None else {})
    b = apply(process.with_cwd, make_inputs(config_with(working_dir=working_dir), image=image))
    assert b.process["cwd"] == want


def test_cwd_relative_request_is_invalid():
    with pytest.raises(InvalidArgument, match=r"config\.working_dir"):
        apply(process.with_cwd, make_inputs(config_with(working_dir="work")))


@pytest.mark.parametrize("fields, terminal, stdin, once", [
    ({}, False, False, False),
    ({"tty": True}, True, False, False),
    ({"stdin": True}, False, True, False),
    ({"stdin": True, "stdin_once": True}, False, True, True),
])
def test_terminal_and_stdin(fields, terminal, stdin, once):
    b = apply(process.with_terminal, make_inputs(config_with(**fields)))
    assert (b.process["terminal"], b.stdin, b.stdin_once) == (terminal, stdin, once)


def test_stdin_once_without_stdin_is_invalid():
    with pytest.raises(InvalidArgument, match=r"config\.stdin_once"):
        apply(process.with_terminal, make_inputs(config_with(stdin_once=True)))


@pytest.mark.parametrize("ulimits, want", [
    ((), None),
    (("nofile=1024:4096",), [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096}]),
    (("nproc=50",), [{"type": "RLIMIT_NPROC", "soft": 50, "hard": 50}]),
    (("core=-1",), [{"type": "RLIMIT_CORE", "soft": 2**64 - 1, "hard": 2**64 - 1}]),
])
def test_rlimits(ulimits, want):
    b = apply(process.with_rlimits, make_inputs(default_ulimits=ulimits))
    assert b.process.get("rlimits") == want


@pytest.mark.parametrize("entry", ["nofile", "files=1", "nofile=10:5", "nofile=a"])
def test_rlimits_bad(entry):
    with pytest.raises(InvalidArgument, match="default ulimit"):
        apply(process.with_rlimits, make_inputs(default_ulimits=(entry,)))


@pytest.mark.parametrize("value", [True, False])
def test_no_new_privs(value):
    cfg = config_with(linux__security_context__no_new_privs=value)
    assert apply(process.with_no_new_privs, make_inputs(cfg)).process["noNewPrivileges"] is value


@pytest.mark.parametrize("value", [-999, 0, 1000])
def test_oom_score_adj(value):
    cfg = config_with(linux__resources__oom_score_adj=value)
    assert apply(process.with_oom_score_adj, make_inputs(cfg)).process["oomScoreAdj"] == value


def test_oom_score_adj_absent_without_resources():
    assert "oomScoreAdj" not in apply(process.with_oom_score_adj, make_inputs()).process


def test_oom_score_adj_out_of_range():
    cfg = config_with(linux__resources__oom_score_adj=1001)
    with pytest.raises(InvalidArgument, match=r"config\.linux\.resources\.oom_score_adj"):
        apply(process.with_oom_score_adj, make_inputs(cfg))


@pytest.mark.parametrize("request_signal, image_signal, want", [
    (api_pb2.RUNTIME_DEFAULT, None, "SIGTERM"),
    (api_pb2.RUNTIME_DEFAULT, "SIGQUIT", "SIGQUIT"),
    (api_pb2.RUNTIME_DEFAULT, "int", "SIGINT"),
    (api_pb2.RUNTIME_DEFAULT, "9", "SIGKILL"),
    (api_pb2.SIGUSR1, "SIGQUIT", "SIGUSR1"),
    (api_pb2.SIGRTMINPLUS3, None, "SIGRTMINPLUS3"),
])
def test_stop_signal(request_signal, image_signal, want):
    image = {"Cmd": ["x"]} | ({"StopSignal": image_signal} if image_signal else {})
    b = apply(process.with_stop_signal, make_inputs(config_with(stop_signal=request_signal),
                                                    image=image))
    assert b.stop_signal == want


@pytest.mark.parametrize("name, number", [
    ("SIGTERM", signal.SIGTERM), ("SIGRTMINPLUS3", signal.SIGRTMIN + 3),
    ("SIGRTMIN+3", signal.SIGRTMIN + 3), ("SIGRTMAXMINUS1", signal.SIGRTMAX - 1),
    ("SIGRTMAX", signal.SIGRTMAX),
])
def test_signal_number(name, number):
    assert process.signal_number(name) == number


def test_unknown_image_stop_signal():
    with pytest.raises(InvalidArgument, match="stop signal 'SIGNOPE'"):
        apply(process.with_stop_signal, make_inputs(image={"StopSignal": "NOPE"}))


@pytest.mark.parametrize("log_path, want", [
    ("app/0.log", "/var/log/pods/default_web/app/0.log"),
    ("", ""),
])
def test_log_path(log_path, want):
    assert apply(process.with_log_path, make_inputs(config_with(log_path=log_path))).log_path == want


@pytest.mark.parametrize("log_path", ["/abs.log", "../escape.log", "a/../../b"])
def test_log_path_must_stay_in_the_pod_directory(log_path):
    with pytest.raises(InvalidArgument, match=r"config\.log_path"):
        apply(process.with_log_path, make_inputs(config_with(log_path=log_path)))
