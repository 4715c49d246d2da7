"""AppArmor enforcing, over real gRPC, on the built-in runtime and runc:
RuntimeDefault runs the container (and what is exec'd in it) under
crio-native-default in enforce mode; a Localhost profile the test loads
with apparmor_parser confines it and denies the write it forbids, through
either the new or the deprecated field; Unconfined runs unconfined; a
profile that is not loaded is refused with FAILED_PRECONDITION naming the
field and the profile.

Runs in the vmrun.sh VM: `make test` (or `make test-apparmor`) boots it
with `--apparmor` and runs `-m vm_apparmor`; elsewhere the
requires_apparmor marker skips it."""
from __future__ import annotations

import json
import subprocess

import grpc
import pytest

from crio_native._proto import api_pb2
from tests.e2e.daemon import Daemon
from tests.e2e.test_container_security import (exec_sync, remove_pod, run_once, shell,
                                               start_pod, start_running)
from tests.e2e.test_containers import (busybox_image, create, remove_all_pods,  # noqa: F401
                                       rpc_code, serving_image)
from tests.e2e.test_cri_selinux import start_slow
from tests.fixtures.registry import registry  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.vm_apparmor, pytest.mark.requires_apparmor]

SP = api_pb2.SecurityProfile
CURRENT = "cat /proc/self/attr/current"
TEST_PROFILE = "crn-test-no-data-write"
PROFILE_TEXT = f"""
profile {TEST_PROFILE} flags=(attach_disconnected,mediate_deleted) {{
  file,
  capability,
  signal (receive) peer=unconfined,
  deny /tmp/** w,
}}
"""


@pytest.fixture(scope="module")
def aa(busybox_image, tmp_path_factory):  # noqa: F811
    subprocess.run(["apparmor_parser", "-r"], input=PROFILE_TEXT.encode(), check=True)
    base = tmp_path_factory.mktemp("cri-apparmor")
    d = Daemon(base / "daemon")
    try:
        start_slow(d)   # the VM emulates its CPU: one daemon for the module
        yield from serving_image(d, busybox_image, base)
    finally:
        d.stop()
        subprocess.run(["apparmor_parser", "-R"], input=PROFILE_TEXT.encode(), check=False)


@pytest.fixture(autouse=True)
def _pods_removed(aa):
    yield
    remove_all_pods(aa)


def with_apparmor(config, field=None, deprecated=None):
    """`config` with the AppArmor profile in the new field and/or the
    deprecated one (apparmor_profile)."""
    sc = config.linux.security_context
    if field is not None:
        sc.apparmor.CopyFrom(field)
    if deprecated is not None:
        sc.apparmor_profile = deprecated
    return config


def _current(text: str) -> str:
    return text.strip().rstrip("\0")


def test_runtime_default_is_crio_native_default(aa, handler):
    pod = start_pod(aa, handler, f"aa-default-{handler}")
    code, out = run_once(aa, pod, with_apparmor(shell(aa, CURRENT, name="d1"),
                                                SP(profile_type=SP.RuntimeDefault)))
    assert code == 0 and _current(out) == "crio-native-default (enforce)", out
    # neither field set: RuntimeDefault too; and an exec'd process gets it
    cid = start_running(aa, pod, with_apparmor(shell(aa, "sleep 1000", name="d2")))
    code, out = exec_sync(aa, cid, CURRENT)
    assert _current(out) == "crio-native-default (enforce)", out
    remove_pod(aa, pod)


def _host_pid_pod(d, handler: str, name: str) -> str:
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="default", uid=f"uid-{name}"),
        hostname=name, log_directory=str(d.pod_logs / name))
    opts = config.linux.security_context.namespace_options
    opts.network, opts.pid = api_pb2.NODE, api_pb2.NODE
    return d.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(
        config=config, runtime_handler=handler), timeout=60).pod_sandbox_id


def test_runtime_default_keeps_signals_inside(aa, handler):
    """crio-native-default receives signals from unconfined processes but
    sends none to them: from the host's PID namespace, root with CAP_KILL
    may not signal the (unconfined) init; Unconfined may."""
    pod = _host_pid_pod(aa, handler, f"aa-signal-{handler}")
    script = "kill -0 1 2>&1; echo rc=$?"

    def host_pid(config):
        opts = config.linux.security_context.namespace_options
        opts.network, opts.pid = api_pb2.NODE, api_pb2.NODE
        return config

    _, confined = run_once(aa, pod, host_pid(shell(aa, script, name="s1")))
    assert "Permission denied" in confined and "rc=1" in confined, confined
    _, free = run_once(aa, pod, with_apparmor(host_pid(shell(aa, script, name="s2")),
                                              SP(profile_type=SP.Unconfined)))
    assert free.strip() == "rc=0", free


@pytest.mark.parametrize("field, deprecated", [
    (SP(profile_type=SP.Localhost, localhost_ref=TEST_PROFILE), None),
    (None, f"localhost/{TEST_PROFILE}"),
])
def test_localhost_profile_confines_and_denies(aa, handler, field, deprecated):
    pod = start_pod(aa, handler, f"aa-local-{handler}")
    script = f"{CURRENT}; echo; echo x > /tmp/f && echo WROTE; echo x > /etc/f && echo ETC"
    code, out = run_once(aa, pod, with_apparmor(shell(aa, script), field, deprecated))
    assert out.splitlines()[0].rstrip("\0") == f"{TEST_PROFILE} (enforce)", out
    assert "Permission denied" in out and "WROTE" not in out, out
    assert "ETC" in out, out     # what the profile allows still works


def test_unconfined(aa, handler):
    pod = start_pod(aa, handler, f"aa-unconf-{handler}")
    code, out = run_once(aa, pod, with_apparmor(shell(aa, CURRENT),
                                                SP(profile_type=SP.Unconfined),
                                                "runtime/default"))
    assert _current(out) == "unconfined", out


def test_unknown_profile_is_refused(aa, handler):
    pod = start_pod(aa, handler, f"aa-unknown-{handler}")
    code, details = rpc_code(lambda: create(aa, pod, with_apparmor(
        shell(aa, "true"), SP(profile_type=SP.Localhost, localhost_ref="no-such-profile"))))
    assert code == grpc.StatusCode.FAILED_PRECONDITION, details
    assert "apparmor.localhost_ref" in details and "'no-such-profile' is not loaded" in details


def test_status_says_apparmor_is_on(aa):
    info = aa.runtime.Status(api_pb2.StatusRequest(verbose=True)).info
    assert json.loads(info["native"])["apparmor_enabled"] is True
    assert json.loads(info["handler_security"])["builtin"]["apparmor"] is True
