"""linux.seccomp: RuntimeDefault, Unconfined or a Localhost profile file.

Profiles are read in two forms: a plain OCI linux.seccomp section, or a
template whose entries carry "includes"/"excludes" (caps, arches) and an
"archMap" (the Docker / containers-common format).  Either is rendered for
this container's capabilities and architecture into a plain OCI section.

Which profile, as CRI-O chooses it:
- a privileged container runs unconfined, or with
  runtime.privileged_seccomp_profile (a Localhost path) when that is set;
- otherwise the request's profile (seccomp, or the legacy path);
- where that is Unconfined (or unset), a profile JSON in an allowed
  `seccomp-profile.kubernetes.cri-o.io/<container>` or `.../POD` pod
  annotation, else in the image manifest's plain, `/<container>` or `/POD`
  annotation of that name, holding the profile's JSON or naming an OCI
  artifact that holds it (docs/spec.md)."""
from __future__ import annotations

import json
import logging
import platform
import threading
from typing import Any

from crio_native._proto import api_pb2
from crio_native.errors import FailedPrecondition, InvalidArgument
from crio_native.spec import seccomp_default
from crio_native.spec.allowed import feature_annotation, is_allowed, handler_prefixes
from crio_native.spec.inputs import RPC, SpecBuild, SpecInputs, invalid

log = logging.getLogger(__name__)

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
# CRI-O's annotation (pkg/annotations V1SeccompProfile): the profile of a
# container ("/<name>"), of a pod ("/POD"), or on an image also plain.
PROFILE_ANNOTATION = "seccomp-profile.kubernetes.cri-o.io"


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
        return seccomp_default.shared_template()
    try:
        return load_profile(path)
    except ProfileError as e:
        raise FailedPrecondition(f"{RPC}: runtime.seccomp_profile: {e}") from None


def annotation_profile(inputs: SpecInputs) -> tuple[str, str, bool] | None:
    """(annotation key, profile JSON, from the image) of the first of CRI-O's
    seccomp-profile annotations present and allowed: the pod's for this
    container, the pod's /POD, then the image manifest's plain, /<name> and
    /POD ones.  Image annotations pass the same allowed_annotations gate
    (CRI-O filters both)."""
    pod, name = inputs.sandbox, inputs.config.metadata.name
    for key in (f"{PROFILE_ANNOTATION}/{name}", f"{PROFILE_ANNOTATION}/POD"):
        value = feature_annotation(inputs.daemon, pod.runtime_handler, pod.annotations, key,
                                   inputs.container_id)
        if value is not None:
            return key, value, False
    prefixes = handler_prefixes(inputs.daemon, pod.runtime_handler)
    for key in (PROFILE_ANNOTATION, f"{PROFILE_ANNOTATION}/{name}", f"{PROFILE_ANNOTATION}/POD"):
        if key in inputs.image_annotations:
            if is_allowed(prefixes, key):
                return key, inputs.image_annotations[key], True
            log.info("ignoring image annotation %s on container %s: handler %r does not list "
                     "it in allowed_annotations", key, inputs.container_id,
                     pod.runtime_handler or inputs.daemon.runtime.default_runtime)
    return None


def profile_from_annotation(key: str, value: str, from_image: bool,
                            inputs: SpecInputs) -> dict[str, Any]:
    """The annotation's profile: its JSON, or (CRI-O's form) a reference to
    an OCI artifact whose first layer is the profile's JSON."""
    where = (f"image {inputs.image_name or inputs.image_id} annotation {key}" if from_image
             else f"pod annotation {key}")
    error = FailedPrecondition if from_image else InvalidArgument
    text: str | bytes = value
    if not value.lstrip().startswith("{"):
        if inputs.seccomp_artifact is None:
            raise error(f"{RPC}: {where}: want a seccomp profile as JSON; OCI artifact "
                        f"references ({value[:80]!r}) cannot be fetched here")
        try:
            text = inputs.seccomp_artifact(value.strip())
        except (FailedPrecondition, InvalidArgument) as e:
            raise FailedPrecondition(f"{RPC}: {where}: {e}") from None
        where = f"{where}: artifact {value.strip()}"
    try:
        profile = json.loads(text)
        check_profile(profile)
    except ValueError as e:
        raise error(f"{RPC}: {where}: not a seccomp profile: {e}") from None
    return profile


def chosen_profile(inputs: SpecInputs) -> tuple[dict[str, Any] | None, str]:
    """The profile (a template or plain section; None: unconfined) and a
    name for it in errors."""
    if inputs.privileged:
        path = inputs.daemon.runtime.privileged_seccomp_profile
        if not path:
            return None, UNCONFINED
        try:
            return load_profile(path), f"runtime.privileged_seccomp_profile: {path}"
        except ProfileError as e:
            raise FailedPrecondition(f"{RPC}: runtime.privileged_seccomp_profile: {e}") from None
    kind, path, field = profile_choice(
        inputs.security, inputs.daemon.runtime.seccomp_use_default_when_empty)
    if kind == UNCONFINED:
        found = annotation_profile(inputs)
        if found is None:
            return None, UNCONFINED
        return profile_from_annotation(*found, inputs), f"annotation {found[0]}"
    if kind == LOCALHOST:
        if not path.startswith("/"):
            raise invalid(field, f"must be an absolute path, got {path!r}")
        try:
            return load_profile(path), f"config.{field}: {path}"
        except ProfileError as e:
            raise invalid(field, str(e)) from None
    return default_profile(inputs), f"config.{field}: {kind}"


