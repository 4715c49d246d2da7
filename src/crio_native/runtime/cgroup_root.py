"""Where the runtime may put cgroups: `runtime.cgroup_root`, else
$CRIO_NATIVE_CGROUP_ROOT, else this process's own cgroup.  Every group the
runtime makes or writes (a container's, a pod's) must lie at or below it."""
from __future__ import annotations

import os

from crio_native.linux import cgroups

CGROUP_ROOT_ENV = "CRIO_NATIVE_CGROUP_ROOT"


def resolve_cgroup_root(cgroup_root: str | None) -> str:
    """The cgroup root to use: the explicit value, else $CRIO_NATIVE_CGROUP_ROOT,
    else "" (this process's own cgroup); validated and normalised."""
    if cgroup_root is not None:
        return cgroups.check_root(cgroup_root, "cgroup root")
    return cgroups.check_root(os.environ.get(CGROUP_ROOT_ENV, ""), CGROUP_ROOT_ENV)
