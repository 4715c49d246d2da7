"""process.apparmorProfile from the request's AppArmor fields.

Two fields say the same thing: `apparmor` (a SecurityProfile) and the
deprecated string `apparmor_profile` ("runtime/default", "unconfined",
"localhost/NAME"); the kubelet fills both, and the new one wins when set.
Neither set means RuntimeDefault, as in CRI-O.

RuntimeDefault is crio-native-default (linux/apparmor.py, loaded on first
use), Localhost is a profile already loaded on the node, Unconfined is
none.  Privileged containers get no default profile (as CRI-O and Docker),
but a Localhost one they name is applied.  On a host without AppArmor,
RuntimeDefault and Unconfined are no-ops, as in CRI-O, but a Localhost
profile cannot be honoured and is refused rather than ignored."""
from __future__ import annotations

from dataclasses import dataclass
from typing import AbstractSet

from crio_native._proto import api_pb2
from crio_native.errors import FailedPrecondition
from crio_native.linux.apparmor import DEFAULT_PROFILE, UNCONFINED
from crio_native.spec.inputs import RPC, SpecBuild, SpecInputs, invalid

SC = "linux.security_context"
RUNTIME_DEFAULT, LOCALHOST = "runtime/default", "localhost"
LOCALHOST_PREFIX = "localhost/"
_PROFILE = api_pb2.SecurityProfile


@dataclass(frozen=True)
class Requested:
    """What the request asks for: kind is RUNTIME_DEFAULT, UNCONFINED or
    LOCALHOST; name the Localhost profile; field the request field it came
    from (for messages)."""

    kind: str
    name: str = ""
    field: str = ""


def _profile_name(value: str, field: str) -> str:
    name = value.removeprefix(LOCALHOST_PREFIX)
    if not name or name != name.strip() or any(c in name for c in "\0\n"):
        raise invalid(field, f"not an AppArmor profile name: {value!r}")
    return name


def requested(security: api_pb2.LinuxContainerSecurityContext) -> Requested:
    """The profile the request asks for, the `apparmor` field first."""
    if security.HasField("apparmor"):
        p = security.apparmor
        field = f"{SC}.apparmor"
        if p.profile_type == _PROFILE.RuntimeDefault:
            return Requested(RUNTIME_DEFAULT, field=field)
        if p.profile_type == _PROFILE.Unconfined:
            return Requested(UNCONFINED, field=field)
        if p.profile_type == _PROFILE.Localhost:
            return Requested(LOCALHOST, _profile_name(p.localhost_ref, f"{field}.localhost_ref"),
                             f"{field}.localhost_ref")
        raise invalid(f"{field}.profile_type", f"unknown profile type {p.profile_type}")
    value = security.apparmor_profile
    field = f"{SC}.apparmor_profile"
    if value in ("", RUNTIME_DEFAULT):
        return Requested(RUNTIME_DEFAULT, field=field)
    if value == UNCONFINED:
        return Requested(UNCONFINED, field=field)
    if value.startswith(LOCALHOST_PREFIX):
        return Requested(LOCALHOST, _profile_name(value, field), field)
    raise invalid(field, f"{value!r} is none of runtime/default, unconfined, localhost/NAME")


def profile_for(want: Requested, *, privileged: bool, enabled: bool,
                loaded: AbstractSet[str] | None) -> str | None:
    """process.apparmorProfile, or None for none.  `loaded`: the profiles
    the kernel has (None: unknown, not checked)."""
    if want.kind == LOCALHOST:
        if not enabled:
            raise FailedPrecondition(
                f"{RPC}: config.{want.field}: AppArmor profile {want.name!r} cannot be applied: "
                "AppArmor is not enabled on this node")
        if loaded is not None and want.name not in loaded:
            raise FailedPrecondition(
                f"{RPC}: config.{want.field}: AppArmor profile {want.name!r} is not loaded "
                "on this node (load it with apparmor_parser first)")
        return want.name
    if not enabled:
        return None
    if want.kind == UNCONFINED or privileged:
        return UNCONFINED
    return DEFAULT_PROFILE


def with_apparmor(build: SpecBuild, inputs: SpecInputs) -> None:
    want = requested(inputs.security)
    profile = profile_for(want, privileged=inputs.privileged, enabled=inputs.apparmor_enabled,
                          loaded=inputs.apparmor_profiles)
    if profile is None:
        build.process.pop("apparmorProfile", None)
    else:
        build.process["apparmorProfile"] = profile
