"""process.*: args, env, cwd, terminal, rlimits, no_new_privs, oomScoreAdj;
and the request facts that live beside the spec (stop signal, log path,
stdin)."""
from __future__ import annotations

import codecs
import os
import re
import signal

from crio_native._proto import api_pb2
from crio_native.spec.inputs import RPC, SpecBuild, SpecInputs, invalid
from crio_native.errors import InvalidArgument

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_ENV_KEY = re.compile(r"^[^=\x00]+$")
_ULIMIT = re.compile(r"^([a-z_]+)=(-?\d+)(?::(-?\d+))?$")
RLIMITS = ("as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
           "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")
UNLIMITED = 2**64 - 1


def _strings(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def args_from(config: api_pb2.ContainerConfig, image: dict) -> list[str]:
    """Kubernetes' rule: command replaces the image's Entrypoint and drops its
    Cmd; args replaces Cmd."""
    entrypoint = list(config.command) or _strings(image.get("Entrypoint"))
    if config.command:
        cmd = list(config.args)
    else:
        cmd = list(config.args) or _strings(image.get("Cmd"))
    return entrypoint + cmd


def with_args(build: SpecBuild, inputs: SpecInputs) -> None:
    args = args_from(inputs.config, inputs.image)
    if not args:
        raise invalid("command", "no command given and the image has no Entrypoint or Cmd")
    build.process["args"] = args


def merge_env(*layers: list[str]) -> list[str]:
    """KEY=VALUE lists merged in order; a later layer's value wins but the
    variable keeps the place it first had."""
    merged: dict[str, str] = {}
    for layer in layers:
        for entry in layer:
            key, _, value = entry.partition("=")
            merged[key] = value
    return [f"{k}={v}" for k, v in merged.items()]


def _hostname(inputs: SpecInputs) -> str:
    pod = inputs.sandbox
    if pod.hostname:
        return pod.hostname
    return inputs.node_hostname if pod.host_network else pod.name


def _replace_one_byte(e: UnicodeError) -> tuple[str, int]:
    assert isinstance(e, UnicodeDecodeError)
    return "\ufffd", e.start + 1


# Go's rule for a byte string that is not UTF-8: each byte that does not
# start a valid sequence becomes one U+FFFD (Python's "replace" would make
# one of a whole truncated sequence).
codecs.register_error("crio_native.one_fffd_per_byte", _replace_one_byte)


def env_text(value: bytes) -> str:
    """An env value (KeyValue.value, bytes since cri-api v0.36.2) as the
    text config.json can hold.  JSON strings are Unicode, so bytes that are
    not UTF-8 cannot reach the runtime as they are; we write what CRI-O and
    containerd write (a Go string of the bytes, through encoding/json): each
    invalid byte replaced with U+FFFD, valid UTF-8 unchanged."""
    return value.decode("utf-8", errors="crio_native.one_fffd_per_byte")


def with_env(build: SpecBuild, inputs: SpecInputs) -> None:
    request = []
    for i, kv in enumerate(inputs.config.envs):
        if not _ENV_KEY.match(kv.key):
            raise invalid(f"envs[{i}].key", f"not an environment variable name: {kv.key!r}")
        if b"\0" in kv.value:
            # execve would cut it there, and runc refuses it; the value may be
            # a secret, so the message does not show it
            raise invalid(f"envs[{i}].value", f"the value of {kv.key} contains a NUL byte")
        request.append(f"{kv.key}={env_text(kv.value)}")
    base = [f"PATH={DEFAULT_PATH}"]
    hostname = _hostname(inputs)
    if hostname:
        base.append(f"HOSTNAME={hostname}")
    if inputs.config.tty:
        base.append("TERM=xterm")
    image_env = [e for e in _strings(inputs.image.get("Env")) if "=" in e]
    build.process["env"] = merge_env(base, image_env, request)


def with_cwd(build: SpecBuild, inputs: SpecInputs) -> None:
    cwd = inputs.config.working_dir
    if cwd and not cwd.startswith("/"):
        raise invalid("working_dir", f"must be an absolute path, got {cwd!r}")
    if not cwd:
        # The image spec asks for an absolute WorkingDir; older builders wrote
        # relative ones, which Docker took as relative to /.
        cwd = os.path.normpath("/" + str(inputs.image.get("WorkingDir") or "").lstrip("/"))
    build.process["cwd"] = cwd


def with_terminal(build: SpecBuild, inputs: SpecInputs) -> None:
    build.process["terminal"] = bool(inputs.config.tty)
    build.stdin = inputs.config.stdin
    build.stdin_once = inputs.config.stdin_once
    if inputs.config.stdin_once and not inputs.config.stdin:
        raise invalid("stdin_once", "needs stdin")


def parse_ulimit(entry: str) -> dict:
    """CRI-O's default_ulimits syntax: name=soft[:hard], -1 for unlimited."""
    m = _ULIMIT.match(entry.strip())
    if not m or m.group(1) not in RLIMITS:
        raise ValueError(f"want name=soft[:hard] with name one of {', '.join(RLIMITS)}")
    soft = int(m.group(2))
    hard = int(m.group(3)) if m.group(3) is not None else soft
    soft, hard = (UNLIMITED if v == -1 else v for v in (soft, hard))
    if soft < 0 or hard < 0 or soft > hard:
        raise ValueError("soft and hard must be >= 0 (or -1) with soft <= hard")
    return {"type": f"RLIMIT_{m.group(1).upper()}", "soft": soft, "hard": hard}


def with_rlimits(build: SpecBuild, inputs: SpecInputs) -> None:
    """None by default, as CRI-O: the container inherits the daemon's limits
    (its systemd unit sets LimitNOFILE=1048576).  Configured ulimits win."""
    limits = []
    for entry in inputs.default_ulimits:
        try:
            limits.append(parse_ulimit(entry))
        except ValueError as e:
            raise InvalidArgument(f"{RPC}: default ulimit {entry!r}: {e}") from None
    if limits:
        build.process["rlimits"] = limits


def with_no_new_privs(build: SpecBuild, inputs: SpecInputs) -> None:
    build.process["noNewPrivileges"] = bool(inputs.security.no_new_privs)


MIN_OOM_SCORE_ADJ, MAX_OOM_SCORE_ADJ = -1000, 1000


def oom_score_adj_problem(value: int) -> str | None:
    """Why `value` cannot be written to /proc/<pid>/oom_score_adj; None if it can."""
    if MIN_OOM_SCORE_ADJ <= value <= MAX_OOM_SCORE_ADJ:
        return None
    return f"must be in [{MIN_OOM_SCORE_ADJ}, {MAX_OOM_SCORE_ADJ}], got {value}"


def with_oom_score_adj(build: SpecBuild, inputs: SpecInputs) -> None:
    value = inputs.config.linux.resources.oom_score_adj
    problem = oom_score_adj_problem(value)
    if problem:
        raise invalid("linux.resources.oom_score_adj", problem)
    if inputs.config.linux.HasField("resources"):
        build.process["oomScoreAdj"] = value


def stop_signal_name(config: api_pb2.ContainerConfig, image: dict) -> str:
    """The request's stop_signal, else the image's StopSignal, else SIGTERM."""
    if config.stop_signal != api_pb2.RUNTIME_DEFAULT:
        if config.stop_signal not in api_pb2.Signal.values():
            # proto3 enums are open: any int arrives
            raise invalid("stop_signal", f"{config.stop_signal} is not a Signal value")
        return api_pb2.Signal.Name(config.stop_signal)
    text = str(image.get("StopSignal") or "").strip().upper()
    if not text:
        return "SIGTERM"
    if text.isdigit():
        try:
            return signal.Signals(int(text)).name
        except ValueError:
            raise InvalidArgument(f"{RPC}: image config StopSignal: no signal {text}") from None
    return text if text.startswith("SIG") else "SIG" + text


def signal_number(name: str) -> int:
    """SIGTERM -> 15; SIGRTMINPLUS3 / SIGRTMIN+3 / SIGRTMAXMINUS1 as offsets."""
    m = re.match(r"^SIGRT(MIN|MAX)(?:(PLUS|MINUS|\+|-)(\d+))?$", name)
    if m:
        base = signal.SIGRTMIN if m.group(1) == "MIN" else signal.SIGRTMAX
        offset = int(m.group(3) or 0)
        return base + offset if m.group(2) in ("PLUS", "+") else base - offset
    try:
        return signal.Signals[name].value
    except KeyError:
        raise InvalidArgument(f"{RPC}: stop signal {name!r}: unknown signal") from None


def with_stop_signal(build: SpecBuild, inputs: SpecInputs) -> None:
    build.stop_signal = stop_signal_name(inputs.config, inputs.image)
    signal_number(build.stop_signal)


PATH_MAX, NAME_MAX = 4096, 255   # bytes, with the NUL; of one component
# The kubelet's log_path is <container>/<attempt>.log; each directory level
# is one more mkdir (os.makedirs recurses per missing level).
MAX_LOG_PATH_DEPTH = 32


def path_length_problem(path: str) -> str | None:
    """Why the kernel would refuse `path` for its length alone; None if it would not."""
    if len(path.encode()) >= PATH_MAX:
        return f"is {len(path.encode())} bytes long, more than a path can be ({PATH_MAX - 1})"
    longest = max(path.split("/"), key=lambda part: len(part.encode()))
    if len(longest.encode()) > NAME_MAX:
        return f"has a component of {len(longest.encode())} bytes (at most {NAME_MAX})"
    return None


def log_path_problem(rel: str) -> str | None:
    """Why config.log_path cannot name a file below the pod's log directory;
    None if it can (or is empty: no log)."""
    if not rel:
        return None
    parts = rel.split("/")
    if rel.startswith("/") or ".." in parts:
        return f"must be relative to the pod's log directory, got {rel!r}"
    if parts[-1] in ("", "."):
        return f"must name a file, got {rel!r}"
    if len(parts) > MAX_LOG_PATH_DEPTH:
        return f"is {len(parts)} levels deep (at most {MAX_LOG_PATH_DEPTH})"
    return path_length_problem(rel)


def with_log_path(build: SpecBuild, inputs: SpecInputs) -> None:
    """The CRI log file: config.log_path under the pod's log_directory."""
    rel = inputs.config.log_path
    if not rel:
        return
    problem = log_path_problem(rel)
    if problem:
        raise invalid("log_path", problem)
    if not inputs.sandbox.log_directory:
        raise invalid("log_path", "the pod has no log_directory")
    path = os.path.join(inputs.sandbox.log_directory, rel)
    problem = path_length_problem(path)
    if problem:
        raise invalid("log_path", f"below the pod's log_directory, {problem}")
    build.log_path = path
