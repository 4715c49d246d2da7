"""The cgroup root setting and linux.cgroupsPath: checked, and turned into
the root's and the container's directory in one hierarchy."""
from __future__ import annotations

from pathlib import Path

from crio_native.errors import FailedPrecondition, InvalidArgument
from crio_native.linux.cgroups.hierarchy import Hierarchy


def _components(path: str) -> list[str]:
    return [c for c in path.split("/") if c not in ("", ".")]


def check_root(value: str, what: str = "runtime.cgroup_root") -> str:
    """A cgroup root setting, normalised: "" (none: relative paths go below
    this process's own cgroup, absolute ones anywhere) or an absolute path
    inside the hierarchy without '..'."""
    if value == "":
        return ""
    parts = _components(value) if isinstance(value, str) else [".."]
    if not isinstance(value, str) or not value.startswith("/") or ".." in parts:
        raise InvalidArgument(f"{what}: {value!r}: must be empty (no cgroup root) "
                              "or an absolute cgroup path without '..'")
    return "/" + "/".join(parts)


def check_cgroups_path(cgroups_path: str) -> list[str]:
    """The path's components; InvalidArgument for '..' or a path naming nothing."""
    parts = _components(cgroups_path) if isinstance(cgroups_path, str) else []
    bad = not isinstance(cgroups_path, str) or ".." in cgroups_path.split("/") \
        or (not parts and not cgroups_path.startswith("/"))
    if bad:
        raise InvalidArgument(f"config.json: linux.cgroupsPath: {cgroups_path!r}: want a path "
                              "without '..': relative (placed below the cgroup root) or "
                              "absolute at or below the cgroup root")
    return parts


def _below(path: str, root: str) -> str | None:
    """`path` relative to `root` ("" for root itself), or None when outside."""
    if root == "/":
        return path.lstrip("/")
    if path == root:
        return ""
    return path[len(root) + 1:] if path.startswith(root + "/") else None


def group_dir(h: Hierarchy, mount_root: str, cgroups_path: str, parts: list[str],
              own: dict[str, str], root: str) -> tuple[Path, Path]:
    """(the cgroup root's dir, the container's dir) in one hierarchy."""
    if cgroups_path.startswith("/") and not root:
        return _anywhere(h, mount_root, cgroups_path, parts)
    root_path = root or h.own_path(own)
    base = h.dir_of(root_path, mount_root)
    if base is None:
        if root:
            raise FailedPrecondition(f"cgroup root {root!r} is not visible in the {h.name} "
                                     f"hierarchy mounted at {h.mountpoint}")
        base = h.mountpoint  # our own cgroup lies outside this mount's view
    if not cgroups_path.startswith("/"):
        return base, base.joinpath(*parts)
    rel = _below("/" + "/".join(parts), root_path)
    if rel is None:
        whose = "" if root else f" (the runtime's own cgroup in the {h.name} hierarchy)"
        raise InvalidArgument(f"config.json: linux.cgroupsPath: {cgroups_path!r} is outside "
                              f"the cgroup root {root_path!r}{whose}: an absolute path must lie "
                              "at or below it (see runtime.cgroup_root)")
    return base, base / rel if rel else base


def _anywhere(h: Hierarchy, mount_root: str, cgroups_path: str,
              parts: list[str]) -> tuple[Path, Path]:
    """With no cgroup root configured, an absolute path is taken from the
    hierarchy's root, as runc and crun take it: the kubelet's pod groups
    (/kubepods/burstable/pod<uid>) lie wherever the kubelet made them, not
    below the runtime's own cgroup (/system.slice/crio-native.service)."""
    d = h.dir_of("/" + "/".join(parts), mount_root)
    if d is None:
        raise FailedPrecondition(f"config.json: linux.cgroupsPath: {cgroups_path!r} is not "
                                 f"visible in the {h.name} hierarchy mounted at {h.mountpoint} "
                                 f"(it shows {mount_root!r} and below)")
    return h.mountpoint, d


def group_beside_v2(h: Hierarchy, mount_root: str, cgroups_path: str, parts: list[str],
                    own: dict[str, str], root: str) -> tuple[Path, Path] | None:
    """A v1 hierarchy beside a v2 root that the spec sets nothing in: the
    container joins it only where its group is already there (made by the
    create that set a limit in it: `update` must find the same groups).
    Otherwise it stays out, as runc and crun leave such hierarchies alone."""
    try:
        base, d = group_dir(h, mount_root, cgroups_path, parts, own, root)
    except (FailedPrecondition, InvalidArgument):
        return None
    return (base, d) if d != base and d.is_dir() else None
