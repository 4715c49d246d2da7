"""UpdatePodSandboxResources: the kubelet tells the runtime the pod's new
resources (after an in-place resize) and overhead.  The CRI lets a runtime
apply what it owns and answer OK for the rest.  What crio-native owns is
the pod cgroup it made itself (cgroupfs driver, a cgroup_parent that did
not exist: runtime/pod_cgroup.py); there the new limits (resources plus
overhead, as at RunPodSandbox) are written.  A kubelet's own pod cgroup,
a systemd slice, a pod with no cgroup: the kubelet sets those limits
itself, so nothing is changed and the answer is OK."""
from __future__ import annotations

import logging
from pathlib import Path

from crio_native._proto import api_pb2
from crio_native.context import DaemonContext, sandboxes_of
from crio_native.errors import FailedPrecondition, InvalidArgument
from crio_native.linux import cgroups
from crio_native.logsetup import fields
from crio_native.runtime.cgroup_root import resolve_cgroup_root
from crio_native.sandbox.record import SandboxRecord
from crio_native.spec.pod_resources import pod_resources

log = logging.getLogger(__name__)
RPC = "UpdatePodSandboxResources"


def owned_pod_cgroup(record: SandboxRecord) -> list[Path]:
    """The pod cgroup's dirs when this runtime made every one of them; []
    when any is someone else's (or there is none)."""
    dirs = [Path(d) for d in record.cgroup_dirs]
    made = {Path(d) for d in record.cgroups_made}
    return dirs if dirs and all(d in made for d in dirs) else []


def update_pod_sandbox_resources(ctx: DaemonContext,
                                 request: api_pb2.UpdatePodSandboxResourcesRequest
                                 ) -> api_pb2.UpdatePodSandboxResourcesResponse:
    if not request.pod_sandbox_id:
        raise InvalidArgument(f"{RPC}: pod_sandbox_id: must not be empty")
    record = sandboxes_of(ctx).store.get(request.pod_sandbox_id, RPC)
    dirs = owned_pod_cgroup(record)
    if not dirs or ctx.config.runtime.cgroup_manager != "cgroupfs":
        return api_pb2.UpdatePodSandboxResourcesResponse()
    linux = api_pb2.LinuxPodSandboxConfig(cgroup_parent=record.cgroup_parent)
    linux.resources.CopyFrom(request.resources)
    linux.overhead.CopyFrom(request.overhead)
    resources = pod_resources(linux)
    plan = cgroups.plan_cgroups(record.cgroup_parent, resources,
                                root=resolve_cgroup_root(ctx.config.runtime.cgroup_root or None))
    if sorted(plan.dirs) != sorted(dirs):
        # the host's layout moved under the pod (a cgroup root changed since)
        raise FailedPrecondition(f"{RPC}: pod sandbox {record.id}: its cgroup {dirs} is not "
                                 f"where cgroup_parent {record.cgroup_parent!r} leads now")
    cgroups.apply_limits(plan)
    log.info("pod cgroup updated", extra=fields(pod=record.id, resources=resources))
    return api_pb2.UpdatePodSandboxResourcesResponse()
