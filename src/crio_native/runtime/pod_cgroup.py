"""The pod cgroup, shared by every handler's pod half: the requested
cgroup_parent (cgroupfs driver), made when it is missing and given the pod's
resources where the host has the controllers.  Kubelets make their pod
cgroups themselves and set their limits: such a group is used as it is,
never written to and never removed.  A group made here is removed with the
pod (the manager hands a parent that other pods still sit in to one of
them first).  With a cgroup root configured (runtime/cgroup_root.py), the
group must lie at or below it."""
from __future__ import annotations

import dataclasses
import errno
import logging
import threading
from pathlib import Path
from typing import Any, Callable

from crio_native.errors import CrioNativeError
from crio_native.linux import cgroups
from crio_native.linux.systemd.names import slice_of_parent
from crio_native.runtime.cgroup_root import resolve_cgroup_root
from crio_native.runtime.handler import PodSandbox

log = logging.getLogger(__name__)

FIELD = "RunPodSandbox: config.linux.cgroup_parent"

# Held while a pod's groups are planned and made, and (by the sandbox
# manager) from the hand-over of a parent that pods share to the removal of
# the pod's groups: a pod made meanwhile under a parent another pod made
# would otherwise find it there, not own it, and see it removed under it
# (or left behind, busy, owned by no one).
SHARED_PARENTS = threading.RLock()


class PodCgroup:
    """Makes and removes pod cgroups for one cgroup driver and root."""

    def __init__(self, cgroup_manager: str, cgroup_root: str | None):
        self.cgroup_manager = cgroup_manager
        self.cgroup_root = cgroup_root

    def create(self, pod: PodSandbox, resources: dict[str, Any],
               journal: Callable[[], None]) -> None:
        """Make (or reuse) the pod cgroup and write its limits; records the
        dirs in `pod.cgroup_dirs` and what was made in `pod.cgroups_made`."""
        parent = pod.cgroup_parent
        if self.cgroup_manager == "systemd":
            # the kubelet made the slice; systemd makes a missing one (and
            # its parents) with the first scope started in it
            slice_of_parent(parent, FIELD)
            return
        if not parent:
            return
        with SHARED_PARENTS:
            self._create(pod, parent, resources, journal)

    def _create(self, pod: PodSandbox, parent: str, resources: dict[str, Any],
                journal: Callable[[], None]) -> None:
        try:
            plan = cgroups.plan_cgroups(parent, resources,
                                        root=resolve_cgroup_root(self.cgroup_root))
        except CrioNativeError as e:
            raise type(e)(f"{FIELD}: {parent!r}: {e}") from None
        if plan.dirs and all(d.is_dir() for d in plan.dirs):
            # the kubelet's own pod group: its limits are the kubelet's
            pod.cgroup_dirs = [str(d) for d in plan.dirs]
            pod.cgroups_made = []
            return
        if any(d.is_dir() for d in plan.dirs):
            # the kubelet made its pod group in some hierarchies only (its
            # cgroupfs driver leaves a hybrid host's v2 one alone): the rest
            # are made for the containers, and nothing is written anywhere
            plan = dataclasses.replace(plan, writes=[], device_program=None,
                                       controllers=frozenset())
        # journaled before they are made, so a restart after a crash at any
        # point from here removes them (removing a missing group is no error)
        pod.cgroup_dirs = [str(d) for d in plan.dirs]
        pod.cgroups_made = [str(d) for d in cgroups.missing_dirs(plan)]
        if pod.cgroups_made:
            journal()
        made = cgroups.create(plan)
        pod.cgroups_made = [str(d) for d in made]

    def remove(self, pod: PodSandbox) -> None:
        """Remove the groups this pod made (deepest first); a kubelet's own
        pod cgroup is left to the kubelet.  A group something else still
        uses (a child group made by someone else) is left, logged: it must
        not fail the pod's removal."""
        with SHARED_PARENTS:
            self._remove(pod)

    def _remove(self, pod: PodSandbox) -> None:
        for d in sorted(pod.cgroups_made, key=lambda p: len(Path(p).parts), reverse=True):
            try:
                cgroups.remove([Path(d)])
            except OSError as e:
                if e.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                    raise
                log.warning("pod %s: leaving cgroup %s, still in use: %s", pod.id, d, e)
        pod.cgroups_made = []
