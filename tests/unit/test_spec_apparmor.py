"""AppArmor in the spec: the new `apparmor` field and the deprecated
`apparmor_profile` string, the new one winning; what each kind becomes on a
host with and without AppArmor; the refusals, naming field and profile."""
from __future__ import annotations

from pathlib import Path

import pytest

from crio_native._proto import api_pb2
from crio_native.errors import FailedPrecondition, InvalidArgument
from crio_native.linux import apparmor as aa
from crio_native.spec import apparmor
from crio_native.spec import build_container_spec
from tests.unit.test_spec_support import apply, config_with, make_inputs

SP = api_pb2.SecurityProfile
REPO = Path(__file__).resolve().parents[2]


def sc(**fields) -> api_pb2.LinuxContainerSecurityContext:
    return api_pb2.LinuxContainerSecurityContext(**fields)


@pytest.mark.parametrize("fields, kind, name, field", [
    ({}, "runtime/default", "", "linux.security_context.apparmor_profile"),
    ({"apparmor_profile": "runtime/default"}, "runtime/default", "", ""),
    ({"apparmor_profile": "unconfined"}, "unconfined", "", ""),
    ({"apparmor_profile": "localhost/my-prof"}, "localhost", "my-prof",
     "linux.security_context.apparmor_profile"),
    ({"apparmor": SP(profile_type=SP.RuntimeDefault)}, "runtime/default", "", ""),
    ({"apparmor": SP(profile_type=SP.Unconfined)}, "unconfined", "", ""),
    ({"apparmor": SP(profile_type=SP.Localhost, localhost_ref="p1")}, "localhost", "p1",
     "linux.security_context.apparmor.localhost_ref"),
    # a ref with the deprecated prefix, as some clients send it
    ({"apparmor": SP(profile_type=SP.Localhost, localhost_ref="localhost/p1")}, "localhost",
     "p1", ""),
    # the new field wins over the deprecated one, whichever way round
    ({"apparmor": SP(profile_type=SP.Unconfined), "apparmor_profile": "localhost/x"},
     "unconfined", "", ""),
    ({"apparmor": SP(profile_type=SP.Localhost, localhost_ref="new"),
      "apparmor_profile": "runtime/default"}, "localhost", "new", ""),
    ({"apparmor": SP(profile_type=SP.RuntimeDefault), "apparmor_profile": "unconfined"},
     "runtime/default", "", ""),
])
def test_requested_profile(fields, kind, name, field):
    want = apparmor.requested(sc(**fields))
    assert (want.kind, want.name) == (kind, name)
    if field:
        assert want.field == field


@pytest.mark.parametrize("fields, field", [
    ({"apparmor_profile": "my-prof"}, "apparmor_profile"),
    ({"apparmor_profile": "localhost/"}, "apparmor_profile"),
    ({"apparmor_profile": "localhost/a\nb"}, "apparmor_profile"),
    ({"apparmor": SP(profile_type=SP.Localhost)}, "apparmor.localhost_ref"),
    ({"apparmor": SP(profile_type=SP.Localhost, localhost_ref=" p")}, "apparmor.localhost_ref"),
])
def test_malformed_fields_are_invalid_naming_the_field(fields, field):
    with pytest.raises(InvalidArgument, match=rf"config\.linux\.security_context\.{field}"):
        apparmor.requested(sc(**fields))


DEFAULT = apparmor.Requested("runtime/default")
UNCONF = apparmor.Requested("unconfined")
LOCAL = apparmor.Requested("localhost", "p1", "linux.security_context.apparmor.localhost_ref")


@pytest.mark.parametrize("want, privileged, expected", [
    (DEFAULT, False, "crio-native-default"),
    (DEFAULT, True, "unconfined"),           # privileged: no default profile
    (UNCONF, False, "unconfined"),
    (LOCAL, False, "p1"),
    (LOCAL, True, "p1"),                     # one the request names is applied
])
def test_profile_with_apparmor_enabled(want, privileged, expected):
    loaded = {"crio-native-default", "p1"}
    assert apparmor.profile_for(want, privileged=privileged, enabled=True,
                                loaded=loaded) == expected


@pytest.mark.parametrize("want", [DEFAULT, UNCONF])
def test_default_and_unconfined_are_no_ops_without_apparmor(want):
    assert apparmor.profile_for(want, privileged=False, enabled=False, loaded=None) is None


def test_localhost_without_apparmor_is_refused_not_ignored():
    with pytest.raises(FailedPrecondition) as e:
        apparmor.profile_for(LOCAL, privileged=False, enabled=False, loaded=None)
    assert "apparmor.localhost_ref" in str(e.value) and "'p1'" in str(e.value)
    assert "not enabled" in str(e.value)


def test_a_profile_that_is_not_loaded_is_refused():
    with pytest.raises(FailedPrecondition) as e:
        apparmor.profile_for(LOCAL, privileged=False, enabled=True, loaded={"other"})
    assert "apparmor.localhost_ref" in str(e.value) and "'p1' is not loaded" in str(e.value)


def test_with_apparmor_sets_and_clears_the_spec_field():
    on = make_inputs(config_with(linux__security_context__apparmor_profile="localhost/p1"),
                     apparmor_enabled=True, apparmor_profiles={"p1"})
    assert apply(apparmor.with_apparmor, on).spec["process"]["apparmorProfile"] == "p1"
    off = make_inputs(apparmor_enabled=False)
    assert "apparmorProfile" not in apply(apparmor.with_apparmor, off).spec["process"]


def test_build_container_spec_carries_the_profile():
    cfg = config_with(linux__security_context__apparmor=SP(profile_type=SP.RuntimeDefault))
    spec = build_container_spec(make_inputs(cfg, apparmor_enabled=True,
                                            apparmor_profiles={aa.DEFAULT_PROFILE})).spec
    assert spec["process"]["apparmorProfile"] == "crio-native-default"
    assert "apparmorProfile" not in build_container_spec(make_inputs(cfg)).spec["process"]


def test_default_profile_denies_what_crio_default_denies():
    text = aa.DEFAULT_PROFILE_TEXT
    assert "profile crio-native-default " in text
    for rule in ("deny mount,", "deny /proc/* w,", "deny /proc/sysrq-trigger rwklx,",
                 "deny /proc/kcore rwklx,", "deny /sys/firmware/** rwklx,",
                 "deny /sys/kernel/security/** rwklx,", "deny /sys/fs/cg[^r]*/** wklx,",
                 "deny /proc/sys/[^k]** w,", "deny /proc/sys/kernel/sh[^m]** w,"):
        assert rule in text, rule


def test_contrib_copy_matches_the_embedded_profile():
    shipped = (REPO / "contrib/apparmor/crio-native-default").read_text()
    body = "".join(line + "\n" for line in shipped.splitlines() if not line.startswith("#"))
    assert body == aa.DEFAULT_PROFILE_TEXT


def test_loaded_profiles_parse(tmp_path, monkeypatch):
    (tmp_path / "profiles").write_text("crio-native-default (enforce)\n"
                                       "/usr/bin/x (complain)\nname with space (enforce)\n")
    monkeypatch.setattr(aa, "SECURITYFS", tmp_path)
    assert aa.loaded_profiles() == {"crio-native-default": "enforce", "/usr/bin/x": "complain",
                                    "name with space": "enforce"}
