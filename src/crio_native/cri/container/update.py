"""UpdateContainerResources: new cgroup limits for a created or running
container, checked like CreateContainer's and applied by its runtime."""
from __future__ import annotations

from crio_native._proto import api_pb2
from crio_native.context import DaemonContext, containers_of
from crio_native.cri.container.ids import require_id
from crio_native.errors import InvalidArgument
from crio_native.linux.cgroups import hugetlb
from crio_native.spec.process import oom_score_adj_problem
from crio_native.spec.resources import oci_resources

# The request's LinuxContainerResources field, as errors name it.
FIELD = "UpdateContainerResources: linux"


def update_container_resources(ctx: DaemonContext,
                               request: api_pb2.UpdateContainerResourcesRequest):
    container_id = require_id("UpdateContainerResources", request.container_id)
    problem = oom_score_adj_problem(request.linux.oom_score_adj)
    if problem:
        raise InvalidArgument(f"{FIELD}.oom_score_adj: {problem}")
    parts = oci_resources(request.linux, field_prefix=FIELD,
                          hugepage_sizes=hugetlb.host_enforceable_page_sizes())
    resources = {key: value for key, value in parts if value}
    containers_of(ctx).update_resources(container_id, resources)
    return api_pb2.UpdateContainerResourcesResponse()