def with_seccomp(build: SpecBuild, inputs: SpecInputs) -> None:
    """Runs after with_capabilities: the profile depends on the caps held."""
    build.linux.pop("seccomp", None)
    profile, name = chosen_profile(inputs)
    if profile is None:
        return
    caps = build.process.get("capabilities", {}).get("bounding", [])
    machine = inputs.machine or platform.machine()
    if profile is seccomp_default.shared_template():
        build.linux["seccomp"] = _rendered_default(tuple(caps), machine)
        return
    try:
        build.linux["seccomp"] = render_template(profile, caps, machine)
    except (ProfileError, KeyError, TypeError) as e:
        raise InvalidArgument(f"{RPC}: {name}: {e}") from None


# The built-in default rendered for each (bounding set, machine) seen: most
# of a node's containers hold the same few sets.  Bounded; each caller gets
# its own copy of every dict and list in it, sharing only strings and ints.
_RENDERED_SIZE = 32
_rendered: dict[tuple[tuple[str, ...], str], dict[str, Any]] = {}
_rendered_lock = threading.Lock()


def _rendered_default(caps: tuple[str, ...], machine: str) -> dict[str, Any]:
    key = (caps, machine)
    with _rendered_lock:
        section = _rendered.get(key)
    if section is None:
        section = render_template(seccomp_default.shared_template(), list(caps), machine)
        with _rendered_lock:
            if len(_rendered) >= _RENDERED_SIZE:
                _rendered.pop(next(iter(_rendered)))
            _rendered[key] = section
    return _copy_section(section)


def _copy_section(section: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of a section render_template made: its lists hold
    strings (architectures, flags, names) or, in "args", flat dicts."""
    out = {k: list(v) if isinstance(v, list) else v for k, v in section.items()}
    out["syscalls"] = [_copy_rule(r) for r in section["syscalls"]]
    return out


def _copy_rule(rule: dict[str, Any]) -> dict[str, Any]:
    out = dict(rule)
    out["names"] = list(rule["names"])
    if "args" in rule:
        out["args"] = [dict(a) for a in rule["args"]]
    return out


# The seccomp notifier (CRI-O's annotation, in its two spellings): a pod
# annotation whose value "stop" stops the container at its first blocked
# syscall; any other value only logs each one.
NOTIFIER_ANNOTATIONS = ("seccomp-notifier-action.crio.io",
                        "io.kubernetes.cri-o.seccompNotifierAction")
NOTIFIER_STOP = "stop"
_BLOCKING = {"SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS"}
# Made by the runtime under the filter before an agent holds the fd
# (linux.seccomp.NOTIFY_REFUSED): never notified.
_NEVER_NOTIFIED = ("sendmsg", "write")
_EPERM, _ENOSYS = 1, 38


def notifier_action(inputs: SpecInputs) -> str | None:
    """The notifier annotation's value where the pod's handler allows it."""
    pod = inputs.sandbox
    for key in NOTIFIER_ANNOTATIONS:
        value = feature_annotation(inputs.daemon, pod.runtime_handler, pod.annotations, key,
                                   inputs.container_id)
        if value is not None:
            return value
    return None


def _errno_of(action: str, errno_ret: Any) -> int:
    return errno_ret if action == "SCMP_ACT_ERRNO" and isinstance(errno_ret, int) else _EPERM


def notifying_section(section: dict[str, Any], listener_path: str,
                      syscall_names: list[str]) -> tuple[dict[str, Any], dict[str, int]]:
    """`section` with each blocked syscall notifying the agent at
    `listener_path` instead, and the errno the agent answers for each.

    Rules that refuse (errno or kill) notify, except ENOSYS ones (those say
    "not here, fall back", as clone3's does).  The default action cannot
    notify (runc and we refuse it: the runtime's own calls under the filter
    would wait for an agent), so each of `syscall_names` (this
    architecture's) that no rule names gets a notifying rule of its own;
    a syscall named only under argument conditions keeps the default for
    the other values."""
    out = dict(section)
    answers: dict[str, int] = {}
    rules = []
    named: set[str] = set()
    for rule in section.get("syscalls") or []:
        names = list(rule.get("names") or [])
        named.update(names)
        action = rule.get("action")
        if action not in _BLOCKING or (action == "SCMP_ACT_ERRNO"
                                        and rule.get("errnoRet") == _ENOSYS):
            rules.append(rule)
            continue
        kept = [n for n in names if n in _NEVER_NOTIFIED]
        if kept:
            rules.append({**rule, "names": kept})
        notified = [n for n in names if n not in _NEVER_NOTIFIED]
        if notified:
            entry = {k: v for k, v in rule.items() if k != "errnoRet"}
            rules.append({**entry, "names": notified, "action": "SCMP_ACT_NOTIFY"})
            for n in notified:
                answers.setdefault(n, _errno_of(action, rule.get("errnoRet")))
    default = section.get("defaultAction")
    if default in _BLOCKING:
        rest = sorted(set(syscall_names) - named - set(_NEVER_NOTIFIED))
        if rest:
            rules.append({"names": rest, "action": "SCMP_ACT_NOTIFY"})
        errno = _errno_of(default, section.get("defaultErrnoRet", _EPERM))
        answers.update({n: errno for n in rest})
    out["syscalls"] = rules
    out["listenerPath"] = listener_path
    return out, answers
