"""Landlock per container over real gRPC (issue 20, item 3), on the
built-in runtime and this host's kernel (Landlock ABI 7 here).  The pod
annotation landlock.crio-native.io/<container> is honoured by a handler
that allows it: a write to a read_write path gets through, a write
anywhere else fails with EACCES, a read_only path reads, an ungranted TCP
connect on the pod's own loopback fails with EACCES while a granted one
connects, and an exec'd process is held to the same policy.  A handler that
does not list the prefix ignores the annotation; runc, which cannot apply
Landlock, refuses a required policy; a malformed one is INVALID_ARGUMENT."""
from __future__ import annotations

import json

import grpc
import pytest

from crio_native._proto import api_pb2
from crio_native.linux import landlock
from tests.e2e.daemon import run_cli
from tests.e2e.test_container_security import exec_sync, run_once, start_running
from tests.e2e.test_containers import (container_config, create, cstatus, rpc_code,
                                       serving_image)
from tests.fixtures.oci_builder import ImageBuilder, Pusher, symlink
from tests.fixtures.registry import registry  # noqa: F401

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(landlock.abi_version() < 4,
                                 reason="needs a kernel with Landlock ABI 4 (TCP rules); "
                                        "this host has ABI 7")]

APPLETS = ("nc", "touch", "mkdir", "rm")
PREFIX = "landlock.crio-native.io"
HANDLERS_CONF = f"""
[runtime.runtimes.builtin]
runtime_type = "builtin"
allowed_annotations = ["{PREFIX}"]

[runtime.runtimes.builtin-plain]
runtime_type = "builtin"

[runtime.runtimes.runc]
runtime_type = "oci"
runtime_path = "/usr/sbin/runc"
allowed_annotations = ["{PREFIX}"]
"""
# /dev/null: sh gives a background job its stdin from there (and a rule on a
# file keeps only the rights that apply to files)
POLICY = {"read_only": ["/bin", "/etc"], "read_write": ["/data", "/dev/null"],
          "tcp_bind": [8080], "tcp_connect": [8080]}
# Each line: a tag and what happened; 2>&1 keeps the shell's own messages.
SCRIPT = """
echo hello > /data/out && echo "RW ok"
(echo x > /etc/hostname) 2>&1 | sed 's/^/ETC /' || true
(echo x > /new-file) 2>&1 | sed 's/^/ROOT /'
echo "READ $(cat /etc/hostname)"
nc -l -p 8080 -e echo served &
sleep 0.5
echo "CONNECT-8080 $(nc 127.0.0.1 8080 2>&1)"
echo "CONNECT-9090 $(nc 127.0.0.1 9090 2>&1)"
"""


@pytest.fixture(scope="module")
def landlock_image(registry):  # noqa: F811
    image = (ImageBuilder().busybox()
             .add_layer([symlink(f"bin/{a}", "busybox") for a in (*APPLETS, "sed")])
             .build())
    Pusher(registry.url).push_image("e2e/landlock", "1", image)
    return f"{registry.host}/e2e/landlock:1", image


@pytest.fixture
def ldaemon(daemon_factory, landlock_image, tmp_path):
    d = daemon_factory("--cni-plugin-dir", "/usr/lib/cni")
    d.network_dir.mkdir(parents=True, exist_ok=True)
    (d.network_dir / "10-crn-lo.conflist").write_text(json.dumps(
        {"cniVersion": "1.0.0", "name": "crn-lo", "plugins": [{"type": "loopback"}]}))
    drop_ins = d.base / "crio-native.conf.d"
    drop_ins.mkdir(parents=True, exist_ok=True)
    (drop_ins / "50-landlock.conf").write_text(HANDLERS_CONF)
    yield from serving_image(d.start(), landlock_image, tmp_path)


def pod(d, handler: str, name: str, policy) -> str:
    """A pod with its own network namespace (loopback only) whose container
    `c` gets `policy` (a dict, or a raw string)."""
    value = policy if isinstance(policy, str) else json.dumps(policy)
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="default", uid=f"uid-{name}"),
        hostname=name, log_directory=str(d.pod_logs / name),
        annotations={f"{PREFIX}/c": value})
    config.linux.security_context.namespace_options.network = api_pb2.POD
    return d.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(
        config=config, runtime_handler=handler), timeout=60).pod_sandbox_id


def with_data(d, config, tmp_path) -> api_pb2.ContainerConfig:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    config.mounts.add(container_path="/data", host_path=str(data))
    return config


