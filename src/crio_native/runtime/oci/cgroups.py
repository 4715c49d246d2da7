"""Where runc will put a container's cgroup, worked out before `create`
runs: the monitor watches that cgroup for the container's OOM kills."""
from __future__ import annotations

import json
import os
from pathlib import Path

from crio_native.errors import FailedPrecondition, InvalidArgument
from crio_native.linux import cgroups
from crio_native.linux.systemd.names import is_systemd_path, parse_cgroups_path


def cgroups_path_of(bundle: Path) -> str | None:
    """linux.cgroupsPath from the bundle's config.json (None when unset)."""
    try:
        spec = json.loads((bundle / "config.json").read_text())
    except FileNotFoundError as e:
        raise FailedPrecondition(f"bundle {bundle}: no config.json") from e
    except ValueError as e:
        raise FailedPrecondition(f"bundle {bundle}: config.json: {e}") from e
    path = (spec.get("linux") or {}).get("cgroupsPath")
    return path if isinstance(path, str) and path else None


def memory_cgroup_dir(cgroups_path: str | None, container_id: str,
                      hierarchies: list[tuple[cgroups.Hierarchy, str]] | None = None,
                      own: dict[str, str] | None = None) -> Path | None:
    """Where runc (cgroupfs driver) puts the container in the hierarchy
    holding the memory controller (the v2 one on a pure v2 host): an
    absolute cgroupsPath is taken from the hierarchy's root; a relative one
    (or the container id when unset) below this process's own cgroup on v1
    and below the *parent* of it on v2, as runc's fs/fs2 drivers do.  A
    systemd-style "slice:prefix:name" path is the cgroup of the scope runc
    starts.  None on a host without the memory controller."""
    path = cgroups_path or container_id
    if is_systemd_path(path):
        # the scope runc/crun start for it, where systemd puts it
        try:
            path = parse_cgroups_path(path).cgroup
        except InvalidArgument:
            return None
    hierarchies = cgroups.host_hierarchies() if hierarchies is None else hierarchies
    own = cgroups.own_cgroups() if own is None else own
    v2_only = cgroups.pure_v2(hierarchies)
    for h, mount_root in hierarchies:
        if not (h.version == 2 if v2_only else (h.version == 1 and "memory" in h.controllers)):
            continue
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if path.startswith("/"):
            full = "/" + "/".join(parts)
        else:
            base = h.own_path(own)
            if h.version == 2:
                base = os.path.dirname(base.rstrip("/")) or "/"
            full = "/".join([base.rstrip("/"), *parts]) or "/"
        return h.dir_of(full, mount_root)
    return None

