"""Device cgroup rules: the lines for the v1 devices controller, and on a
pure v2 host the eBPF device filter (compiled by devfilter) attached to the
container's group."""
from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Any

from crio_native.errors import FailedPrecondition, InvalidArgument

# one logger for the package, named as before it was split into modules
log = logging.getLogger(__package__)


# What every container may use whatever its spec says (runc appends the same
# list after the spec's rules): mknod of any node, and the standard devices.
DEFAULT_DEVICE_RULES: list[dict[str, Any]] = [
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    *({"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"}
      for major, minor in ((1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2),
                           (136, None), (10, 200))),
]


def device_rule_line(rule: Any, field: str) -> tuple[str, str]:
    """("allow" | "deny", the v1 devices.allow/deny line) for an OCI device
    rule: `a` for every device, else `TYPE MAJOR:MINOR ACCESS` with `*`
    for an absent number."""
    if not isinstance(rule, dict):
        raise InvalidArgument(f"config.json: linux.resources.{field}: must be an object")
    kind = "allow" if rule.get("allow") else "deny"
    access = rule.get("access") or "rwm"
    dtype = rule.get("type") or "a"
    if dtype not in ("a", "c", "b") or not set(access) <= set("rwm"):
        raise InvalidArgument(f"config.json: linux.resources.{field}: bad type {dtype!r} or "
                              f"access {access!r}")
    major, minor = rule.get("major"), rule.get("minor")
    if dtype == "a" and major is None and minor is None:
        return kind, "a"
    num = lambda n: "*" if n is None or n == -1 else str(int(n))  # noqa: E731
    return kind, f"{dtype} {num(major)}:{num(minor)} {access}"


def device_rules(resources: dict[str, Any]) -> list[Any]:
    """The device rules to enforce, in order: the spec's, then the standard
    ones (none at all when the spec has none, as before)."""
    rules = resources.get("devices") or []
    return list(rules) + DEFAULT_DEVICE_RULES if rules else []


@functools.cache
def warn_device_rules_once() -> None:
    # a hybrid host without the v1 devices controller (rare): like runc's v1
    # driver, nothing enforces the rules there
    log.warning("linux.resources.devices: this host has neither a v1 devices controller nor "
                "pure cgroup v2; device cgroup rules are not enforced, containers get only "
                "the device nodes their spec lists")


# ---- the v2 device filter -----------------------------------------------------

DEVICE_PROGRAM_NAME = "crn_devices"


def _device_filter_error(group: Path, e: OSError) -> FailedPrecondition:
    return FailedPrecondition(
        f"config.json: linux.resources.devices: cannot enforce the device cgroup rules on "
        f"cgroup v2 (eBPF device filter for {group}): {e.strerror or e}")


def attach_device_filter(group: Path, program: bytes) -> list[int]:
    """Load the device filter and attach it to the v2 group (BPF_F_ALLOW_MULTI,
    as runc does, so filters of the groups above still apply too); returns
    the ids of the filters attached there before it.  Must happen before
    any process of the container is in the group."""
    from crio_native._native import bpf

    try:
        before = bpf.cgroup_query(group, bpf.CGROUP_DEVICE)
        fd = bpf.prog_load(bpf.PROG_TYPE_CGROUP_DEVICE, program, "Apache", DEVICE_PROGRAM_NAME)
        try:
            bpf.cgroup_attach(fd, group, bpf.CGROUP_DEVICE, bpf.F_ALLOW_MULTI)
        finally:
            os.close(fd)  # the attachment holds the program
    except OSError as e:
        raise _device_filter_error(group, e) from e
    return before


def replace_device_filter(group: Path, program: bytes) -> None:
    """Attach the new filter first, then detach the ones attached before
    (`update`, or a group that already existed), so the group is never
    without one (for that moment both apply), as runc does."""
    from crio_native._native import bpf

    old = attach_device_filter(group, program)
    for prog_id in old:
        try:
            bpf.cgroup_detach(group, bpf.CGROUP_DEVICE, prog_id)
        except FileNotFoundError:
            continue  # detached meanwhile
        except OSError as e:
            raise _device_filter_error(group, e) from e