def lines(output: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in output.splitlines():
        tag, _, rest = line.partition(" ")
        out.setdefault(tag, rest)
    return out


def run_script(d, handler: str, name: str, tmp_path) -> tuple[dict[str, str], str]:
    """SCRIPT run once in a new pod `name` of `handler` annotated with POLICY,
    with tmp_path/data at /data: its tagged lines, and its whole output."""
    p = pod(d, handler, name, POLICY)
    _, output = run_once(d, p, with_data(d, container_config(
        d, name="c", command=["sh", "-c", SCRIPT]), tmp_path))
    return lines(output), output


def test_policy_is_enforced_on_the_builtin_handler(ldaemon, tmp_path):
    d = ldaemon
    got, output = run_script(d, "builtin", "ll-on", tmp_path)
    assert "RW" in got, output
    assert (tmp_path / "data" / "out").read_text() == "hello\n"
    assert "Permission denied" in got.get("ETC", ""), output     # read_only: no write
    assert "Permission denied" in got.get("ROOT", ""), output    # not granted at all
    assert got.get("READ") == "ll-on", output                    # read_only reads
    assert got.get("CONNECT-8080") == "served", output           # granted bind + connect
    assert "Permission denied" in got.get("CONNECT-9090", ""), output   # EACCES, not refused


def test_exec_is_held_to_the_same_policy(ldaemon, tmp_path):
    d = ldaemon
    p = pod(d, "builtin", "ll-exec", POLICY)
    cid = start_running(d, p, with_data(d, container_config(d, name="c"), tmp_path))
    code, out = exec_sync(d, cid, "echo x > /data/from-exec && echo x > /elsewhere")
    assert code != 0 and "Permission denied" in out, out
    assert (tmp_path / "data" / "from-exec").read_text() == "x\n"
    pid = json.loads(cstatus(d, cid, verbose=True).info["info"])["pid"]
    status = open(f"/proc/{pid}/status").read()
    assert "NoNewPrivs:\t1" in status     # set for landlock_restrict_self


def test_annotation_is_ignored_when_the_handler_does_not_allow_it(ldaemon, tmp_path):
    d = ldaemon
    got, output = run_script(d, "builtin-plain", "ll-off", tmp_path)
    assert "ROOT" not in got and "ETC" not in got, output     # the writes went through
    assert "refused" in got.get("CONNECT-9090", ""), output  # ECONNREFUSED, not EACCES
    assert f"{PREFIX}/c" in d.log() and "allowed_annotations" in d.log()


def test_required_policy_is_refused_by_runc(ldaemon):
    d = ldaemon
    p = pod(d, "runc", "ll-runc", dict(POLICY, required=True))
    code, details = rpc_code(lambda: create(d, p, container_config(d, name="c")))
    assert code == grpc.StatusCode.FAILED_PRECONDITION, details
    assert f"{PREFIX}/c" in details and "'runc' cannot apply Landlock" in details


def test_optional_policy_on_runc_runs_without_it(ldaemon, tmp_path):
    d = ldaemon
    p = pod(d, "runc", "ll-runc-opt", POLICY)
    code, output = run_once(d, p, with_data(d, container_config(
        d, name="c", command=["sh", "-c", "echo x > /new-file && echo WROTE"]), tmp_path))
    assert "WROTE" in output and "cannot apply Landlock" in d.log()


def test_malformed_policy_is_invalid_argument_naming_the_annotation(ldaemon):
    d = ldaemon
    p = pod(d, "builtin", "ll-bad", '{"read_only": "/"}')
    code, details = rpc_code(lambda: create(d, p, container_config(d, name="c")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    assert f"pod annotation {PREFIX}/c: read_only: must be a list" in details


def test_status_reports_the_landlock_abi(ldaemon):
    info = ldaemon.runtime.Status(api_pb2.StatusRequest(verbose=True)).info
    handlers = json.loads(info["handler_security"])
    assert handlers["builtin"]["landlock_abi"] == landlock.abi_version()
    assert handlers["runc"]["landlock_abi"] == 0
    assert json.loads(info["native"])["landlock_abi"] == landlock.abi_version()
    got = run_cli("status", "--socket", str(ldaemon.socket), "--json")
    assert got.returncode == 0, got.stderr
    shown = json.loads(got.stdout)["handlers"]
    assert shown["builtin"]["landlock_abi"] == shown["(default)"]["landlock_abi"] > 0
    assert shown["runc"]["landlock_abi"] == 0


def test_a_path_missing_in_the_container_fails_create_naming_it(ldaemon):
    d = ldaemon
    p = pod(d, "builtin", "ll-missing", {"read_only": ["/bin", "/no-such-dir"]})
    code, details = rpc_code(lambda: create(d, p, container_config(d, name="c")))
    assert code == grpc.StatusCode.FAILED_PRECONDITION, details
    assert "landlock" in details and "/no-such-dir" in details, details
