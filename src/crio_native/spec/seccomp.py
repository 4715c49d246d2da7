"""linux.seccomp: RuntimeDefault, Unconfined or a Localhost profile file.

Profiles are read in two forms: a plain OCI linux.seccomp section, or a
template whose entries carry "includes"/"excludes" (caps, arches) and an
"archMap" (the Docker / containers-common format).  Either is rendered for
this container's capabilities and architecture into a plain OCI section."""
from __future__ import annotations

import json
import platform
from typing import Any

from crio_native._proto import api_pb2
from crio_native.errors import FailedPrecondition, InvalidArgument
from crio_native.spec import seccomp_default
from crio_native.spec.inputs import RPC, SpecBuild, SpecInputs, invalid

SC = "linux.security_context"
ACTIONS = {"SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP",
           "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG",
           "SCMP_ACT_NOTIFY"}
# uname -m -> the SCMP architecture a filter must cover natively.
NATIVE_ARCH = {"x86_64": "SCMP_ARCH_X86_64", "amd64": "SCMP_ARCH_X86_64",
               "aarch64": "SCMP_ARCH_AARCH64", "arm64": "SCMP_ARCH_AARCH64",
               "ppc64le": "SCMP_ARCH_PPC64LE", "s390x": "SCMP_ARCH_S390X",
               "riscv64": "SCMP_ARCH_RISCV64", "i686": "SCMP_ARCH_X86",
               "armv7l": "SCMP_ARCH_ARM"}
PASSTHROUGH = ("defaultErrnoRet", "flags", "listenerPath", "listenerMetadata")

DEFAULT, UNCONFINED, LOCALHOST = "runtime/default", "unconfined", "localhost"


class ProfileError(ValueError):
    pass


def _selected(entry: dict[str, Any], caps: set[str], arch: str) -> bool:
    inc = entry.get("includes") or {}
    exc = entry.get("excludes") or {}
    if any(c not in caps for c in inc.get("caps") or []):
        return False
    if inc.get("arches") and arch not in inc["arches"]:
        return False
    if any(c in caps for c in exc.get("caps") or []):
        return False
    return arch not in (exc.get("arches") or [])


def architectures(profile: dict[str, Any], arch: str) -> list[str] | None:
    if "architectures" in profile:
        return list(profile["architectures"] or [])
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") == arch:
            return [arch] + list(entry.get("subArchitectures") or [])
    return None


def render_template(profile: dict[str, Any], caps: list[str], machine: str) -> dict[str, Any]:
    """A plain OCI seccomp section for a container holding `caps` on `machine`."""
    check_profile(profile)
    arch = NATIVE_ARCH.get(machine, "SCMP_ARCH_" + machine.upper())
    held = set(caps)
    out: dict[str, Any] = {"defaultAction": profile["defaultAction"]}
    out.update({k: profile[k] for k in PASSTHROUGH if k in profile})
    arches = architectures(profile, arch)
    if arches:
        out["architectures"] = arches
    rules = []
    for entry in profile.get("syscalls") or []:
        if not _selected(entry, held, arch):
            continue
        names = entry.get("names") or [entry["name"]]
        rule = {"names": list(names), "action": entry["action"]}
        rule.update({k: entry[k] for k in ("errnoRet", "args") if entry.get(k) is not None})
        rules.append(rule)
    out["syscalls"] = rules
    return out


def check_profile(profile: Any) -> None:
    """Enough structure to fail at create rather than inside the runtime."""
    if not isinstance(profile, dict):
        raise ProfileError("not a JSON object")
    if profile.get("defaultAction") not in ACTIONS:
        raise ProfileError(f"defaultAction: unknown action {profile.get('defaultAction')!r}")
    syscalls = profile.get("syscalls") or []
    if not isinstance(syscalls, list):
        raise ProfileError("syscalls: must be an array")
    for i, entry in enumerate(syscalls):
        where = f"syscalls[{i}]"
        if not isinstance(entry, dict):
            raise ProfileError(f"{where}: must be an object")
        names = entry.get("names") or ([entry["name"]] if entry.get("name") else [])
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ProfileError(f"{where}.names: must be a non-empty array of syscall names")
        if entry.get("action") not in ACTIONS:
            raise ProfileError(f"{where}.action: unknown action {entry.get('action')!r}")
        if not isinstance(entry.get("args") or [], list):
            raise ProfileError(f"{where}.args: must be an array")


