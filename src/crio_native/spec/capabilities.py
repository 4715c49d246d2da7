"""process.capabilities from the request's add/drop lists over the daemon's
default set; privileged containers get every capability the daemon holds."""
from __future__ import annotations

from crio_native.config.sections import KNOWN_CAPABILITIES
from crio_native.errors import InvalidArgument
from crio_native.linux.capabilities import CAPABILITIES
from crio_native.spec.inputs import RPC, SpecBuild, SpecInputs, invalid

ALL_CAPS = sorted(CAPABILITIES, key=CAPABILITIES.__getitem__)
CAPS_FIELD = "linux.security_context.capabilities"


def normalize(name: str, field_path: str) -> str:
    """"net_raw", "NET_RAW", "CAP_NET_RAW" -> "CAP_NET_RAW"; "ALL" stays."""
    upper = name.strip().upper()
    if upper == "ALL":
        return upper
    bare = upper.removeprefix("CAP_")
    if bare not in KNOWN_CAPABILITIES:
        raise invalid(field_path, f"unknown capability {name!r}")
    return "CAP_" + bare


def _list(names, field_path: str) -> list[str]:
    return [normalize(n, f"{field_path}[{i}]") for i, n in enumerate(names)]


def default_set(configured: list[str]) -> list[str]:
    out = []
    for name in configured:
        bare = name.strip().upper().removeprefix("CAP_")
        if bare not in KNOWN_CAPABILITIES:
            raise InvalidArgument(f"{RPC}: runtime.default_capabilities: unknown {name!r}")
        out.append("CAP_" + bare)
    return out


def effective_set(defaults: list[str], add: list[str], drop: list[str],
                  every: list[str] | None = None) -> list[str]:
    """containerd's order: ALL in add starts from `every` capability (the
    host's bounding set: one the daemon lacks could never be granted, and
    capset would refuse the whole set), ALL in drop from none (drop ALL
    beats add ALL); then named adds, then named drops (a capability both
    added and dropped ends up dropped)."""
    caps = set(defaults)
    if "ALL" in add:
        caps = set(ALL_CAPS if every is None else every)
    if "ALL" in drop:
        caps = set()
    caps |= {c for c in add if c != "ALL"}
    caps -= {c for c in drop if c != "ALL"}
    return sorted(caps, key=CAPABILITIES.__getitem__)


def with_capabilities(build: SpecBuild, inputs: SpecInputs) -> None:
    """bounding = effective = permitted; inheritable stays empty (the fix for
    CVE-2022-27652 that CRI-O and containerd both ship); ambient only what
    the request asks for, which must also be in the other sets."""
    req = inputs.security.capabilities
    ambient = _list(req.add_ambient_capabilities, f"{CAPS_FIELD}.add_ambient_capabilities")
    if "ALL" in ambient:
        raise invalid(f"{CAPS_FIELD}.add_ambient_capabilities", "ALL is not allowed here")
    every = None if inputs.host_capabilities is None else list(inputs.host_capabilities)
    if inputs.privileged:
        caps = list(ALL_CAPS if every is None else every)
    else:
        caps = effective_set(default_set(inputs.daemon.runtime.default_capabilities),
                             _list(req.add_capabilities, f"{CAPS_FIELD}.add_capabilities"),
                             _list(req.drop_capabilities, f"{CAPS_FIELD}.drop_capabilities"),
                             every)
    caps = sorted(set(caps) | set(ambient), key=CAPABILITIES.__getitem__)
    build.process["capabilities"] = {
        "bounding": list(caps), "effective": list(caps), "permitted": list(caps),
        "inheritable": [], "ambient": sorted(set(ambient), key=CAPABILITIES.__getitem__),
    }
