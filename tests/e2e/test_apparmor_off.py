"""AppArmor over real gRPC on a host without AppArmor (this one), on the
built-in runtime and runc: RuntimeDefault and Unconfined (either field, or
none) are no-ops as in CRI-O and the container runs; a Localhost profile
cannot be honoured and is refused with FAILED_PRECONDITION naming the field
and the profile, never silently ignored; Status says AppArmor is off.
The enforcing side runs in the VM: tests/e2e/test_apparmor.py."""
from __future__ import annotations

import json

import grpc
import pytest

from crio_native._proto import api_pb2
from crio_native.linux import apparmor
from tests.e2e.test_container_security import run_once, sdaemon, security_image, shell, \
    start_pod  # noqa: F401
from tests.e2e.test_apparmor import with_apparmor
from tests.e2e.test_containers import create, rpc_code
from tests.fixtures.registry import registry  # noqa: F401

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(apparmor.enabled(), reason="this host runs AppArmor: the "
                                 "no-AppArmor behaviour is checked on hosts without it")]
SP = api_pb2.SecurityProfile


@pytest.mark.parametrize("field, deprecated", [
    (None, None), (SP(profile_type=SP.RuntimeDefault), "runtime/default"),
    (SP(profile_type=SP.Unconfined), "unconfined"), (None, "unconfined"),
])
def test_default_and_unconfined_are_no_ops(sdaemon, handler, field, deprecated):  # noqa: F811
    d = sdaemon
    pod = start_pod(d, handler, f"aa-noop-{handler}")
    code, out = run_once(d, pod, with_apparmor(shell(d, "echo ran"), field, deprecated))
    assert code == 0 and out == "ran\n"
    spec_checked = create(d, pod, with_apparmor(shell(d, "true", name="spec"), field, deprecated))
    status = d.runtime.ContainerStatus(api_pb2.ContainerStatusRequest(
        container_id=spec_checked, verbose=True))
    spec = json.loads(status.info["info"])["runtimeSpec"]
    assert "args" in spec["process"] and "apparmorProfile" not in spec["process"]


@pytest.mark.parametrize("field, deprecated, named", [
    (SP(profile_type=SP.Localhost, localhost_ref="my-prof"), None,
     "linux.security_context.apparmor.localhost_ref"),
    (None, "localhost/my-prof", "linux.security_context.apparmor_profile"),
    # the new field wins, so its Localhost is refused despite the old one
    (SP(profile_type=SP.Localhost, localhost_ref="my-prof"), "unconfined",
     "linux.security_context.apparmor.localhost_ref"),
])
def test_localhost_profile_is_refused(sdaemon, handler, field, deprecated, named):  # noqa: F811
    d = sdaemon
    pod = start_pod(d, handler, f"aa-local-{handler}")
    code, details = rpc_code(lambda: create(d, pod, with_apparmor(shell(d, "true"), field,
                                                                  deprecated)))
    assert code == grpc.StatusCode.FAILED_PRECONDITION, details
    assert named in details and "'my-prof'" in details and "not enabled" in details


def test_status_says_apparmor_is_off(sdaemon):  # noqa: F811
    info = sdaemon.runtime.Status(api_pb2.StatusRequest(verbose=True)).info
    assert json.loads(info["native"])["apparmor_enabled"] is False
    assert {h["apparmor"] for h in json.loads(info["handler_security"]).values()} == {False}