def load_profile(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            profile = json.loads(f.read(16 * 1024 * 1024))
    except FileNotFoundError:
        raise ProfileError(f"no such profile {path}") from None
    except OSError as e:
        raise ProfileError(f"cannot read {path}: {e.strerror}") from None
    except ValueError as e:
        raise ProfileError(f"{path}: not valid JSON: {e}") from None
    try:
        check_profile(profile)
    except ProfileError as e:
        raise ProfileError(f"{path}: {e}") from None
    return profile


def profile_choice(sc: api_pb2.LinuxContainerSecurityContext,
                   default_when_empty: bool = False) -> tuple[str, str, str]:
    """(kind, localhost path, field) from the seccomp field or the legacy
    seccomp_profile_path.  Neither set means unconfined, as CRI-O 1.36 runs
    it by default (the kubelet always sends the field); with
    runtime.seccomp_use_default_when_empty, RuntimeDefault."""
    if sc.HasField("seccomp"):
        prof = sc.seccomp
        field = f"{SC}.seccomp"
        if prof.profile_type == api_pb2.SecurityProfile.RuntimeDefault:
            return DEFAULT, "", field
        if prof.profile_type == api_pb2.SecurityProfile.Unconfined:
            return UNCONFINED, "", field
        if prof.profile_type == api_pb2.SecurityProfile.Localhost:
            ref = prof.localhost_ref.removeprefix("localhost/")
            return LOCALHOST, ref, f"{field}.localhost_ref"
        raise invalid(f"{field}.profile_type", f"unknown profile type {prof.profile_type}")
    legacy = sc.seccomp_profile_path
    field = f"{SC}.seccomp_profile_path"
    if legacy == "":
        return (DEFAULT if default_when_empty else UNCONFINED), "", field
    if legacy in ("runtime/default", "docker/default"):
        return DEFAULT, "", field
    if legacy == "unconfined":
        return UNCONFINED, "", field
    if legacy.startswith("localhost/"):
        return LOCALHOST, legacy.removeprefix("localhost/"), field
    raise invalid(field, f"want runtime/default, unconfined or localhost/<path>, got {legacy!r}")


def default_profile(inputs: SpecInputs) -> dict[str, Any]:
    path = inputs.daemon.runtime.seccomp_profile
    if not path:
        return seccomp_default.template()
    try:
        return load_profile(path)
    except ProfileError as e:
        raise FailedPrecondition(f"{RPC}: runtime.seccomp_profile: {e}") from None


def with_seccomp(build: SpecBuild, inputs: SpecInputs) -> None:
    """Runs after with_capabilities: the profile depends on the caps held."""
    build.linux.pop("seccomp", None)
    if inputs.privileged:
        return
    kind, path, field = profile_choice(
        inputs.security, inputs.daemon.runtime.seccomp_use_default_when_empty)
    if kind == UNCONFINED:
        return
    if kind == LOCALHOST:
        if not path.startswith("/"):
            raise invalid(field, f"must be an absolute path, got {path!r}")
        try:
            profile = load_profile(path)
        except ProfileError as e:
            raise invalid(field, str(e)) from None
    else:
        profile = default_profile(inputs)
    caps = build.process.get("capabilities", {}).get("bounding", [])
    try:
        build.linux["seccomp"] = render_template(profile, caps,
                                                 inputs.machine or platform.machine())
    except (ProfileError, KeyError, TypeError) as e:
        raise InvalidArgument(f"{RPC}: config.{field}: {path or kind}: {e}") from None
