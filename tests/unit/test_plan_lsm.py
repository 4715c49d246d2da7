"""AppArmor and Landlock in the built-in runtime's launch plan: the records
(the child walks them at fixed steps, src/_native/launch.c), the rights each
Landlock ABI handles, no_new_privs where landlock_restrict_self
needs it, and the record numbers against src/_native/plan.h.  No root."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from crio_native.errors import FailedPrecondition, InvalidArgument
from crio_native.linux import landlock as ll
from crio_native.runtime.builtin import records as r
from crio_native.runtime.builtin.plan import HostFacts, exec_records, plan_records
from crio_native.runtime.builtin.records import Rec
from crio_native.spec.landlock import SPEC_ANNOTATION
from tests.unit.test_plan_build import BASE, of

REPO = Path(__file__).resolve().parents[2]
HOST = dict(last_cap=40, oom_score_adj=0, can_lower_oom=False)
POLICY = {"read_only": ["/"], "read_write": ["/tmp"], "tcp_bind": [8080],
          "tcp_connect": [80, 443], "required": True}


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "rootfs").mkdir()
    return tmp_path


def spec_with(profile=None, policy=None, **process):
    spec = copy.deepcopy(BASE)
    spec["process"].update(process)
    if profile is not None:
        spec["process"]["apparmorProfile"] = profile
    if policy is not None:
        spec["annotations"] = {SPEC_ANNOTATION: json.dumps(policy)}
    return spec


# ---- AppArmor ----------------------------------------------------------------

def test_profile_record_where_apparmor_is_on(bundle):
    recs = plan_records(spec_with("crio-native-default"), bundle,
                        host=HostFacts(**HOST, apparmor_enabled=True))
    assert of(recs, Rec.APPARMOR) == [("crio-native-default",)]


def test_profile_ignored_where_apparmor_is_off(bundle, caplog):
    caplog.set_level("DEBUG")
    recs = plan_records(spec_with("p1"), bundle, host=HostFacts(**HOST))
    assert of(recs, Rec.APPARMOR) == []
    assert "AppArmor is disabled" in caplog.text


def test_malformed_profile_is_invalid(bundle):
    with pytest.raises(InvalidArgument, match="process.apparmorProfile"):
        plan_records(spec_with("a\nb"), bundle, host=HostFacts(**HOST, apparmor_enabled=True))


def test_exec_takes_the_containers_profile():
    spec = spec_with("p1")
    recs = exec_records(spec, dict(spec["process"]), pid=1,
                        host=HostFacts(**HOST, apparmor_enabled=True))
    assert of(recs, Rec.APPARMOR) == [("p1",)]


# ---- Landlock ----------------------------------------------------------------

@pytest.mark.parametrize("abi, fs_bits, net, scoped", [
    (1, 13, 0, 0), (2, 14, 0, 0), (3, 15, 0, 0), (4, 15, 3, 0), (5, 16, 3, 0),
    (6, 16, 3, 3), (7, 16, 3, 3),
])
def test_every_right_of_the_abi_is_handled(bundle, abi, fs_bits, net, scoped):
    recs = plan_records(spec_with(policy=POLICY, noNewPrivileges=True), bundle,
                        host=HostFacts(**HOST, landlock_abi=abi))
    [(got_abi, fs, got_net, got_scoped)] = of(recs, Rec.LANDLOCK)
    assert (got_abi, fs, got_net, got_scoped) == (abi, (1 << fs_bits) - 1, net, scoped)
    paths = of(recs, Rec.LANDLOCK_PATH)
    assert paths == [(ll.FS_READ, "/"), (fs, "/tmp")]
    ports = of(recs, Rec.LANDLOCK_PORT)
    # before ABI 4 the network is not restricted at all, so no port rules
    assert ports == ([] if abi < 4 else [(ll.NET_BIND_TCP, 8080), (ll.NET_CONNECT_TCP, 80),
                                         (ll.NET_CONNECT_TCP, 443)])


def test_no_policy_no_records(bundle):
    recs = plan_records(spec_with(), bundle, host=HostFacts(**HOST, landlock_abi=7))
    assert not [x for x in recs if x.type in (Rec.LANDLOCK, Rec.LANDLOCK_PATH, Rec.LANDLOCK_PORT)]


def test_policy_sets_no_new_privs_unless_the_process_keeps_cap_sys_admin(bundle):
    host = HostFacts(**HOST, landlock_abi=7)
    plain = plan_records(spec_with(policy=POLICY), bundle, host=host)
    assert len(of(plain, Rec.NO_NEW_PRIVS)) == 1
    admin = plan_records(spec_with(policy=POLICY, capabilities={
        "effective": ["CAP_SYS_ADMIN"], "permitted": ["CAP_SYS_ADMIN"],
        "bounding": ["CAP_SYS_ADMIN"]}), bundle, host=host)
    assert of(admin, Rec.NO_NEW_PRIVS) == []
    asked = plan_records(spec_with(policy=POLICY, noNewPrivileges=True), bundle, host=host)
    assert len(of(asked, Rec.NO_NEW_PRIVS)) >= 1


def test_required_policy_on_a_kernel_without_landlock_is_refused(bundle):
    with pytest.raises(FailedPrecondition, match="required but this kernel has no Landlock"):
        plan_records(spec_with(policy=POLICY), bundle, host=HostFacts(**HOST))


def test_optional_policy_on_a_kernel_without_landlock_is_dropped(bundle, caplog):
    recs = plan_records(spec_with(policy=dict(POLICY, required=False)), bundle,
                        host=HostFacts(**HOST))
    assert of(recs, Rec.LANDLOCK) == [] and "no Landlock" in caplog.text


def test_malformed_annotation_names_it(bundle):
    spec = spec_with()
    spec["annotations"] = {SPEC_ANNOTATION: '{"read_only": "/"}'}
    with pytest.raises(InvalidArgument, match=r'annotations\["org.crio-native.landlock"\]'):
        plan_records(spec, bundle, host=HostFacts(**HOST, landlock_abi=7))


def test_exec_gets_the_containers_ruleset():
    spec = spec_with(policy=POLICY, noNewPrivileges=True)
    recs = exec_records(spec, dict(spec["process"]), pid=1,
                        host=HostFacts(**HOST, landlock_abi=7))
    assert len(of(recs, Rec.LANDLOCK)) == 1 and len(of(recs, Rec.LANDLOCK_PATH)) == 2


# ---- the records against plan.h ----------------------------------------------

def test_record_numbers_and_layouts_match_plan_h():
    header = (REPO / "src/_native/plan.h").read_text()
    plan_c = (REPO / "src/_native/plan.c").read_text()
    for rec in (Rec.APPARMOR, Rec.LANDLOCK, Rec.LANDLOCK_PATH, Rec.LANDLOCK_PORT):
        name = f"CRN_PLAN_{rec.name}"
        assert re.search(rf"\b{name} = {int(rec)},", header), name
        assert f'case {name}: return "{r.LAYOUTS[rec]}";' in plan_c, name


def test_plan_encodes(bundle):
    from crio_native.runtime.builtin.records import encode
    recs = plan_records(spec_with("p1", POLICY), bundle,
                        host=HostFacts(**HOST, apparmor_enabled=True, landlock_abi=7))
    assert encode(recs).startswith(b"CRNPLAN1")
